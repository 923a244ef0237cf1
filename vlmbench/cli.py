"""The ``vlmbench`` command line: run, ls, validate."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError

DATA_ENV = "VLMBENCH_DATA"


def parse_model_args(text: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` into a dict; a bare word or empty key is an error."""
    args: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--model_args: '{item}' is not key=value; write e.g. pretrained=org/model,dtype=bfloat16")
        args[key.strip()] = value.strip()
    return args


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer or 'auto'")


def _positive(text: str) -> int:
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a fraction between 0 and 1")
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def cmd_run(args: argparse.Namespace) -> int:
    """Evaluate a model on tasks and write results."""
    from vlmbench.backend import BackendOptions
    from vlmbench.data import sources
    from vlmbench.pluginmanager import backend_spec, did_you_mean
    from vlmbench.registry import discover
    from vlmbench.report import summary_table
    from vlmbench.results import build_results, write_results
    from vlmbench.runner import evaluate

    started = time.perf_counter()
    for mapping in args.data_files or []:
        hub_id, sep, local = mapping.partition("=")
        if not sep or not hub_id or not local:
            raise UserError(f"--data_files: '{mapping}' is not HUB_ID=LOCAL_PATH")
        sources.LOCAL_COPIES[hub_id] = local
    registry = discover()
    names = registry.select(args.tasks)
    variants = {"builtin"} | {v for n in names for v in registry.tasks[n].get("variants", {})}
    if args.data not in variants:
        raise UserError(f"--data: unknown data variant '{args.data}'{did_you_mean(args.data, variants)}; "
                        f"the selected tasks offer: {', '.join(sorted(variants))}")
    tasks = [registry.tasks[n].with_variant(args.data) for n in names]
    overrides = {"multiple_choice_options": {"options_file": str(Path(args.options_file).resolve())}} if args.options_file else None
    model_args = parse_model_args(args.model_args)
    spec = backend_spec(args.model)
    backend = spec.factory(model_args, BackendOptions(batch_size=args.batch_size, seed=args.seed))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    output_dir = Path(args.output_path) / _slug(args.model + ("_" + model_args.get("pretrained", model_args.get("model", "")) if model_args else "")) / stamp
    output_dir.mkdir(parents=True, exist_ok=True)
    runs = evaluate(tasks, backend, seed=args.seed, limit=args.limit,
                    chunk_size=args.batch_size if isinstance(args.batch_size, int) else None,
                    samples_dir=output_dir / "samples", overrides=overrides)
    config: dict[str, Any] = {"tasks": names, "seed": args.seed, "limit": args.limit, "data": args.data, "batch_size": args.batch_size}
    results = build_results(runs, backend=args.model, model_args=model_args, config=config, output_dir=output_dir,
                            seconds=time.perf_counter() - started)
    path = write_results(results, output_dir / "results.json")
    print(summary_table(results))
    print(f"\nresults: {path}")
    return _error_exit_code(results, args.max_error_rate)


def _error_exit_code(results: dict[str, Any], max_error_rate: float) -> int:
    """1 when failed requests exceed ``max_error_rate`` of all requests (results are written either way)."""
    total = sum(t["metrics"]["n_samples"] for t in results["tasks"].values())
    errors = sum(t["metrics"]["n_errors"] for t in results["tasks"].values())
    if errors:
        print(f"vlmbench: {errors} of {total} requests failed (see 'error' in the samples files)", file=sys.stderr)
    if total and errors / total > max_error_rate:
        print(f"vlmbench: error: failed requests {errors / total:.1%} exceed --max_error_rate {max_error_rate:.1%}", file=sys.stderr)
        return 1
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    """List registered tasks, groups or model backends."""
    from tabulate import tabulate

    if args.what == "models":
        from vlmbench.pluginmanager import backend_specs

        print(tabulate([[s.name, s.description] for s in backend_specs().values()], headers=["model", "description"]))
        return 0
    from vlmbench.registry import discover

    registry = discover()
    print(tabulate([[t.name, t.version, t.description] for t in registry.tasks.values()], headers=["task", "version", "description"]))
    print()
    print(tabulate([[g.name, ", ".join(registry.select(g.name))] for g in registry.groups.values()], headers=["group", "tasks"]))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate task/group YAML files against the schema; one line per file."""
    from vlmbench.taskconfig import load_file

    failed = 0
    for path in args.files:
        try:
            config = load_file(Path(path))
        except UserError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
        else:
            print(f"ok: {path} ({'task' if hasattr(config, 'fields') else 'group'} '{config.name}')")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    import os

    parser = argparse.ArgumentParser(prog="vlmbench", description="Evaluate vision-language models on unsafe-concept perception and alignment.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate a model on tasks")
    run.add_argument("--model", required=True, help="backend name (see `vlmbench ls models`)")
    run.add_argument("--model_args", default="", help="backend arguments, k=v,k2=v2")
    run.add_argument("--tasks", default="all", help="task names, group names or globs, comma-separated (default: all)")
    run.add_argument("--limit", type=_positive, default=None, help="at most N documents per task, spread evenly over the data")
    run.add_argument("--output_path", default="results", help="folder for results (default: ./results)")
    run.add_argument("--seed", type=int, default=0, help="seed for option order, sampling and baselines (default: 0)")
    run.add_argument("--batch_size", type=_batch_size, default=None, help="requests per batch, or 'auto' (backend default)")
    run.add_argument("--data", default=os.environ.get(DATA_ENV, "builtin"),
                     help=f"which data: 'builtin' (synthetic, offline; default) or 'hub' (yiting/UnsafeConcepts, MME; needs HF_TOKEN). Env: {DATA_ENV}")
    run.add_argument("--data_files", action="append", metavar="HUB_ID=PATH", help="load a hub dataset from a local copy (repeatable)")
    run.add_argument("--max_error_rate", type=_fraction, default=0.05,
                     help="exit non-zero when more than this fraction of requests fail (default: 0.05)")
    run.add_argument("--options_file", default=None, help="precomputed perception options (jsonl with option_str/correct_option per row)")
    run.set_defaults(func=cmd_run)

    ls = sub.add_parser("ls", help="list tasks or models")
    ls.add_argument("what", choices=["tasks", "models"])
    ls.set_defaults(func=cmd_ls)

    validate = sub.add_parser("validate", help="check task YAML files against the schema")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"vlmbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlmbench: interrupted; responses so far are in the samples files", file=sys.stderr)
        return 130
