"""The run manifest (``run.json``) and the results file (``results.json``) built from sample records.

``vlmbench run`` writes the manifest, predicts into ``samples/*.jsonl`` and then scores; ``vlmbench
score RUN_DIR`` repeats only the scoring, from the stored responses, without calling any model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any, cast

import vlmbench
from vlmbench.backend import inert_line
from vlmbench.errors import UserError
from vlmbench.forked import Background, map_in_two
from vlmbench.jsontext import outline
from vlmbench.records import Results, RunManifest, SampleRecord, TaskManifest, TaskResults, record_json
from vlmbench.redact import redact
from vlmbench.runfolder import MANIFEST, RESULTS, read_fix, read_manifest, read_records, samples_file
from vlmbench.runner import TaskPrediction
from vlmbench.safefiles import replace_file
from vlmbench.scoring.aggregate import SCORED_FIELDS, ScoringPlan, concept_categories, modality_gaps, score_records
from vlmbench.scoring.base import ScorerOptions
from vlmbench.scoring.judging import JudgeConfig, judged_in_process
from vlmbench.taskconfig import TaskConfig

RECORDED_PACKAGES = ("vlmbench", "datasets", "pillow", "numpy", "pluggy", "jsonschema", "jinja2", "torch", "transformers", "accelerate", "openai")
# The fields of a manifest's task entry that its results entry leaves out; it copies every other one and adds
# the fields of scoring (vlmbench.scoring.aggregate.SCORED_FIELDS).
MANIFEST_ONLY = frozenset({"answer_parser", "scorer_args", "metric_list", "cluster_key", "n_samples", "judges"})


def redact_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Model args with secrets replaced by ``***`` (see :mod:`vlmbench.redact`)."""
    return dict(redact(dict(args)))


