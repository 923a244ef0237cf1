"""``vlmbench validate FILE...``: check task, group and template YAML files; every problem one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlmbench.cli.commands import CommandSpec
from vlmbench.errors import UserError, printable


def validate(ns: argparse.Namespace) -> int:
    """One ``ok:`` line per good file; one ``error:`` line per problem of a bad one."""
    from vlmbench.taskconfig import GroupConfig, TaskConfig, load_file

    failed = 0
    for path in ns.files:
        try:
            config = load_file(Path(path))
        except UserError as exc:
            failed += 1
            for line in str(exc).splitlines():
                print(f"error: {printable(line)}", file=sys.stderr)  # a file's own text, inert
            continue
        if isinstance(config, TaskConfig):
            print(f"ok: {path} (task '{printable(config.name)}')")
        elif isinstance(config, GroupConfig):
            print(f"ok: {path} (group '{printable(config.name)}')")
        else:
            print(f"ok: {path} (template)")
    return 1 if failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench validate``."""
    parser.add_argument("files", nargs="+")
    parser.set_defaults(func=validate)


COMMAND = CommandSpec("validate", "check task YAML files against the schema and the registries", add_arguments)
