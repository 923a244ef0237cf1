"""The run manifest (``run.json``) and the results file (``results.json``) built from sample records.

``vlmbench run`` writes the manifest, predicts into ``samples/*.jsonl`` and then scores; ``vlmbench
score RUN_DIR`` repeats only the scoring, from the stored responses, without calling any model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import vlmbench
from vlmbench.errors import UserError
from vlmbench.metrics import breakdown, modality_gap, summarise
from vlmbench.runner import TaskPrediction
from vlmbench.scoring import score_record, scored

GAP_METRIC = {"perception": "accuracy", "alignment": "recall_unsafe"}
RECORDED_PACKAGES = ("vlmbench", "datasets", "pillow", "numpy", "pluggy", "jsonschema", "jinja2", "torch",
                     "transformers", "accelerate", "openai")
SECRET_NAME = re.compile(r"key|token|secret|password|passwd|credential|auth", re.IGNORECASE)
MANIFEST, RESULTS = "run.json", "results.json"


def redact_args(args: dict[str, str]) -> dict[str, str]:
    """Model args with the values of secret-looking names (key, token, ...) replaced by ``***``."""
    return {k: ("***" if SECRET_NAME.search(k) else v) for k, v in args.items()}


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The JSON Schema of results files, as shipped in the package."""
    return json.loads(resources.files("vlmbench.schemas").joinpath("results.schema.json").read_text())


def validate_results(results: dict[str, Any]) -> None:
    """Check a results document against the shipped schema (compiled: results are large)."""
    import fastjsonschema

    try:
        _compiled_results_schema()(results)
    except fastjsonschema.JsonSchemaException as exc:
        raise UserError(f"results do not match the results schema ({exc.message}); this is a bug in vlmbench or a plugin") from None


@lru_cache(maxsize=1)
def _compiled_results_schema() -> Any:
    import fastjsonschema

    return fastjsonschema.compile(results_schema())


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
    """Versions of everything that can change a number."""
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


def manifest_task(prediction: TaskPrediction, run_dir: Path) -> dict[str, Any]:
    """What the manifest records of one task: its identity, data, settings and request counts."""
    task = prediction.task
    return {
        "version": task.version, "config_hash": task.config_hash, "prompt_hash": task.prompt_hash,
        "ability": task.get("ability"), "modality": task.get("modality"), "variant": task.variant,
        "prompts": task.templates, "datasets": [dataclasses.asdict(d) for d in prediction.datasets],
        "generation_kwargs": task.get("generation_kwargs", {}), "answer_parser": task.get("answer_parser"),
        "metric_list": [m["metric"] for m in task.get("metric_list")],
        "samples_file": str(prediction.samples_file.relative_to(run_dir)), "n_samples": prediction.n_samples,
        "requests": {"sent": prediction.sent, "reused": prediction.reused},
        "seconds": round(prediction.seconds, 3), "usage": prediction.usage,
    }


def write_json(path: Path, value: dict[str, Any]) -> Path:
    """Write JSON atomically (a crash leaves the old file or the new one, never half of one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run folder, with a one-line error when it is missing or damaged."""
    path = Path(run_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; pass a run folder written by `vlmbench run`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); the run folder is damaged") from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Sample records in sample order. A torn last line (a crash mid-write) is skipped."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: samples file not found; the run did not finish this task (rerun it to resume)") from None
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise UserError(f"{path}: line {number} is not valid JSON; the file is damaged") from None
    return sorted(records, key=lambda r: r["index"])


def score_task(name: str, entry: dict[str, Any], run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Re-parse every record of a task and compute its metrics; returns (results entry, records)."""
    path = run_dir / entry["samples_file"]
    records = read_records(path)
    if len(records) != entry["n_samples"]:
        raise UserError(f"{path}: {len(records)} of {entry['n_samples']} samples; the run is incomplete (rerun the same command to resume)")
    metric_names = entry["metric_list"]
    view = []
    for record in records:
        record["parsed"], record["correct"] = score_record(entry["answer_parser"], record)
        view.append(scored(record, record["parsed"], record["correct"]))
    has_concepts = any(r["doc"].get("concept") for r in records)
    result = {k: v for k, v in entry.items() if k not in ("answer_parser", "metric_list", "n_samples")}
    result.update({
        "metrics": summarise(view, metric_names),
        "by_category": breakdown(view, lambda s: s.category, metric_names),
        "by_concept": breakdown(view, lambda s: s.cluster, metric_names) if has_concepts else {},
    })
    return result, records


def _categories(records: list[dict[str, Any]]) -> dict[str, str]:
    return {r["doc"]["concept"]: r["doc"]["category"] for r in records if r["doc"].get("label") == "unsafe" and r["doc"].get("concept")}


def modality_gaps(entries: dict[str, Any], categories: dict[str, dict[str, str]]) -> dict[str, Any]:
    """text - image for every pair of tasks with the same ability, keyed by the text task."""
    gaps: dict[str, Any] = {}
    for image_name, image in entries.items():
        if image["modality"] != "image" or image["ability"] not in GAP_METRIC:
            continue
        for text_name, text in entries.items():
            if text["modality"] == "text" and text["ability"] == image["ability"]:
                gap = modality_gap(image["by_concept"], text["by_concept"], categories[image_name], GAP_METRIC[image["ability"]])
                gaps[text_name] = {"image_task": image_name, "text_task": text_name, **gap}
    return gaps


def score_run(run_dir: Path, rewrite_samples: bool = False) -> dict[str, Any]:
    """Build the results of a run folder from its manifest and sample records, and write results.json."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    entries, categories = {}, {}
    for name, entry in manifest["tasks"].items():
        entries[name], records = score_task(name, entry, run_dir)
        categories[name] = _categories(records)
        if rewrite_samples:  # keep the samples' parsed/correct in step with the scoring that produced the results
            path = run_dir / entry["samples_file"]
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
            tmp.replace(path)
    results = {
        "schema_version": 1,
        "vlmbench_version": manifest["vlmbench_version"],
        "created": manifest["created"],
        "scored": now(),
        "scored_with": vlmbench.__version__,
        "model": manifest["model"],
        "config": manifest["config"],
        "provenance": manifest["provenance"],
        "tasks": entries,
        "modality_gaps": modality_gaps(entries, categories),
        "seconds": manifest.get("seconds", 0.0),
    }
    validate_results(results)
    write_json(run_dir / RESULTS, results)
    return results