def redact_identity(identity: Mapping[str, Any]) -> dict[str, Any]:
    """A backend identity with secrets masked at every depth."""
    return dict(redact(dict(identity)))


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The JSON Schema of results files, as shipped in the package."""
    schema: dict[str, Any] = json.loads(resources.files("vlmbench.schemas").joinpath("results.schema.json").read_text())
    return schema


def validate_results(results: dict[str, Any], manifest: Path | None = None) -> None:
    """Check a results document against the shipped schema (compiled: results are large). ``manifest``: the
    run.json the document's copied fields come from; a field of it that fails is named as the folder's damage."""
    import fastjsonschema

    try:
        results_validator()(results)
    except fastjsonschema.JsonSchemaException as exc:
        path = [str(part) for part in getattr(exc, "path", None) or []][1:]  # after the document's own name, "data"
        if manifest is not None and _copied_from_manifest(path):
            field = inert_line(".".join(path), 120)
            raise UserError(
                f"{manifest}: field '{field}' is not what a run writes ({inert_line(str(exc), 200)}); the run folder is damaged"
            ) from None
        raise UserError(f"results do not match the results schema ({exc}); this is a bug in vlmbench or a plugin") from None


def _copied_from_manifest(path: Sequence[str]) -> bool:
    """Whether a results field at ``path`` is one :func:`score_run` copies from run.json rather than computes."""
    if not path:
        return False
    if path[0] == "tasks":  # a task entry as a whole (a field missing) holds what scoring adds in full: the rest is copied
        return len(path) == 2 or (len(path) >= 3 and path[2] not in SCORED_FIELDS)
    return path[0] in ("vlmbench_version", "created", "model", "config", "provenance", "seconds", "reused_provenance")


@lru_cache(maxsize=1)
def results_validator() -> Any:
    """The compiled validator of results files (:func:`vlmbench.schemacache.compiled_validator`): returns the
    document or raises ``fastjsonschema.JsonSchemaException``."""
    from vlmbench.schemacache import compiled_validator

    return compiled_validator(results_schema())


def git_commit() -> str | None:
    """The commit of the vlmbench source checkout, when running from one."""
    source = Path(vlmbench.__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return os.environ.get("VLMBENCH_GIT_COMMIT")
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def provenance() -> dict[str, Any]:
    """Versions of everything that can change a number (worked out once per process; a new copy each call)."""
    return copy.deepcopy(_provenance())


@lru_cache(maxsize=1)
def _provenance() -> dict[str, Any]:
    packages = {}
    for name in RECORDED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"git_commit": git_commit(), "python": platform.python_version(), "platform": platform.platform(), "packages": packages}


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_fields(task: TaskConfig) -> dict[str, Any]:
    """What the manifest records of a task that the task itself fixes: version, hashes, prompts, settings,
    scorer and metrics (``leaderboard verify`` checks a bundle's against the current task's)."""
    return {
        "version": task.version,
        "config_hash": task.config_hash,
        "prompt_hash": task.prompt_hash,
        "ability": task.get("ability"),
        "modality": task.get("modality"),
        "variant": task.variant,
        "prompts": task.templates,
        "generation_kwargs": task.get("generation_kwargs", {}),
        "scorer": task.scorer,
        "scorer_args": task.scorer_args,
        "metric_list": task.metric_names,
        "cluster_key": task.cluster_key,
    }


def manifest_task(prediction: TaskPrediction, run_dir: Path, judges: list[str] | None = None) -> TaskManifest:
    """What the manifest records of one task: its identity, data, settings, judges and request counts."""
    task = prediction.task
    entry = {
        **task_fields(task),
        "datasets": [dataclasses.asdict(d) for d in prediction.datasets],
        "judges": judges or task.judges,
        "samples_file": str(prediction.samples_file.relative_to(run_dir)),
        "n_samples": prediction.n_samples,
        "requests": {"sent": prediction.sent, "reused": prediction.reused},
        "seconds": round(prediction.seconds, 3),
        "usage": prediction.usage,
    }
    return cast(TaskManifest, entry)  # task_fields gives the TaskManifest fields it names


def write_json(path: Path, value: Mapping[str, Any]) -> Path:
    """Write JSON atomically (a crash leaves the old file or the new one, never half of one)."""
    replace_file(path, outline(value) + "\n")
    return path


TASK_SCORING_COST = 1000
"""What scoring a task costs besides its samples, in samples (its groups, intervals and first calls): a hub-size
re-run scored 150 samples of alignment-context-text in 30 ms, 12,835 of alignment-image in 170 ms. The tasks are
shared between two processes by samples plus this (:func:`vlmbench.forked.map_in_two`)."""


def recorded_judging(manifest: RunManifest) -> JudgeConfig:
    """The judges a run recorded (names, and arguments without their redacted secrets), with its store."""
    config = manifest.get("config", {})
    args = {str(k): str(v) for k, v in (config.get("judge_args") or {}).items() if v != "***"}
    store = config.get("judge_store") or config.get("store")
    return JudgeConfig(
        tuple(config.get("judges") or ()), args, ScorerOptions(store=Path(store) if store else None, seed=int(config.get("seed") or 0))
    )


def score_task(
    entry: TaskManifest, run_dir: Path, judging: JudgeConfig | None = None, written: Sequence[tuple[SampleRecord, str | None]] | None = None
) -> tuple[TaskResults, list[SampleRecord]]:
    """Score every record of a task again and compute its metrics; returns (results entry, records).

    ``written``: the task's records with their lines, as the run that just wrote them kept them
    (:attr:`~vlmbench.runner.TaskPrediction.written`); without it, the samples file is read."""
    path = samples_file(run_dir, entry)
    records = sorted((r for r, _ in written), key=lambda r: r["index"]) if written is not None else read_records(path)
    if len(records) != entry["n_samples"]:
        raise UserError(f"{path}: {len(records)} of {entry['n_samples']} samples; the run is incomplete (rerun the same command to resume)")
    result: dict[str, Any] = {k: v for k, v in entry.items() if k not in MANIFEST_ONLY}
    judging = judging or JudgeConfig()
    result.update(score_records(records, ScoringPlan.of_manifest(entry, judging.names), judging))
    return result, records  # type: ignore[return-value]


_UNSCORED_END = '"parsed": null, "correct": null}\n'
_VERDICT_FIELDS = ("parsed", "correct", "verdicts")


def scored_line(record: SampleRecord, written: str | None = None) -> str:
    """The JSON line of a scored record. ``written``: the line the run wrote for it before scoring. The
    verdict fields end every record, so only they are serialized again: the same text as the whole record's."""
    if written is not None and written.endswith(_UNSCORED_END) and tuple(record)[-3:] == _VERDICT_FIELDS:
        verdicts = record_json({name: record[name] for name in _VERDICT_FIELDS})  # type: ignore[literal-required]
        return written[: -len(_UNSCORED_END)] + verdicts[1:] + "\n"
    return record_json(record) + "\n"


