"""The ``vlmbench`` command line: run, score, ls, validate, cache."""

from __future__ import annotations

import argparse
import os
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


def _model_identity(backend: Any, name: str, model_args: dict[str, str]) -> dict[str, Any]:
    from vlmbench.results import redact_args

    identity = backend.identity() if callable(getattr(backend, "identity", None)) else {"backend": name, "args": model_args}
    if not isinstance(identity, dict):
        return {"backend": name}
    return {k: redact_args(v) if isinstance(v, dict) else v for k, v in redact_args(identity).items()}


def cmd_run(args: argparse.Namespace) -> int:
    """Evaluate a model on tasks: predict (storing every response), then score."""
    from vlmbench.backend import BackendOptions
    from vlmbench.data import sources
    from vlmbench.distributed import processes
    from vlmbench.pluginmanager import backend_spec, did_you_mean
    from vlmbench.registry import discover
    from vlmbench.results import MANIFEST, manifest_task, now, provenance, redact_args, score_run, write_json
    from vlmbench.runner import RunContext, predict_task
    from vlmbench.store import ResponseStore, default_store_path

    started = time.perf_counter()
    for mapping in args.data_files or []:
        hub_id, sep, local = mapping.partition("=")
        if not sep or not hub_id or not local:
            raise UserError(f"--data_files: '{mapping}' is not HUB_ID=LOCAL_PATH")
        if not Path(local).expanduser().exists():
            raise UserError(f"--data_files: {local} does not exist; point {hub_id} to a local copy of the dataset")
        sources.LOCAL_COPIES[hub_id] = local
    registry = discover(args.include_path)
    names = registry.select(args.tasks)
    variants = {"builtin"} | {v for n in names for v in registry.tasks[n].get("variants", {})}
    if args.data not in variants:
        raise UserError(f"--data: unknown data variant '{args.data}'{did_you_mean(args.data, variants)}; "
                        f"the selected tasks offer: {', '.join(sorted(variants))}")
    tasks = [registry.tasks[n].with_variant(args.data) for n in names]
    model_args = parse_model_args(args.model_args)
    spec = backend_spec(args.model)
    group = processes()
    if group.world > 1 and args.model == "hf" and "device" not in model_args and "device_map" not in model_args:
        import torch

        if torch.cuda.is_available():
            model_args["device"] = f"cuda:{group.local_rank}"
    backend = spec.factory(model_args, BackendOptions(batch_size=args.batch_size, seed=args.seed))
    identity = _model_identity(backend, args.model, model_args)
    store = None
    if not args.no_store and getattr(backend, "cacheable", True):
        store = ResponseStore(Path(args.store) if args.store else default_store_path())

    label = args.model + ("_" + (model_args.get("pretrained") or model_args.get("model") or "") if model_args else "")
    run_dir = Path(group.share(str(_new_run_dir(Path(args.output_path) / _slug(label))) if group.is_main else None))
    group.wait()
    ctx = RunContext(backend=backend, backend_name=args.model, model_identity=identity, seed=args.seed, limit=args.limit,
                     overrides={"multiple_choice_options": {"options_file": str(Path(args.options_file).resolve())}} if args.options_file else None,
                     store=store, reuse_sampled=args.reuse_sampled, score=not args.predict_only, shard=(group.rank, group.world))
    manifest: dict[str, Any] = {
        "schema_version": 1, "vlmbench_version": _version(), "created": now(),
        "model": {"backend": args.model, "args": redact_args(model_args), "identity": identity},
        "config": {"tasks": names, "seed": args.seed, "limit": args.limit, "data": args.data, "batch_size": args.batch_size,
                   "processes": group.world, "store": str(store.path) if store else None},
        "provenance": provenance(), "tasks": {}, "complete": False,
    }
    for task in tasks:
        samples_file = run_dir / "samples" / (f"{task.name}.jsonl" if group.world == 1 else f"{task.name}.rank{group.rank}.jsonl")
        prediction = predict_task(task, ctx, samples_file)
        group.wait()
        if group.is_main:
            if group.world > 1:
                _merge_shards(prediction, run_dir / "samples", group.world)
            manifest["tasks"][task.name] = manifest_task(prediction, run_dir)
            write_json(run_dir / MANIFEST, manifest)
    if not group.is_main:
        return 0
    manifest["complete"] = True
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_json(run_dir / MANIFEST, manifest)
    _print_request_counts(manifest)
    if args.predict_only:
        print(f"responses stored in {run_dir}; score them with: vlmbench score {run_dir}")
        return 0
    return _report(score_run(run_dir), run_dir, args.max_error_rate)


