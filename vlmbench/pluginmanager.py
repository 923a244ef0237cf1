"""Builds the pluggy plugin manager: built-in plugins plus third-party entry points."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

import pluggy

from vlmbench import hookspecs
from vlmbench.backend import BackendSpec
from vlmbench.errors import UserError

BUILTIN_PLUGINS = ("vlmbench.plugins.baselines", "vlmbench.plugins.openai_api", "vlmbench.plugins.hf", "vlmbench.tasks")


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager with built-ins and entry-point plugins loaded."""
    import importlib

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    return manager


def backend_specs() -> dict[str, BackendSpec]:
    """All registered backends by name. Two plugins registering one name is an error."""
    specs: dict[str, BackendSpec] = {}
    for plugin_specs in plugin_manager().hook.vlmbench_backends():
        for spec in plugin_specs:
            if spec.name in specs:
                raise UserError(f"two plugins register a backend named '{spec.name}'; uninstall one of them")
            specs[spec.name] = spec
    return dict(sorted(specs.items()))


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


def did_you_mean(name: str, candidates: object) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)  # type: ignore[arg-type]
    return f" (did you mean '{matches[0]}'?)" if matches else ""
