"""The subcommand contract: core commands and plugin commands are the same kind of thing."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    """A ``vlmbench NAME`` subcommand.

    ``add_arguments(parser)`` adds its flags and sets ``parser.set_defaults(func=...)``; ``func``
    gets the parsed arguments and returns the exit code. Raise :class:`~vlmbench.errors.UserError`
    for a mistake the user can fix: the CLI prints it as one line and exits 2. ``stopped``: what the
    line printed when Ctrl-C or SIGTERM stops the command says to do next (default: a run's, that every
    response received is stored and the same command resumes).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    stopped: str = ""
