"""``vlmbench ls tasks|models|scorers|metrics|steps``: what is registered."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from vlmbench.cli import args as types
from vlmbench.cli.commands import CommandSpec
from vlmbench.errors import printable

KINDS = ("tasks", "models", "scorers", "metrics", "steps")


def ls(ns: argparse.Namespace) -> int:
    """Print one table of registered items."""
    from tabulate import tabulate  # here, not at import: `vlmbench --help` loads this module

    from vlmbench import pluginmanager as plugins

    if ns.what == "models":
        print(tabulate([[s.name, s.description] for s in plugins.backend_specs().values()], headers=["model", "description"]))
    elif ns.what == "scorers":
        print(tabulate([[s.name, s.version, s.description] for s in plugins.scorer_specs().values()], headers=["scorer", "version", "description"]))
    elif ns.what == "metrics":
        print(tabulate([[m.name, m.description] for m in plugins.metric_specs().values()], headers=["metric", "description"]))
    elif ns.what == "steps":
        print(tabulate([[s.name, s.description] for s in plugins.doc_step_specs().values()], headers=["step", "description"]))
    else:
        print_tasks(ns.include_path or [])
    return 0


def print_tasks(include_path: Sequence[Path | str]) -> None:
    """The table of tasks, then of groups (``vlmbench ls tasks``, ``vlmbench run --tasks list``)."""
    from tabulate import tabulate

    from vlmbench.registry import discover

    registry = discover([Path(p) for p in include_path])
    # By name, with the standalone tasks (run only when named, never by `all`) last and marked.
    tasks = sorted(registry.tasks.values(), key=lambda t: (bool(t.get("standalone")), t.name))
    # A task folder may come from elsewhere: what its files say is shown inert.
    rows = [
        [printable(t.name), printable(str(t.version)), ("(standalone: not in all) " if t.get("standalone") else "") + printable(t.description or "")]
        for t in tasks
    ]
    print(tabulate(rows, headers=["task", "version", "description"]))
    print()
    print(tabulate([[g.name, ", ".join(registry.select(g.name))] for g in registry.groups.values()], headers=["group", "tasks"]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench ls``."""
    parser.add_argument("what", choices=KINDS)
    types.add_include_path(parser)
    parser.set_defaults(func=ls)


COMMAND = CommandSpec("ls", "list tasks, models, scorers, metrics or document steps", add_arguments)
