"""The library entry point: ``evaluate(EvalConfig(...))`` runs tasks on a model and returns the results.

This is the one orchestration path: the ``vlmbench run`` command, the tests, the benchmarks and
the leaderboard's sample site all call it. A run predicts every task (each response stored the
moment it arrives), writes the manifest as it goes, then scores through the one scoring path.

    from vlmbench import EvalConfig, evaluate
    result = evaluate(EvalConfig(model="random", tasks="perception-image", limit=10, output_path="results"))
    print(result.results["tasks"]["perception-image"]["metrics"]["accuracy"])
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench.records import Results, RunManifest

DEFAULT_DATA = "builtin"


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides what a run does. Field names follow the CLI flags.

    ``model_args`` takes a mapping or lm-eval's ``"k=v,k2=v2"`` text; ``tasks`` takes a list or a
    comma-separated text of task names, group names and globs.
    """

    model: str
    model_args: Mapping[str, str] | str = field(default_factory=dict)
    tasks: Sequence[str] | str = "all"
    include_path: Sequence[Path | str] = ()
    limit: int | None = None
    seed: int = 0
    batch_size: int | str | None = None
    data: str = DEFAULT_DATA
    data_files: Mapping[str, str] = field(default_factory=dict)
    options_file: Path | str | None = None
    output_path: Path | str = "results"
    store: Path | str | None = None
    use_store: bool = True
    reuse_sampled: bool = False
    predict_only: bool = False


@dataclass(frozen=True)
class RunResult:
    """What a run produced: its folder, its manifest and (unless predict-only) its results."""

    run_dir: Path
    manifest: RunManifest
    results: Results | None

    @property
    def requests_sent(self) -> int:
        """Requests sent to the model in this run (all tasks)."""
        return sum(t["requests"]["sent"] for t in self.manifest.get("tasks", {}).values())

    @property
    def requests_reused(self) -> int:
        """Answers reused from the response store (all tasks)."""
        return sum(t["requests"]["reused"] for t in self.manifest.get("tasks", {}).values())


def parse_model_args(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``k=v,k2=v2`` into a dict; a bare word or empty key is an error. A mapping passes through."""
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    args: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--model_args: '{item}' is not key=value; write e.g. pretrained=org/model,dtype=bfloat16")
        args[key.strip()] = value.strip()
    return args


def evaluate(config: EvalConfig) -> RunResult:
    """Run ``config``: predict every selected task (storing each response), then score.

    Raises :class:`~vlmbench.errors.UserError` for anything the user can fix. Under data
    parallelism every process calls this; non-main processes return a result without scores.
    """
    from vlmbench.backend import BackendOptions, backend_cacheable, backend_identity, close_backend
    from vlmbench.data import sources
    from vlmbench.distributed import processes
    from vlmbench.pluginmanager import backend_spec
    from vlmbench.results import MANIFEST, manifest_task, now, provenance, redact_args, redact_identity, score_run, write_json
    from vlmbench.runner import RunContext, predict_task
    from vlmbench.store import ResponseStore, default_store_path

    started = time.perf_counter()
    for hub_id, local in config.data_files.items():
        if not Path(local).expanduser().exists():
            raise UserError(f"--data_files: {local} does not exist; point {hub_id} to a local copy of the dataset")
        sources.LOCAL_COPIES[hub_id] = str(local)
    tasks = select_tasks(config)
    model_args = parse_model_args(config.model_args)
    spec = backend_spec(config.model)
    group = processes()
    options = BackendOptions(batch_size=config.batch_size, seed=config.seed, rank=group.rank, world_size=group.world, local_rank=group.local_rank)
    backend = spec.factory(model_args, options)
    try:
        identity = redact_identity(backend_identity(backend, config.model, model_args))
        store = None
        if config.use_store and backend_cacheable(backend):
            store = ResponseStore(Path(config.store) if config.store else default_store_path())
        label = config.model + ("_" + (model_args.get("pretrained") or model_args.get("model") or "") if model_args else "")
        run_dir = Path(group.share(str(new_run_dir(Path(config.output_path) / slug(label))) if group.is_main else None))
        group.wait()
        options_file = str(Path(config.options_file).resolve()) if config.options_file else None
        ctx = RunContext(
            backend=backend,
            backend_name=config.model,
            model_identity=identity,
            seed=config.seed,
            limit=config.limit,
            overrides={"multiple_choice_options": {"options_file": options_file}} if options_file else None,
            store=store,
            reuse_sampled=config.reuse_sampled,
            shard=(group.rank, group.world),
        )
        manifest: RunManifest = {
            "schema_version": 1,
            "vlmbench_version": _version(),
            "created": now(),
            "model": {"backend": config.model, "args": redact_args(model_args), "identity": identity},
            "config": {
                "tasks": [t.name for t in tasks],
                "seed": config.seed,
                "limit": config.limit,
                "data": config.data,
                "batch_size": config.batch_size,
                "processes": group.world,
                "store": str(store.path) if store else None,
            },
            "provenance": provenance(),
            "tasks": {},
            "complete": False,
        }
        for task in tasks:
            name = f"{task.name}.jsonl" if group.world == 1 else f"{task.name}.rank{group.rank}.jsonl"
            prediction = predict_task(task, ctx, run_dir / "samples" / name)
            group.wait()
            if group.is_main:
                if group.world > 1:
                    _merge_shards(prediction, run_dir / "samples", group.world)
                manifest["tasks"][task.name] = manifest_task(prediction, run_dir)
                write_json(run_dir / MANIFEST, manifest)
    finally:
        close_backend(backend)
    if not group.is_main:
        return RunResult(run_dir, manifest, None)
    manifest["complete"] = True
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_json(run_dir / MANIFEST, manifest)
    return RunResult(run_dir, manifest, None if config.predict_only else score_run(run_dir))


def score(run_dir: Path | str) -> Results:
    """Score a run folder's stored responses again (no model is called) and rewrite results.json."""
    from vlmbench.results import score_run

    return score_run(Path(run_dir))


def select_tasks(config: EvalConfig) -> list[Any]:
    """The configured tasks, at the configured data variant, in selection order."""
    from vlmbench.pluginmanager import did_you_mean
    from vlmbench.registry import discover

    registry = discover([Path(p) for p in config.include_path])
    spec = config.tasks if isinstance(config.tasks, str) else ",".join(config.tasks)
    names = registry.select(spec)
    variants = {DEFAULT_DATA} | {v for n in names for v in registry.tasks[n].get("variants", {})}
    if config.data not in variants:
        raise UserError(
            f"--data: unknown data variant '{config.data}'{did_you_mean(config.data, variants)}; "
            f"the selected tasks offer: {', '.join(sorted(variants))}"
        )
    return [registry.tasks[n].with_variant(config.data) for n in names]


def slug(text: str) -> str:
    """Text safe as one folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def new_run_dir(parent: Path) -> Path:
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
