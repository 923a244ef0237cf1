"""``vlmbench leaderboard verify``: accept a bundle only if every number in it can be reproduced.

Checks, in order: the archive is safe and its hashes match (``bundle.read_bundle``); manifest,
metadata and results follow their schemas; the run is complete (no ``--limit``) and used the
leaderboard's seed; every task is current (same version, prompts and configuration as this
vlmbench's task); every sample is the sample this vlmbench builds (same id, prompt, image bytes
and target) and has an answer; and every aggregate number, recomputed from the answers alone with
this vlmbench's samples and scoring, equals the submitted one. Nothing else a bundle says about
a sample (its label, category, options, errors) is trusted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from vlmbench.errors import UserError
from vlmbench_leaderboard.bundle import Bundle, Rejected, read_bundle
from vlmbench.taskconfig import TaskConfig

RECOMPUTED = ("metrics", "by_category", "by_concept")
LEADERBOARD_SEED = 0


@dataclass
class Verified:
    """An accepted bundle."""

    bundle: Bundle
    run: dict[str, Any]
    results: dict[str, Any]


def verify_bundle(path: Any, seed: int = LEADERBOARD_SEED) -> Verified:
    """Verify a bundle file; raises :class:`Rejected` with one-line reasons."""
    bundle = read_bundle(path)
    try:
        run, results = bundle.json("run.json"), bundle.json("results.json")
        _check_results_schema(results)
        _check_consistency(bundle, run, results, seed)
        current = _current_tasks(run)
        reasons = _check_samples_and_numbers(bundle, run, results, current)
    except Rejected:
        raise
    except UserError as exc:
        raise Rejected([str(exc)]) from None
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, UnicodeDecodeError) as exc:
        # Anything the checks above did not foresee in a hostile file is a rejection, not a crash.
        raise Rejected([f"malformed bundle ({type(exc).__name__}: {str(exc)[:120]})"]) from None
    if reasons:
        raise Rejected(reasons)
    return Verified(bundle, run, results)


def _check_results_schema(results: dict[str, Any]) -> None:
    from vlmbench.results import validate_results

    try:
        validate_results(results)
    except UserError as exc:
        raise Rejected([f"results.json: {str(exc).split('(', 1)[-1].rsplit(')', 1)[0]}"]) from None


def _check_consistency(bundle: Bundle, run: dict[str, Any], results: dict[str, Any], seed: int) -> None:
    if not isinstance(run, dict) or not isinstance(run.get("tasks"), dict) or not isinstance(run.get("config"), dict) \
            or not run.get("complete"):
        raise Rejected(["run.json: not a finished run; rerun the same command to complete it, then score and submit"])
    if run["config"].get("limit") is not None:
        raise Rejected([f"run.json: incomplete run (--limit {run['config']['limit']}); rerun without --limit"])
    if run["config"].get("seed") != seed:
        raise Rejected([f"run.json: seed {json.dumps(run['config'].get('seed'))[:20]}; this leaderboard uses --seed {seed}"])
    if set(run["tasks"]) != set(results["tasks"]):
        raise Rejected(["results.json: its tasks differ from run.json's; submit the results scored from this run"])
    for key in ("model", "config"):
        if run.get(key) != results.get(key):
            raise Rejected([f"results.json: '{key}' differs from run.json's; submit the results scored from this run"])
    for name, entry in run["tasks"].items():
        if not isinstance(entry, dict) or entry.get("samples_file") != f"samples/{name}.jsonl" or entry["samples_file"] not in bundle.files:
            raise Rejected([f"run.json: task {json.dumps(name)[:80]} has no samples/{name}.jsonl in the bundle"])


def _current_tasks(run: dict[str, Any]) -> dict[str, TaskConfig]:
    """This vlmbench's version of every submitted task; stale or unknown tasks are rejected."""
    from vlmbench.registry import discover

    registry = discover()
    current, reasons = {}, []
    for name, entry in run["tasks"].items():
        if name not in registry.tasks:
            reasons.append(f"unknown task {json.dumps(name)[:80]}: not a task of this leaderboard")
            continue
        task = registry.tasks[name].with_variant(str(entry.get("variant", "builtin")))
        if task.version != entry.get("version") or task.prompt_hash != entry.get("prompt_hash"):
            reasons.append(f"stale: rerun task {name} (submitted version {_plain(entry.get('version'))}, current {task.version}; "
                           f"prompts {'match' if task.prompt_hash == entry.get('prompt_hash') else 'differ'})")
        elif task.config_hash != entry.get("config_hash"):
            reasons.append(f"stale: rerun task {name} (its configuration, e.g. generation settings or parser, differs from the current task)")
        current[name] = task
    if reasons:
        raise Rejected(reasons)
    return current