def _new_run_dir(parent: Path) -> Path:
    """A fresh run folder named by the time; a suffix keeps two runs started in the same second apart."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        folder = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            if not folder.is_dir():
                break
        except OSError as exc:
            raise UserError(f"--output_path: cannot create {folder} ({exc.strerror}); choose a writable folder") from None
    raise UserError(f"--output_path: cannot create a run folder under {parent} (a file is in the way?); choose another folder")


def _version() -> str:
    import vlmbench

    return vlmbench.__version__


def _merge_shards(prediction: Any, samples_dir: Path, world: int) -> None:
    """Concatenate the per-process sample files of a task into one, and count every process's requests."""
    import json

    target = samples_dir / f"{prediction.task.name}.jsonl"
    prediction.sent = prediction.reused = 0
    prediction.usage = {}
    with open(target, "w", encoding="utf-8") as out:
        for rank in range(world):
            shard = samples_dir / f"{prediction.task.name}.rank{rank}.jsonl"
            text = shard.read_text(encoding="utf-8")
            out.write(text)
            for record in map(json.loads, text.splitlines()):
                prediction.reused += record["reused"]
                prediction.sent += not record["reused"] and record["error"] != "backend returned no response"
                for name, value in (record["usage"] or {}).items() if not record["reused"] else ():
                    prediction.usage[name] = prediction.usage.get(name, 0) + int(value)
            shard.unlink()
    prediction.samples_file = target


def _print_request_counts(manifest: dict[str, Any]) -> None:
    sent = sum(t["requests"]["sent"] for t in manifest["tasks"].values())
    reused = sum(t["requests"]["reused"] for t in manifest["tasks"].values())
    print(f"requests: {sent} sent to the model, {reused} reused from the response store", file=sys.stderr)


