"""The ``vlmbench`` command line: one small module per command, each a thin layer over the library.

Core commands (run, score, ls, validate, cache, view) and plugin commands (e.g. the leaderboard's
``submit`` and ``leaderboard``, through the ``vlmbench_cli_commands`` hook) are registered alike.
"""

from __future__ import annotations

import argparse
import gc
import operator
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from vlmbench import collector
from vlmbench.cli.commands import CommandSpec
from vlmbench.errors import Stopped, UserError, first_line, printable


def core_commands() -> list[CommandSpec]:
    """The commands vlmbench itself provides."""
    from vlmbench.cli import cache, judge, ls, run, score, validate, view

    return [run.COMMAND, score.COMMAND, judge.COMMAND, ls.COMMAND, validate.COMMAND, cache.COMMAND, view.COMMAND]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose flag errors are one line (argparse prints its whole usage before them): the error
    and where the usage is. Its subcommands' parsers are of the same class."""

    help_of = ""
    """The command whose ``--help`` a mistake points to (default: this parser's own): the top-level parser reports
    a subcommand's unknown flags, whose help is the subcommand's."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE; see `PROG --help``` on standard error and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {printable(message)}; see `{self.help_of or self.prog} --help`\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser for every subcommand, core and plugin. Given the command line ``argv``, only
    the subcommand it names gets its flags (``vlmbench --help`` lists the others by name and help, and
    configures none of them); None configures all."""
    import vlmbench
    from vlmbench.pluginmanager import command_specs

    parser = OneLineParser(prog="vlmbench", description="Evaluate vision-language models on unsafe-concept perception and alignment.")
    parser.add_argument("--version", action="version", version=f"vlmbench {vlmbench.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    core = core_commands()
    taken = {c.name for c in core}
    # The top-level options take no value, so the first word that is not an option names the subcommand.
    named = next((word for word in argv if not word.startswith("-")), None) if argv is not None else None
    for command in [*core, *(c for c in command_specs().values() if c.name not in taken)]:
        subparser = sub.add_parser(command.name, help=command.help)
        if argv is None or command.name == named:
            _add_arguments(command, subparser, core=command.name in taken)
            subparser.set_defaults(stopped_hint=command.stopped)
            parser.help_of = subparser.prog if named else ""
    return parser


def _add_arguments(command: CommandSpec, parser: argparse.ArgumentParser, core: bool) -> None:
    """Let ``command`` add its flags; a plugin's command that fails to is a one-line error naming it (the core's
    raise: a bug to see)."""
    try:
        command.add_arguments(parser)
    except Exception as exc:
        if core:
            raise
        raise UserError(
            f"command '{command.name}' (a plugin's) failed to set up its flags: {type(exc).__name__}: {first_line(exc)}; report it to the plugin's authors"
        ) from None


def _function(args: argparse.Namespace) -> Any:
    """What the parsed command runs; a command that set none (``parser.set_defaults(func=...)``) is a one-line error."""
    function = getattr(args, "func", None)
    if not callable(function):
        raise UserError(f"command '{args.command}' names nothing to run (parser.set_defaults(func=...)); report it to the command's authors")
    return function


def _exit_code(command: str, code: object) -> int:
    """A command's return value as an exit status: an integer (a bool as 0 or 1, numpy's too), None as 0."""
    if code is None:
        return 0
    try:
        return operator.index(code)  # type: ignore[arg-type]  # anything else raises TypeError
    except TypeError:
        raise UserError(f"command '{command}' returned {type(code).__name__}, not an exit status; report it to the command's authors") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line (per problem) and exit 2; a closed pipe
    (``vlmbench ls tasks | head -1``) ends the command quietly."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args: argparse.Namespace | None = None
    try:
        _check_text(argv)
        args = build_parser(argv).parse_args(argv)
        from vlmbench.cli.logs import cli_logging  # the help and flag errors need no logging

        with cli_logging():
            code = _exit_code(args.command, _function(args)(args))
            sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
            return code
    except BrokenPipeError:
        _silence_stdout()
        return 141  # as a process ended by SIGPIPE
    except UserError as exc:
        for line in str(exc).splitlines() or [""]:  # a message may quote a file's, a dataset's or a server's text
            print(f"vlmbench: error: {printable(line)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        how = f"stopped by {signal.Signals(exc.signum).name}" if isinstance(exc, Stopped) else "interrupted"
        if getattr(args, "stopped_hint", ""):
            print(f"vlmbench: {how}; {args.stopped_hint}", file=sys.stderr)  # type: ignore[union-attr]
        elif getattr(args, "no_store", False):
            print(f"vlmbench: {how}; nothing was stored (--no_store): the same command starts again from the beginning", file=sys.stderr)
        else:
            print(f"vlmbench: {how}; every response received is stored: rerun the same command to resume", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Stopped) else 130


def _check_text(argv: Sequence[str]) -> None:
    """Every argument is text that files can hold: bytes that are not UTF-8 reach Python as lone surrogates,
    which no JSON file, log or store can write (a one-line error now, not a traceback mid-run)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"argument {ascii(arg)[:120]} is not valid UTF-8; pass text and paths in UTF-8") from None


_owns_process = False  # set by console(): this process is the ``vlmbench`` command's alone


def console() -> int:
    """The ``vlmbench`` command (and ``python -m vlmbench``): :func:`main`, then a quick exit.

    Everything the command writes is written and closed by then, so the interpreter's final garbage
    collection need not walk the objects of a whole run (about 0.2 s after a full-size re-run); they
    are left to the process's end. Only here, never in :func:`main`, which tests and programs call
    in a process that goes on."""
    global _owns_process
    _owns_process = True
    # A signal set to be ignored (`nohup` ignores SIGHUP) stays ignored.
    handlers = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS if signal.getsignal(signum) is signal.SIG_DFL}
    try:
        code = main()
    finally:  # a program that runs the command (runpy) and goes on: its later main() calls freeze nothing
        _owns_process = False
        collector.enable(False)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    gc.freeze()
    return code


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop the command as Ctrl-C does (a scheduler's or ``timeout``'s SIGTERM, a closed terminal's SIGHUP):
what a run holds (answers reused from the store, waiting to be written with their verdicts) is written first."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def freeze_imports(*modules: str) -> None:
    """In the ``vlmbench`` command's own process (see :func:`console`): import ``modules``, then keep
    every object alive now (the imported libraries' and the parsed flags') out of the garbage
    collector's full passes. A full-size run creates millions of objects, and each full pass would
    walk the hundreds of thousands of the libraries again: about 0.4 s of a hub-size re-run. Those
    objects live as long as the process anyway. Where a run only reads stored answers and scores records
    with the core's own code, young objects are collected less often (:mod:`vlmbench.collector`). Does nothing when a program or
    a test calls :func:`main` in a process that goes on (it would keep that process's own garbage for good)."""
    if not _owns_process:
        return
    import importlib

    for name in modules:
        importlib.import_module(name)
    gc.freeze()
    collector.enable()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into the closed pipe stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