ScoredTask = tuple[TaskResults, dict[str, str]]
"""A task's results entry and its concepts' categories (what the modality gaps need)."""


def scoring_cost(entry: TaskManifest) -> float:
    """What scoring a task costs, in samples (how tasks are shared between two scoring processes)."""
    return float(entry["n_samples"] + TASK_SCORING_COST)


def score_task_file(
    entry: TaskManifest, run_dir: Path, judging: JudgeConfig, written: Sequence[tuple[SampleRecord, str | None]] | None
) -> ScoredTask:
    """Score one task of a run folder (:func:`score_task`) and rewrite its samples file with the verdicts."""
    result, records = score_task(entry, run_dir, judging, written)
    lines = {id(record): line for record, line in written or ()}
    replace_file(samples_file(run_dir, entry), "".join(scored_line(r, lines.get(id(r))) for r in records))
    return result, concept_categories(records)


def score_run(
    run_dir: Path,
    judging: JudgeConfig | None = None,
    written: Mapping[str, Sequence[tuple[SampleRecord, str | None]]] | None = None,
    background: Background[Any, ScoredTask] | None = None,
) -> Results:
    """Build the results of a run folder from its manifest and sample records, write results.json,
    and rewrite each samples file with the verdicts that produced those results.

    ``judging`` None: the judges the run recorded (each task's default unless the run named some).
    ``written``: by task, the records (with their lines) that the run which wrote the folder kept in
    memory; a task without them is read from its samples file. ``background``: the tasks the run handed over
    to be scored (:func:`score_task_file`) while it went on predicting, by task name."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if (run_dir / RESULTS).is_dir():  # found before any samples file is rewritten, not after
        raise UserError(f"{run_dir / RESULTS}: a folder, where the run's results go; the run folder is damaged (move the folder away)")
    judging = judging or recorded_judging(manifest)

    def score_one(name: str) -> ScoredTask:
        return score_task_file(manifest["tasks"][name], run_dir, judging, (written or {}).get(name))

    names = list(manifest["tasks"])
    scored: dict[str, ScoredTask] = dict(background.drain()) if background is not None else {}
    left = [n for n in names if n not in scored]  # not handed over (or a scoring process lost without a word)
    # Rule judges read text here and send nothing: the tasks may be scored on two cores (vlmbench.forked).
    in_process = all(judged_in_process(manifest["tasks"][n], judging) for n in left)
    cost = {n: scoring_cost(manifest["tasks"][n]) for n in left}
    scored.update(zip(left, map_in_two(left, score_one, weight=cost.__getitem__, allowed=in_process)))
    entries: dict[str, TaskResults] = {name: scored[name][0] for name in names}
    categories: dict[str, dict[str, str]] = {name: scored[name][1] for name in names}
    gap_inputs = {name: {**entries[name], "metric_list": manifest["tasks"][name]["metric_list"]} for name in entries}
    results: Results = {
        "schema_version": 1,
        "vlmbench_version": manifest["vlmbench_version"],
        "created": manifest["created"],
        "scored": now(),
        "scored_with": vlmbench.__version__,
        "model": redact(manifest["model"]),  # as the run wrote it; a hand-edited folder's secrets stay out of results
        "config": manifest["config"],
        "provenance": manifest["provenance"],
        "tasks": entries,
        "modality_gaps": modality_gaps(gap_inputs, categories),
        "seconds": manifest.get("seconds", 0.0),
    }
    if "reused_provenance" in manifest:
        results["reused_provenance"] = manifest["reused_provenance"]
    validate_results(dict(results), run_dir / MANIFEST)
    try:
        write_json(run_dir / RESULTS, results)
    except OSError as exc:
        raise UserError(f"{run_dir / RESULTS}: cannot write it ({exc.strerror or type(exc).__name__}); {read_fix(exc)}") from None
    return results
