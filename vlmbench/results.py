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
from vlmbench.scoring.metrics import breakdown, modality_gap, summarise
from vlmbench.runner import TaskPrediction
from vlmbench.scoring.scorers import score_record, scored

GAP_METRIC = {"perception": "accuracy", "alignment": "recall_unsafe"}
RECORDED_PACKAGES = ("vlmbench", "datasets", "pillow", "numpy", "pluggy", "jsonschema", "jinja2", "torch",
                     "transformers", "accelerate", "openai")
# Whole argument names only: "api_key" and "hf_token" are secrets, "max_new_tokens" and "tokenizer" are not.
SECRET_NAME = re.compile(r"^(?:.*[_-])?(?:api_?key|key|token|secret|password|passwd|credentials?|auth|authorization)$", re.IGNORECASE)
MANIFEST, RESULTS = "run.json", "results.json"


def redact_args(args: dict[str, Any]) -> dict[str, Any]:
    """Model args with secrets replaced by ``***``: values of secret-looking names (api_key, token,
    password, ...) and credentials or query strings inside URLs."""
    return {k: "***" if SECRET_NAME.match(k) else redact_url(v) if isinstance(v, str) else v for k, v in args.items()}


def redact_url(value: str) -> str:
    """A URL without its user:password part and query string (where API keys hide); other text unchanged."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in value:
        return value
    parts = urlsplit(value)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if "@" in parts.netloc:
        netloc = "***@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", parts.fragment))


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
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; pass a run folder written by `vlmbench run`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); the run folder is damaged") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tasks"), dict) or not manifest["tasks"]:
        raise UserError(f"{path}: not a vlmbench run manifest (no tasks); pass a run folder written by `vlmbench run`")
    if not manifest.get("complete"):
        raise UserError(f"{path}: the run did not finish; rerun the same `vlmbench run` command to resume it, then score")
    return manifest


def read_records(path: Path) -> list[dict[str, Any]]:
    """Sample records in sample order. A torn last line (a crash mid-write) is skipped."""
    try:
        return parse_records(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: samples file not found; the run did not finish this task (rerun it to resume)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; the file is damaged") from None


def parse_records(text: str, where: str) -> list[dict[str, Any]]:
    """Sample records from JSONL text, in sample order. A torn last line (a crash mid-write) is skipped."""
    records = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise UserError(f"{where}: line {number} is not valid JSON; the file is damaged") from None
        if not isinstance(record, dict) or not isinstance(record.get("index"), int) or not isinstance(record.get("doc"), dict):
            raise UserError(f"{where}: line {number} is not a sample record; the file is damaged")
        records.append(record)
    return sorted(records, key=lambda r: r["index"])


def score_records(records: list[dict[str, Any]], parser: str, metric_names: list[str]) -> dict[str, Any]:
    """Parse every record's response (setting its ``parsed``/``correct``) and compute the task's metrics."""
    view = []
    for record in records:
        record["parsed"], record["correct"] = score_record(parser, record)
        view.append(scored(record, record["parsed"], record["correct"]))
    has_concepts = any(r["doc"].get("concept") for r in records)
    return {
        "metrics": summarise(view, metric_names),
        "by_category": breakdown(view, lambda s: s.category, metric_names),
        "by_concept": breakdown(view, lambda s: s.cluster, metric_names) if has_concepts else {},
    }


def score_task(name: str, entry: dict[str, Any], run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Re-parse every record of a task and compute its metrics; returns (results entry, records)."""
    path = run_dir / entry["samples_file"]
    records = read_records(path)
    if len(records) != entry["n_samples"]:
        raise UserError(f"{path}: {len(records)} of {entry['n_samples']} samples; the run is incomplete (rerun the same command to resume)")
    result = {k: v for k, v in entry.items() if k not in ("answer_parser", "metric_list", "n_samples")}
    result.update(score_records(records, entry["answer_parser"], entry["metric_list"]))
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
                # The built-in pair (e.g. alignment-image) is keyed by the text task; any other image task by both names.
                key = text_name if image_name == f"{image['ability']}-image" else f"{text_name} - {image_name}"
                gaps[key] = {"image_task": image_name, "text_task": text_name, **gap}
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
