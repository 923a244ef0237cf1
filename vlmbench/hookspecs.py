"""Every vlmbench plugin hook, documented in one place.

A plugin is any module or object with functions marked ``@vlmbench.hookimpl`` whose names match
the specs below. Third-party packages expose one through the entry-point group ``vlmbench``::

    [project.entry-points.vlmbench]
    myplugin = "my_package.vlmbench_plugin"

Every extension point is a registry filled through these hooks, and the built-ins use the same
hooks: the backends (``plugins/vlmbench_plugins``), the task folder (``tasks/``), the leaderboard
commands (``leaderboard/vlmbench_leaderboard``) are entry points of vlmbench itself, and the core's
scorers, metrics and document steps are registered by ``vlmbench.builtins``. Each hook returns a
list, so one plugin may contribute several items; an unknown name in a task file gets a one-line
error with a did-you-mean.

A broken plugin never takes the tool down: a plugin that fails to import, a hook that raises or
returns anything but a list of the documented items, costs one warning line naming the plugin and
its package, and what it adds is skipped. A name registered twice keeps its first registration
(the built-ins register first, so no plugin takes over a built-in's name) and the later one is
skipped with a warning naming both plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from vlmbench.backend import BackendSpec
    from vlmbench.cli.commands import CommandSpec
    from vlmbench.data.steps import DocStepSpec
    from vlmbench.scoring.base import ScorerSpec
    from vlmbench.scoring.metrics import MetricSpec

PROJECT = "vlmbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vlmbench_backends() -> list[BackendSpec]:
    """Return the model backends this plugin provides.

    Each :class:`~vlmbench.backend.BackendSpec` has a unique ``name`` (used as ``--model NAME``),
    a one-line description, and a factory ``(model_args, options) -> Backend``. Import heavy
    dependencies inside the factory, not at module import. ``options`` carries the batch size,
    the seed and this process's rank, world size and local rank, so a backend picks its own device
    under data parallelism. An optional ``check_args(model_args)`` raises the factory's one-line error
    for bad arguments without building anything: a run checks a model judge's backend with it before
    the model answers (a backend without it is checked when the judge is built, after the answers).
    """
    raise NotImplementedError


@hookspec
def vlmbench_task_dirs() -> list[Path]:
    """Return directories holding task YAML files (searched recursively).

    Files whose name starts with ``_`` are include-only templates, not tasks; ``data/`` folders
    are skipped.
    """
    raise NotImplementedError


@hookspec
def vlmbench_scorers() -> list[ScorerSpec]:
    """Return scorers (judges): what turns a response into a verdict (a parsed answer and whether it is right).

    A task names its answer format's scorer with the field ``scorer:`` and its default judges with
    ``judge:``; ``--judge NAME,...`` picks judges per run. Each
    :class:`~vlmbench.scoring.base.ScorerSpec` has a ``name``, a ``version`` (it enters the task's
    config hash, so changing a scorer makes submitted results stale) and a factory ``(args) ->
    Scorer`` or ``(args, options: ScorerOptions) -> Scorer`` (options carry the response store a
    model judge caches its calls in, see :class:`~vlmbench.scoring.judgecache.JudgeCalls`, and the
    device), and optionally ``check_args(args)``, which raises a one-line error for bad arguments
    without building the scorer: a run named with ``--judge`` calls it before the model answers. A scorer scores a batch: ``score(items) -> iterable of Verdict``; ``item.kind`` names
    the task's answer format. Optional members: ``kinds`` (the answer formats it reads; a judge is
    left out of tasks it cannot read), ``identity()`` (model identity, prompt hash: recorded in the
    results), ``counts()`` (calls sent / reused / failed) and ``close()``.
    """
    raise NotImplementedError


@hookspec
def vlmbench_metrics() -> list[MetricSpec]:
    """Return metrics: functions of a task's scored samples named in ``metric_list``.

    Each :class:`~vlmbench.scoring.metrics.MetricSpec` has a ``name``, a one-line description and
    ``compute(samples, strict) -> {"value", "stderr", "n"} | None``; the harness reports the plain
    and ``_strict`` forms, overall, per category and per cluster.
    """
    raise NotImplementedError


@hookspec
def vlmbench_doc_steps() -> list[DocStepSpec]:
    """Return document-processing steps usable in a task's ``process_docs`` list.

    Each :class:`~vlmbench.data.steps.DocStepSpec` has a ``name``, a description, a function
    ``(docs, *, catalog, task, seed, **args) -> docs`` and an optional JSON Schema for its
    arguments (checked when the task file loads).
    """
    raise NotImplementedError


@hookspec
def vlmbench_cli_commands() -> list[CommandSpec]:
    """Return extra ``vlmbench`` subcommands.

    Each :class:`~vlmbench.cli.commands.CommandSpec` has a ``name``, a one-line help text and
    ``add_arguments(parser)``; the parser's ``func`` default is called with the parsed arguments
    and returns the exit code. The leaderboard's ``submit`` and ``leaderboard`` commands come
    through this hook.
    """
    raise NotImplementedError
