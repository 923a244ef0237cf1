"""``vlmbench score RUN_DIR``: score a run's stored responses again, without calling the model."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmbench.cli import args as types
from vlmbench.cli import freeze_imports
from vlmbench.cli.commands import CommandSpec
from vlmbench.cli.report import report


def score(ns: argparse.Namespace) -> int:
    """Re-score (with the run's judges, or those named) and print the summary."""
    from vlmbench.evaluation import score as score_run

    freeze_imports()  # the command's own process, as `run`'s: its tasks are scored on two cores (vlmbench.forked)
    results = score_run(Path(ns.run_dir), judge=ns.judge, judge_args=ns.judge_args or None, store=ns.store, use_store=not ns.no_store)
    return report(results, Path(ns.run_dir), ns.max_error_rate)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench score``."""
    parser.add_argument("run_dir", type=types.path)
    types.add_max_error_rate(parser)
    types.add_judges(parser)
    parser.add_argument("--store", default=None, type=types.path, help="response store for model judges' calls (default: the run's store)")
    parser.add_argument("--no_store", action="store_true", help="neither reuse nor store judge calls")
    parser.set_defaults(func=score)


COMMAND = CommandSpec("score", "score a run folder's stored responses again, without calling the model", add_arguments)
