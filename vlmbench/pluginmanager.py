"""Builds the pluggy plugin manager: the core's own registrations plus every entry-point plugin.

Built-in backends, tasks and the leaderboard are entry points of the ``vlmbench`` distribution
itself (group ``vlmbench``), so they register exactly as a third party's plugin does. Entry points
load one by one: a plugin that fails to import costs one warning line naming it, never the run.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from vlmbench import hookspecs
from vlmbench.entrypoints import EntryPoint, entry_points
from vlmbench.errors import UserError

if TYPE_CHECKING:
    from vlmbench.backend import BackendSpec
    from vlmbench.cli.commands import CommandSpec
    from vlmbench.data.steps import DocStepSpec
    from vlmbench.scoring.base import ScorerSpec
    from vlmbench.scoring.metrics import MetricSpec

CORE_PLUGINS = ("vlmbench.builtins",)


class _Named(Protocol):
    name: str


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager: core registrations, then entry points (the vlmbench
    distribution's own first, so built-in task folders come before a plugin's)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for module_name in CORE_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    for entry_point in _entry_points():
        _register_entry_point(manager, entry_point)
    return manager


def _entry_points() -> list[EntryPoint]:
    """The group's entry points, the vlmbench distribution's first."""
    seen: set[str] = set()
    unique = []
    for point in entry_points(hookspecs.PROJECT):
        if point.name not in seen:  # an editable install plus a stale copy can list a name twice
            seen.add(point.name)
            unique.append(point)
    return sorted(unique, key=lambda point: (point.distribution != "vlmbench", point.name))


def _register_entry_point(manager: pluggy.PluginManager, point: EntryPoint) -> None:
    distribution = point.distribution
    name = f"{distribution or '?'}:{point.name}"
    if manager.get_plugin(name) is not None or manager.is_blocked(name):
        return
    try:
        plugin = point.load()
        manager.register(plugin, name=name)
        if not manager.get_hookcallers(plugin):  # e.g. an install whose entry points predate a move of the hooks
            manager.unregister(plugin)
            print(
                f"vlmbench: warning: plugin '{point.name}' ({point.value}, package {distribution or 'unknown'}) implements no vlmbench hook "
                f"and is skipped; reinstall the package (its entry points may be out of date)",
                file=sys.stderr,
            )
    except Exception as exc:  # a broken third-party plugin must not take the whole tool down
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        print(
            f"vlmbench: warning: plugin '{point.name}' ({point.value}, package {distribution or 'unknown'}) "
            f"failed to load and is skipped: {type(exc).__name__}: {first_line}",
            file=sys.stderr,
        )


def backend_specs() -> dict[str, BackendSpec]:
    """All registered backends by name. Two plugins registering one name is an error."""
    return _by_name(plugin_manager().hook.vlmbench_backends(), "backend")


def backend_spec(name: str) -> BackendSpec:
    """The backend called ``name``, or a one-line error with a did-you-mean."""
    specs = backend_specs()
    if name not in specs:
        raise UserError(f"unknown model backend '{name}'{did_you_mean(name, specs)}; `vlmbench ls models` lists them")
    return specs[name]


def task_dirs() -> list[Path]:
    """Every task directory contributed by a plugin, built-ins first."""
    dirs: list[Path] = []
    for plugin_dirs in reversed(plugin_manager().hook.vlmbench_task_dirs()):
        dirs.extend(Path(d) for d in plugin_dirs)
    return dirs


def scorer_specs() -> dict[str, ScorerSpec]:
    """All registered scorers by name."""
    return _by_name(plugin_manager().hook.vlmbench_scorers(), "scorer")


def metric_specs() -> dict[str, MetricSpec]:
    """All registered metrics by name."""
    return _by_name(plugin_manager().hook.vlmbench_metrics(), "metric")


def doc_step_specs() -> dict[str, DocStepSpec]:
    """All registered document-processing steps by name."""
    return _by_name(plugin_manager().hook.vlmbench_doc_steps(), "document step")


def command_specs() -> dict[str, CommandSpec]:
    """All subcommands plugins add to the ``vlmbench`` command line."""
    return _by_name(plugin_manager().hook.vlmbench_cli_commands(), "command")


def _by_name(results: Iterable[Iterable[_Named]], kind: str) -> dict[str, Any]:
    """Flatten hook results into one registry; two plugins registering one name is an error."""
    table: dict[str, Any] = {}
    for items in results:
        for item in items:
            if item.name in table:
                raise UserError(f"two plugins register a {kind} named '{item.name}'; uninstall one of them")
            table[item.name] = item
    return dict(sorted(table.items()))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    import difflib

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
