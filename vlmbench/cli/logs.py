"""Where the command line's log records go: stderr, one ``vlmbench: ...`` line each.

vlmbench's own loggers (``vlmbench``, ``vlmbench_plugins``, ``vlmbench_leaderboard``) print at the
chosen ``--verbosity`` (default INFO: progress lines, request counts, throughput); other libraries'
loggers are left alone. The levels and handler are put back when the command returns, so calling
:func:`vlmbench.cli.main` in-process leaves the caller's logging as it was.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from vlmbench.errors import printable
from vlmbench.numbers import whole_number

LOGGERS = ("vlmbench", "vlmbench_plugins", "vlmbench_leaderboard")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def process_tag() -> str:
    """``[rank R/W] `` in a process of a multi-process launch (``accelerate launch`` sets ``RANK`` and
    ``WORLD_SIZE``), so that the interleaved lines of the processes say whose they are; else empty."""
    rank, world = whole_number(os.environ.get("RANK", "")), whole_number(os.environ.get("WORLD_SIZE", ""))
    return f"[rank {rank}/{world}] " if rank is not None and world is not None and world > 1 else ""


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = process_tag() + "\n".join(printable(line) for line in record.getMessage().split("\n"))  # text from files and servers is inert
        if record.levelno >= logging.ERROR:
            return f"vlmbench: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"vlmbench: warning: {message}"
        if record.levelno < logging.INFO:
            return f"vlmbench: debug: {record.name}: {message}"
        return f"vlmbench: {message}"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr`` (which tests and tqdm may swap)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stderr)
        super().emit(record)


def verbosity(text: str) -> str:
    """``--verbosity``: DEBUG, INFO, WARNING or ERROR (any case)."""
    from vlmbench.errors import UserError

    level = text.upper()
    if level not in LEVELS:
        raise UserError(f"--verbosity {text!r}: not a level; use one of {', '.join(LEVELS)}")
    return level


@contextmanager
def cli_logging(level: str = "INFO") -> Iterator[None]:
    """Print vlmbench's log records at ``level`` and above on stderr while the block runs."""
    handler = _Stderr()
    handler.setFormatter(_Format())
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, old_level in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.setLevel(old_level)


def set_level(level: str) -> None:
    """Change the level of vlmbench's loggers inside :func:`cli_logging` (e.g. from ``--verbosity``)."""
    for name in LOGGERS:
        logging.getLogger(name).setLevel(level)
