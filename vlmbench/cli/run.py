"""``vlmbench run``: evaluate a model on tasks (a thin layer over :func:`vlmbench.evaluation`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from vlmbench.cli import args as types
from vlmbench.cli import freeze_imports, lmeval
from vlmbench.cli.commands import CommandSpec
from vlmbench.cli.report import print_error_classes, print_request_counts, report
from vlmbench.errors import UserError

DATA_ENV = "VLMBENCH_DATA"


def run(ns: argparse.Namespace) -> int:
    """Build the configuration from the flags, evaluate, and print the summary."""
    from vlmbench.evaluation import EvalConfig, evaluate, parse_data_files

    if (done := lmeval.before_run(ns)) is not None:
        return done
    freeze_imports("pyarrow")  # every run reads its data through it (datasets only where no load is remembered: data.loadrecords)
    config = EvalConfig(
        model=ns.model,
        model_args=ns.model_args,
        tasks=ns.tasks,
        include_path=ns.include_path or [],
        limit=ns.limit,
        seed=ns.seed,
        batch_size=ns.batch_size,
        data=ns.data if ns.data is not None else os.environ.get(DATA_ENV) or "builtin",
        data_files=parse_data_files(ns.data_files),
        options_file=ns.options_file,
        output_path=ns.output_path,
        store=ns.store,
        use_store=not ns.no_store,
        reuse_sampled=ns.reuse_sampled,
        predict_only=ns.predict_only,
        gen_kwargs=ns.gen_kwargs,
        protocol=ns.protocol,
        system_instruction=ns.system_instruction,
        judge=ns.judge,
        judge_args=ns.judge_args,
    )
    try:
        result = evaluate(config)
    except UserError as exc:  # a --data the user never typed: the variable that set it is named
        if ns.data is None and os.environ.get(DATA_ENV) and str(exc).startswith("--data:"):
            raise UserError(f"{DATA_ENV}={config.data}:{str(exc).removeprefix('--data:')}; or pass --data") from None
        raise
    if result.results is None and not ns.predict_only:
        return 0  # a non-main process under data parallelism: the main one reports
    print_request_counts(result.manifest)
    print_error_classes(result.manifest)
    if result.results is None:
        # A run folder's judge arguments are never read back (it may come from elsewhere): the command says to pass them again.
        again = f" --judge {shlex.quote(ns.judge)}" if ns.judge else ""
        again += " --judge_args <this run's --judge_args>" if ns.judge_args else ""
        print(f"responses stored in {result.run_dir}; score them with: vlmbench score {shlex.quote(str(result.run_dir))}{again}", file=sys.stdout)
        return 0
    return report(result.results, result.run_dir, ns.max_error_rate)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench run``."""
    parser.add_argument("--model", default=None, help="backend name (see `vlmbench ls models`); required")
    parser.add_argument("--model_args", default="", help="backend arguments, k=v,k2=v2")
    parser.add_argument("--tasks", default="all", help="task names, group names or globs, comma-separated (default: all); 'list' lists them")
    types.add_include_path(parser)
    parser.add_argument(
        "--limit",
        type=types.limit,
        default=None,
        help="at most N documents per task, or a fraction (e.g. 0.1) of each task's; spread evenly over the data",
    )
    parser.add_argument("--output_path", default="results", type=types.path, help="folder for results (default: ./results)")
    parser.add_argument("--seed", type=int, default=0, help="seed for option order, sampling and baselines (default: 0)")
    parser.add_argument("--batch_size", type=types.batch_size, default=None, help="requests per batch, or 'auto' (backend default)")
    parser.add_argument(
        "--data",
        default=None,
        help=f"which data: 'builtin' (synthetic, offline; default) or 'hub' (yiting/UnsafeConcepts, MME; needs HF_TOKEN). Env: {DATA_ENV}",
    )
    parser.add_argument("--data_files", action="append", metavar="HUB_ID=PATH", help="load a hub dataset from a local copy (repeatable)")
    parser.add_argument(
        "--options_file", default=None, type=types.path, help="precomputed perception options (jsonl with option_str/correct_option per row)"
    )
    parser.add_argument(
        "--protocol",
        default="default",
        metavar="default|paper",
        help="generation settings: default (each task's; greedy) or paper (the study's: do_sample, temperature 1.0, top_p 0.9, "
        "max_new_tokens 512, seeded by --seed); --gen_kwargs goes over them",
    )
    types.add_max_error_rate(parser)
    parser.add_argument(
        "--store", default=None, type=types.path, help="response store file (default: $VLMBENCH_STORE or ~/.cache/vlmbench/responses.sqlite)"
    )
    parser.add_argument("--no_store", action="store_true", help="neither reuse nor store responses")
    parser.add_argument("--reuse_sampled", action="store_true", help="also reuse stored answers to sampled (seeded) requests")
    parser.add_argument("--predict_only", action="store_true", help="store responses without scoring (score later with `vlmbench score`)")
    types.add_judges(parser)
    lmeval.add_arguments(parser)
    parser.set_defaults(func=run)


COMMAND = CommandSpec("run", "evaluate a model on tasks", add_arguments)