def _check_samples_and_numbers(bundle: Bundle, run: dict[str, Any], results: dict[str, Any],
                               current: dict[str, TaskConfig]) -> list[str]:
    """Rebuild each task's samples, score the submitted answers on them, and compare every number."""
    from vlmbench.results import _categories, modality_gaps, parse_records, score_records

    entries: dict[str, Any] = {}
    categories: dict[str, dict[str, str]] = {}
    for name, entry in run["tasks"].items():
        task = current[name]
        records = parse_records(bundle.files[entry["samples_file"]].decode("utf-8"), entry["samples_file"])
        rebuilt, problem = _rebuild(task, run["config"]["seed"], records)
        if problem:
            return [problem]
        scores = score_records(rebuilt, task.get("answer_parser"), [m["metric"] for m in task.get("metric_list")])
        for key in RECOMPUTED:
            mismatch = _first_mismatch(results["tasks"][name].get(key), scores[key], f"tasks.{name}.{key}")
            if mismatch:
                return [mismatch]
        entries[name] = {"ability": task.get("ability"), "modality": task.get("modality"), **scores}
        categories[name] = _categories(rebuilt)
    mismatch = _first_mismatch(results["modality_gaps"], modality_gaps(entries, categories), "modality_gaps")
    return [mismatch] if mismatch else []


def _rebuild(task: TaskConfig, seed: int, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """Records made of this vlmbench's samples and the submitted answers only; or the first problem."""
    from vlmbench.runner import BLANK_SHA256, prepare

    try:
        samples, table = prepare(task, seed, None)
    except UserError as exc:
        return [], f"cannot rebuild the samples of {task.name} to check them: {exc}"
    if len(records) != len(samples):
        return [], f"incomplete: samples/{task.name}.jsonl has {len(records)} samples; the task has {len(samples)}"
    failed = sum(1 for r in records if r.get("error") is not None or not isinstance(r.get("response"), str))
    if failed:
        return [], (f"incomplete: {failed} samples of {task.name} have no answer (failed requests); rerun the same command "
                    "to retry them, then score and submit")
    rebuilt = []
    for record, sample in zip(records, samples):
        image = None if sample.image is None else BLANK_SHA256 if sample.image == "blank" else table.image_sha256(sample.doc, sample.image)
        if record.get("id") != sample.id or record.get("prompt") != sample.prompt or (record.get("image") or {}).get("sha256") != image:
            return [], (f"samples/{task.name}.jsonl: sample {json.dumps(record.get('id'))[:60]} is not the sample this task builds "
                        f"(prompt or image differs); rerun task {task.name}")
        rebuilt.append({"id": sample.id, "doc": {k: v for k, v in sample.doc.items() if not k.startswith("_")},
                        "choices": list(sample.choices) if sample.choices else None, "target": sample.target,
                        "response": record["response"], "error": None})
    return rebuilt, None


def _plain(value: Any) -> str:
    """Untrusted text made safe to print on one line."""
    return re.sub(r"[^\w.+-]", "?", str(value))[:20]


def _first_mismatch(submitted: Any, recomputed: Any, where: str) -> str | None:
    """The first place where the submitted numbers differ from the recomputed ones."""
    if isinstance(recomputed, dict):
        if not isinstance(submitted, dict) or set(submitted) != set(recomputed):
            return f"results.json: {where}: entries differ from those the responses give"
        for key in recomputed:
            found = _first_mismatch(submitted[key], recomputed[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(recomputed, float) and isinstance(submitted, (int, float)) and not isinstance(submitted, bool):
        if math.isclose(submitted, recomputed, rel_tol=1e-9, abs_tol=1e-12):
            return None
    elif submitted == recomputed:
        return None
    return f"results.json: {where} = {json.dumps(submitted)[:40]} but the responses give {json.dumps(recomputed)[:40]}"
