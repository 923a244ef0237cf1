"""``vlmbench score RUN_DIR``: score a run's stored responses again, without calling the model."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmbench.cli import args as types
from vlmbench.cli.commands import CommandSpec
from vlmbench.cli.report import report


def score(ns: argparse.Namespace) -> int:
    """Re-score and print the summary."""
    from vlmbench.evaluation import score as score_run

    return report(score_run(Path(ns.run_dir)), Path(ns.run_dir), ns.max_error_rate)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench score``."""
    parser.add_argument("run_dir")
    types.add_max_error_rate(parser)
    parser.set_defaults(func=score)


COMMAND = CommandSpec("score", "score a run folder's stored responses again, without calling the model", add_arguments)