def _report(results: dict[str, Any], run_dir: Path, max_error_rate: float) -> int:
    """Print the summary; 1 when failed requests exceed ``max_error_rate`` (results are written either way)."""
    from vlmbench.report import summary_table

    print(summary_table(results))
    print(f"\nresults: {run_dir / 'results.json'}")
    total = sum(t["metrics"]["n_samples"] for t in results["tasks"].values())
    errors = sum(t["metrics"]["n_errors"] for t in results["tasks"].values())
    if errors:
        print(f"vlmbench: {errors} of {total} requests failed (see 'error' in the samples files)", file=sys.stderr)
    if total and errors / total > max_error_rate:
        print(f"vlmbench: error: failed requests {errors / total:.1%} exceed --max_error_rate {max_error_rate:.1%}", file=sys.stderr)
        return 1
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score the stored responses of a run folder again, without calling the model."""
    from vlmbench.results import score_run

    return _report(score_run(Path(args.run_dir), rewrite_samples=True), Path(args.run_dir), args.max_error_rate)


def cmd_cache(args: argparse.Namespace) -> int:
    """Inspect or prune the response store."""
    from tabulate import tabulate

    from vlmbench.store import ResponseStore, default_store_path

    path = Path(args.store) if args.store else default_store_path()
    if not path.exists():
        print(f"response store {path}: empty (no file yet)")
        return 0
    store = ResponseStore(path)
    if args.action == "clear":
        deleted = store.clear(backend=args.model, model_contains=args.model_id)
        print(f"deleted {deleted} responses from {path}")
        return 0
    rows = [[e["backend"], _short(e["model"]), e["responses"], _date(e["first"]), _date(e["last"])] for e in store.info()
            if (not args.model or e["backend"] == args.model)]
    print(f"response store: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(tabulate(rows, headers=["backend", "model", "responses", "first", "last"]))
    return 0


def _short(model: dict[str, Any]) -> str:
    """A model identity as ``k=v`` pairs (nested args flattened), for one table cell."""
    flat: dict[str, Any] = {}
    for key, value in model.items():
        if isinstance(value, dict):
            flat.update(value)
        elif key != "backend" and value is not None:
            flat[key] = value
    return ", ".join(f"{k}={v}" for k, v in flat.items())[:80] or "-"


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def cmd_ls(args: argparse.Namespace) -> int:
    """List registered tasks, groups or model backends."""
    from tabulate import tabulate

    if args.what == "models":
        from vlmbench.pluginmanager import backend_specs

        print(tabulate([[s.name, s.description] for s in backend_specs().values()], headers=["model", "description"]))
        return 0
    from vlmbench.registry import discover

    registry = discover(args.include_path)
    print(tabulate([[t.name, t.version, t.description] for t in registry.tasks.values()], headers=["task", "version", "description"]))
    print()
    print(tabulate([[g.name, ", ".join(registry.select(g.name))] for g in registry.groups.values()], headers=["group", "tasks"]))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate task/group YAML files against the schema; one line per file."""
    from vlmbench.taskconfig import TaskConfig, load_file

    failed = 0
    for path in args.files:
        try:
            config = load_file(Path(path))
        except UserError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
        else:
            print(f"ok: {path} ({'task' if isinstance(config, TaskConfig) else 'group'} '{config.name}')")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="vlmbench", description="Evaluate vision-language models on unsafe-concept perception and alignment.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate a model on tasks")
    run.add_argument("--model", required=True, help="backend name (see `vlmbench ls models`)")
    run.add_argument("--model_args", default="", help="backend arguments, k=v,k2=v2")
    run.add_argument("--tasks", default="all", help="task names, group names or globs, comma-separated (default: all)")
    run.add_argument("--include_path", action="append", type=Path, help="an extra folder of task YAML files (repeatable)")
    run.add_argument("--limit", type=_positive, default=None, help="at most N documents per task, spread evenly over the data")
    run.add_argument("--output_path", default="results", help="folder for results (default: ./results)")
    run.add_argument("--seed", type=int, default=0, help="seed for option order, sampling and baselines (default: 0)")
    run.add_argument("--batch_size", type=_batch_size, default=None, help="requests per batch, or 'auto' (backend default)")
    run.add_argument("--data", default=os.environ.get(DATA_ENV, "builtin"),
                     help=f"which data: 'builtin' (synthetic, offline; default) or 'hub' (yiting/UnsafeConcepts, MME; needs HF_TOKEN). Env: {DATA_ENV}")
    run.add_argument("--data_files", action="append", metavar="HUB_ID=PATH", help="load a hub dataset from a local copy (repeatable)")
    run.add_argument("--options_file", default=None, help="precomputed perception options (jsonl with option_str/correct_option per row)")
    run.add_argument("--max_error_rate", type=_fraction, default=0.05,
                     help="exit non-zero when more than this fraction of requests fail (default: 0.05)")
    run.add_argument("--store", default=None, help="response store file (default: $VLMBENCH_STORE or ~/.cache/vlmbench/responses.sqlite)")
    run.add_argument("--no_store", action="store_true", help="neither reuse nor store responses")
    run.add_argument("--reuse_sampled", action="store_true", help="also reuse stored answers to sampled (seeded) requests")
    run.add_argument("--predict_only", action="store_true", help="store responses without scoring (score later with `vlmbench score`)")
    run.set_defaults(func=cmd_run)

    score = sub.add_parser("score", help="score a run folder's stored responses again, without calling the model")
    score.add_argument("run_dir")
    score.add_argument("--max_error_rate", type=_fraction, default=0.05)
    score.set_defaults(func=cmd_score)

    ls = sub.add_parser("ls", help="list tasks or models")
    ls.add_argument("what", choices=["tasks", "models"])
    ls.add_argument("--include_path", action="append", type=Path, help="an extra folder of task YAML files (repeatable)")
    ls.set_defaults(func=cmd_ls)

    validate = sub.add_parser("validate", help="check task YAML files against the schema")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=cmd_validate)

    cache = sub.add_parser("cache", help="inspect or prune the response store")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--model", default=None, help="only this backend's responses")
    cache.add_argument("--model_id", default=None, help="only responses whose model identity contains this text")
    cache.add_argument("--store", default=None, help="the store file (default: as for `run`)")
    cache.set_defaults(func=cmd_cache)

    from vlmbench_leaderboard.cli import add_commands

    add_commands(sub)
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
        print("vlmbench: interrupted; every response received is stored: rerun the same command to resume", file=sys.stderr)
        return 130
