"""Every vlmbench plugin hook, documented in one place.

A plugin is any module or object with functions marked ``@vlmbench.hookimpl`` whose names match
the specs below. Third-party packages expose one through the entry-point group ``vlmbench``::

    [project.entry-points.vlmbench]
    myplugin = "my_package.vlmbench_plugin"

The built-in backends (``plugins/``) and tasks (``tasks/``) are registered through these same hooks.
"""

from __future__ import annotations

from pathlib import Path

import pluggy

from vlmbench.backend import BackendSpec

PROJECT = "vlmbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vlmbench_backends() -> list[BackendSpec]:
    """Return the model backends this plugin provides.

    Each :class:`~vlmbench.backend.BackendSpec` has a unique ``name`` (used as ``--model NAME``),
    a one-line description, and a factory ``(model_args, options) -> Backend``. Import heavy
    dependencies inside the factory, not at module import.
    """


@hookspec
def vlmbench_task_dirs() -> list[Path]:
    """Return directories holding task YAML files (searched recursively).

    Files whose name starts with ``_`` are include-only templates, not tasks.
    """
