"""Argument types and shared flags of the command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def batch_size(text: str) -> int | str:
    """``--batch_size``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer or 'auto'")


def positive(text: str) -> int:
    """A positive integer."""
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")


def fraction(text: str) -> float:
    """A number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a fraction between 0 and 1")
    return value


def add_include_path(parser: argparse.ArgumentParser) -> None:
    """``--include_path``: extra task folders (repeatable)."""
    parser.add_argument("--include_path", action="append", type=Path, help="an extra folder of task YAML files (repeatable)")


def add_max_error_rate(parser: argparse.ArgumentParser) -> None:
    """``--max_error_rate``: the share of failed requests above which the command exits 1."""
    parser.add_argument(
        "--max_error_rate", type=fraction, default=0.05, help="exit non-zero when more than this fraction of requests fail (default: 0.05)"
    )
