"""Builds the pluggy plugin manager: the core's own registrations plus every entry-point plugin.

Built-in backends, tasks and the leaderboard are entry points of the ``vlmbench`` distribution
itself (group ``vlmbench``), so they register exactly as a third party's plugin does. Entry points
load one by one: a plugin that fails to import costs one warning line naming it, never the run. So
does a third party's hook that raises or returns something other than the documented list, and an
item whose name another plugin registered first (the built-ins register first, so their names
cannot be taken over); the core's own hooks raise as usual, since a failure there is a bug.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from vlmbench import hookspecs
from vlmbench.entrypoints import EntryPoint, entry_points
from vlmbench.errors import UserError, first_line, printable

if TYPE_CHECKING:
    from vlmbench.backend import BackendSpec
    from vlmbench.cli.commands import CommandSpec
    from vlmbench.data.steps import DocStepSpec
    from vlmbench.scoring.base import ScorerSpec
    from vlmbench.scoring.metrics import MetricSpec

CORE_PLUGINS = ("vlmbench.builtins",)
CORE_DISTRIBUTION = "vlmbench"

_LABELS: dict[str, str] = {}  # registered plugin name -> how warnings name it (entry point, module, package)
_WARNED: set[str] = set()  # warnings already printed by this process (the registries are read many times)
_NOTHING = object()


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
    _LABELS[name] = f"'{point.name}' ({point.value}, package {distribution or 'unknown'})"
    try:
        plugin = point.load()
        manager.register(plugin, name=name)
        if not manager.get_hookcallers(plugin):  # e.g. an install whose entry points predate a move of the hooks
            manager.unregister(plugin)
            _warn(f"plugin {_label(name)} implements no vlmbench hook and is skipped; reinstall the package (its entry points may be out of date)")
    except (Exception, SystemExit) as exc:  # a broken third-party plugin (even one calling sys.exit) must not take the whole tool down
        _warn(f"plugin {_label(name)} failed to load and is skipped: {type(exc).__name__}: {first_line(exc)}")


def backend_specs() -> dict[str, BackendSpec]:
    """All registered backends by name."""
    from vlmbench.backend import BackendSpec

    return _by_name("vlmbench_backends", BackendSpec, "backend")


def backend_spec(name: str) -> BackendSpec:
    """The backend called ``name``, or a one-line error with a did-you-mean."""
    specs = backend_specs()
    if name not in specs:
        raise UserError(f"unknown model backend '{name}'{did_you_mean(name, specs)}; `vlmbench ls models` lists them")
    return specs[name]


def task_dirs() -> list[Path]:
    """Every task directory contributed by a plugin, built-ins first."""
    return [Path(folder) for _, folder in _contributions("vlmbench_task_dirs", _is_path, "folder paths")]


def scorer_specs() -> dict[str, ScorerSpec]:
    """All registered scorers by name."""
    from vlmbench.scoring.base import ScorerSpec

    return _by_name("vlmbench_scorers", ScorerSpec, "scorer")


def metric_specs() -> dict[str, MetricSpec]:
    """All registered metrics by name."""
    from vlmbench.scoring.metrics import MetricSpec

    return _by_name("vlmbench_metrics", MetricSpec, "metric")


def doc_step_specs() -> dict[str, DocStepSpec]:
    """All registered document-processing steps by name."""
    from vlmbench.data.steps import DocStepSpec

    return _by_name("vlmbench_doc_steps", DocStepSpec, "document step")


def command_specs() -> dict[str, CommandSpec]:
    """All subcommands plugins add to the ``vlmbench`` command line."""
    from vlmbench.cli.commands import CommandSpec

    return _by_name("vlmbench_cli_commands", CommandSpec, "command")


def _by_name(hook: str, spec_type: type[Any], kind: str) -> dict[str, Any]:
    """One registry from every plugin's items for ``hook``. An item whose name was registered before is left
    out with one warning naming both plugins: the first keeps the name, and the built-ins register first, so
    no plugin takes over a built-in's name (and with it the numbers a run reports)."""
    table: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for plugin, item in _contributions(
        hook, lambda item: isinstance(item, spec_type) and _is_name(item.name), f"{spec_type.__name__} objects with a name"
    ):
        if item.name in table:
            if plugin == owner[item.name]:
                _warn(f"plugin {_label(plugin)} registers two {kind}s named '{item.name}': the second is skipped; rename one of them")
            else:
                _warn(
                    f"plugin {_label(plugin)} registers a {kind} named '{item.name}', which plugin {_label(owner[item.name])} registered first: "
                    "this one is skipped; rename it or uninstall one of them"
                )
            continue
        table[item.name], owner[item.name] = item, plugin
    return dict(sorted(table.items()))


