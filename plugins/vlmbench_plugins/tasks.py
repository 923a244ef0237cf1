"""The built-in UnsafeConcepts tasks (the repository's ``tasks/`` folder), registered through the
same hook a third party uses for its own task folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vlmbench import hookimpl


def builtin_task_dir() -> Path:
    """The folder of the built-in task YAML files, in a checkout or an installed wheel.

    ``vlmbench_tasks`` is a data-only (namespace) package, so its folder is read off the import
    spec rather than through ``importlib.resources``, which an editable install's finder confuses.
    """
    spec = importlib.util.find_spec("vlmbench_tasks")
    folders = [Path(p) for p in (spec.submodule_search_locations or []) if Path(p).is_dir()] if spec else []
    if not folders:
        raise RuntimeError("the built-in tasks (package data 'vlmbench_tasks') are not installed; reinstall vlmbench")
    return folders[0]


@hookimpl
def vlmbench_task_dirs() -> list[Path]:
    """The directory holding the built-in task YAML files."""
    return [builtin_task_dir()]
