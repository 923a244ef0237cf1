"""Assembles, validates and writes the results file (and records how it was produced)."""

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

import jsonschema

import vlmbench
from vlmbench.metrics import breakdown, modality_gap, summarise
from vlmbench.runner import TaskRun

GAP_METRIC = {"perception": "accuracy", "alignment": "recall_unsafe"}
RECORDED_PACKAGES = ("vlmbench", "datasets", "pillow", "numpy", "pluggy", "jsonschema", "jinja2", "torch",
                     "transformers", "accelerate", "openai")
SECRET_NAME = re.compile(r"key|token|secret|password|passwd|credential", re.IGNORECASE)


def redact_args(args: dict[str, str]) -> dict[str, str]:
    """Model args with the values of secret-looking names (key, token, ...) replaced by ``***``."""
    return {k: ("***" if SECRET_NAME.search(k) else v) for k, v in args.items()}


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The JSON Schema of results files, as shipped in the package."""
    return json.loads(resources.files("vlmbench.schemas").joinpath("results.schema.json").read_text())


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


def task_entry(run: TaskRun, output_dir: Path) -> dict[str, Any]:
    """The results of one task: headline metrics, per category and per concept, and its provenance."""
    task = run.task
    names = [m["metric"] for m in task.get("metric_list")]
    has_concepts = run.catalog is not None
    return {
        "version": task.version,
        "config_hash": task.config_hash,
        "prompt_hash": task.prompt_hash,
        "ability": task.get("ability"),
        "modality": task.get("modality"),
        "variant": task.variant,
        "prompts": task.templates,
        "datasets": [dataclasses.asdict(info) for info in run.datasets],
        "generation_kwargs": task.get("generation_kwargs", {}),
        "metrics": summarise(run.scored, names),
        "by_category": breakdown(run.scored, lambda s: s.category, names),
        "by_concept": breakdown(run.scored, lambda s: s.cluster, names) if has_concepts else {},
        "seconds": round(run.seconds, 3),
        "usage": run.usage,
        "samples_file": str(run.samples_file.relative_to(output_dir)) if run.samples_file else "",
    }


def modality_gaps(runs: list[TaskRun], entries: dict[str, Any]) -> dict[str, Any]:
    """text - image for every pair of tasks with the same ability, keyed by the text task."""
    gaps: dict[str, Any] = {}
    for image_run in (r for r in runs if r.task.get("modality") == "image"):
        ability = image_run.task.get("ability")
        if ability not in GAP_METRIC or image_run.catalog is None:
            continue
        categories = {c.name: c.category for c in image_run.catalog.unsafe}
        for text_run in (r for r in runs if r.task.get("modality") == "text" and r.task.get("ability") == ability):
            gap = modality_gap(entries[image_run.task.name]["by_concept"], entries[text_run.task.name]["by_concept"],
                               categories, GAP_METRIC[ability])
            gaps[text_run.task.name] = {"image_task": image_run.task.name, "text_task": text_run.task.name, **gap}
    return gaps


def build_results(runs: list[TaskRun], *, backend: str, model_args: dict[str, str], config: dict[str, Any],
                  output_dir: Path, seconds: float) -> dict[str, Any]:
    """The whole results document."""
    entries = {run.task.name: task_entry(run, output_dir) for run in runs}
    return {
        "schema_version": 1,
        "vlmbench_version": vlmbench.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"backend": backend, "args": redact_args(model_args)},
        "config": config,
        "provenance": provenance(),
        "tasks": entries,
        "modality_gaps": modality_gaps(runs, entries),
        "seconds": round(seconds, 3),
    }


def write_results(results: dict[str, Any], path: Path) -> Path:
    """Validate against the shipped schema, then write atomically."""
    jsonschema.validate(results, results_schema())
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