def _contributions(hook: str, accepts: Callable[[Any], bool], expected: str) -> list[tuple[str, Any]]:
    """Each plugin's items for ``hook``, with the plugin's registered name, in the order the plugins were
    registered: the core's own, the vlmbench distribution's entry points, then the others' (see
    :func:`plugin_manager`).

    A third party's implementation that raises, or that returns something other than a list of items
    ``accepts`` takes (one folder's name as a string instead of a list would be walked character by
    character, from ``/``), costs one warning line naming the plugin and adds nothing. The core's raise:
    a failure there is a bug to see, not a plugin to skip."""
    manager = plugin_manager()
    registered = {name: index for index, (name, _) in enumerate(manager.list_name_plugin())}
    # By registration, not by pluggy's call order: `trylast` or `tryfirst` must not let a plugin go before the built-ins.
    implementations = sorted(getattr(manager.hook, hook).get_hookimpls(), key=lambda impl: registered.get(impl.plugin_name, len(registered)))
    out: list[tuple[str, Any]] = []
    for implementation in implementations:
        plugin = implementation.plugin_name
        if implementation.hookwrapper or implementation.wrapper:  # it wraps the others' results and adds none of its own
            _warn(f"plugin {_label(plugin)}: its hook {hook} is a hook wrapper, which vlmbench's hooks do not use; it is skipped")
            continue
        try:
            items = implementation.function()
            if items is None:  # pluggy's rule: an implementation returning None adds nothing
                continue
            wrong = _wrong(items, accepts)
        except (Exception, SystemExit) as exc:
            if _is_core(plugin):
                raise
            _warn(f"plugin {_label(plugin)}: its hook {hook} raised {type(exc).__name__}: {first_line(exc)}; what it adds is skipped")
            continue
        if wrong:
            if _is_core(plugin):
                raise TypeError(f"{plugin}: {hook} returned {wrong}, not a list of {expected}")
            _warn(f"plugin {_label(plugin)}: its hook {hook} returned {wrong}, not a list of {expected}; what it adds is skipped")
            continue
        out.extend((plugin, item) for item in items)
    return out


def _wrong(items: Any, accepts: Callable[[Any], bool]) -> str:
    """What is wrong with a hook's return value, in a few words (empty when nothing is)."""
    if not isinstance(items, (list, tuple)):
        return f"a {type(items).__name__}"
    bad = next((item for item in items if not accepts(item)), _NOTHING)
    return "" if bad is _NOTHING else f"a {type(items).__name__} with an item of type {type(bad).__name__} ({_brief(bad)})"


def _brief(item: Any) -> str:
    """An item's name, or the item, as a short repr (bounded however large the item)."""
    import reprlib

    name = getattr(item, "name", None)
    return printable(reprlib.repr(name if name is not None else item))[:60]


def _is_path(item: Any) -> bool:
    """A folder's path: a non-empty ``str`` or ``os.PathLike`` of one (never bytes)."""
    return isinstance(item, (str, os.PathLike)) and isinstance(os.fspath(item), str) and bool(os.fspath(item))


def _is_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name.strip())


def _is_core(plugin: str) -> bool:
    return plugin in CORE_PLUGINS or plugin.startswith(f"{CORE_DISTRIBUTION}:")


def _label(plugin: str) -> str:
    return _LABELS.get(plugin, f"'{plugin}'")


def _warn(message: str) -> None:
    """One warning line on stderr, once per process."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"vlmbench: warning: {printable(message)}", file=sys.stderr)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    import difflib

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
