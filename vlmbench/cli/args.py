"""Argument types and shared flags of the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmbench.numbers import whole_number


def batch_size(text: str) -> int | str:
    """``--batch_size``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    number = whole_number(text)
    if number:
        return number
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer or 'auto'")


def positive(text: str) -> int:
    """A positive integer."""
    number = whole_number(text)
    if number:
        return number
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")


def limit(text: str) -> int | float:
    """``--limit``: a positive integer (documents per task) or a fraction between 0 and 1 (of each task's documents)."""
    from vlmbench.errors import UserError

    try:
        if text.strip().isdigit():
            number = whole_number(text.strip())
            if number:
                return number
        elif 0 < float(text) < 1:
            return float(text)
    except ValueError:
        pass
    raise UserError(
        f"--limit {text!r}: give a number of documents per task (e.g. --limit 20) or a fraction of each task's documents (e.g. --limit 0.1)"
    )


def fraction(text: str) -> float:
    """A number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a fraction between 0 and 1")
    return value


def path(text: str) -> str:
    """A file or folder argument: an empty one is refused (``--store ""``, from an unset shell variable, would quietly
    be the default store; ``--output_path ""`` the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; pass a path (an unset shell variable?)")
    return text


def include_path(text: str) -> Path:
    """``--include_path``: a folder; an empty value is refused (as a path it would be the current folder)."""
    from vlmbench.errors import UserError

    if not text.strip():
        raise UserError(f"--include_path: {text!r} is empty; pass a folder of task YAML files (e.g. --include_path ./my-tasks)")
    return Path(text)


def add_include_path(parser: argparse.ArgumentParser) -> None:
    """``--include_path``: extra task folders (repeatable)."""
    parser.add_argument("--include_path", action="append", type=include_path, help="an extra folder of task YAML files (repeatable)")


def add_max_error_rate(parser: argparse.ArgumentParser) -> None:
    """``--max_error_rate``: the share of failed requests above which the command exits 1."""
    parser.add_argument(
        "--max_error_rate", type=fraction, default=0.05, help="exit non-zero when more than this fraction of requests fail (default: 0.05)"
    )


def add_judges(parser: argparse.ArgumentParser) -> None:
    """``--judge`` and ``--judge_args``: which judges read the responses, and their arguments."""
    parser.add_argument(
        "--judge",
        default=None,
        metavar="NAME[,NAME...]",
        help="judges of the responses, headline first: rules (default), paper-classifier, llm-judge, or a plugin's (see `vlmbench ls scorers`)",
    )
    parser.add_argument(
        "--judge_args",
        default="",
        metavar="k=v,...",
        help="judge arguments, e.g. backend=openai,model=gpt-4o-mini; prefix a key with a judge's name to give it to that judge only (llm-judge.model=...)",
    )
