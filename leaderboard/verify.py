"""``vlmbench leaderboard verify``: accept a bundle only if every number in it can be reproduced.

Checks, in order: the archive is safe and its hashes match (``bundle.read_bundle``); manifest,
metadata and results follow their schemas; the run is complete (no ``--limit``, every sample
present); every task is current (same version and prompt hash as this vlmbench's task); every
sample is the sample this vlmbench would build (same prompt, same image bytes); and every
aggregate number, recomputed from the responses with the project's own scoring, equals the
submitted one.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench.leaderboard.bundle import Bundle, Rejected, read_bundle

RECOMPUTED = ("metrics", "by_category", "by_concept")


@dataclass
class Verified:
    """An accepted bundle."""

    bundle: Bundle
    run: dict[str, Any]
    results: dict[str, Any]


def verify_bundle(path: Path, check_samples: bool = True) -> Verified:
    """Verify a bundle file; raises :class:`Rejected` with one-line reasons."""
    bundle = read_bundle(Path(path))
    run, results = bundle.json("run.json"), bundle.json("results.json")
    _check_results_schema(results)
    _check_consistency(bundle, run, results)
    _check_current(run)
    reasons = _check_recomputed(bundle, run, results)
    if check_samples and not reasons:
        reasons = _check_samples(bundle, run)
    if reasons:
        raise Rejected(reasons)
    return Verified(bundle, run, results)


def _check_results_schema(results: dict[str, Any]) -> None:
    from vlmbench.results import validate_results

    try:
        validate_results(results)
    except UserError as exc:
        raise Rejected([f"results.json: {str(exc).split('(', 1)[-1].rsplit(')', 1)[0]}"]) from None


def _check_consistency(bundle: Bundle, run: dict[str, Any], results: dict[str, Any]) -> None:
    if not isinstance(run.get("tasks"), dict) or not run.get("complete"):
        raise Rejected(["run.json: the run did not finish; rerun the same command to complete it, then score and submit"])
    if run.get("config", {}).get("limit") is not None:
        raise Rejected([f"run.json: incomplete run (--limit {run['config']['limit']}); rerun without --limit"])
    if set(run["tasks"]) != set(results["tasks"]):
        raise Rejected(["results.json: its tasks differ from run.json's; submit the results scored from this run"])
    for key in ("model", "config"):
        if run.get(key) != results.get(key):
            raise Rejected([f"results.json: '{key}' differs from run.json's; submit the results scored from this run"])
    for name, entry in run["tasks"].items():
        if entry.get("samples_file") != f"samples/{name}.jsonl" or entry["samples_file"] not in bundle.files:
            raise Rejected([f"run.json: task {json.dumps(name)[:80]} has no samples/{name}.jsonl in the bundle"])
        submitted = results["tasks"][name]
        for key in ("version", "prompt_hash", "config_hash"):
            if submitted.get(key) != entry.get(key):
                raise Rejected([f"results.json: tasks.{name}.{key} differs from run.json's"])


def _check_current(run: dict[str, Any]) -> None:
    from vlmbench.registry import discover

    registry = discover()
    reasons = []
    for name, entry in run["tasks"].items():
        if name not in registry.tasks:
            reasons.append(f"unknown task {json.dumps(name)[:80]}: not a task of this leaderboard")
            continue
        current = registry.tasks[name].with_variant(entry.get("variant", "builtin"))
        if current.version != entry["version"] or current.prompt_hash != entry["prompt_hash"]:
            reasons.append(f"stale: rerun task {name} (submitted version {entry['version']}, current {current.version}; "
                           f"prompts {'match' if current.prompt_hash == entry['prompt_hash'] else 'differ'})")
    if reasons:
        raise Rejected(reasons)


def _unpack(bundle: Bundle, folder: Path) -> None:
    """Write the (already validated) members into ``folder``: names are fixed by the member pattern."""
    (folder / "samples").mkdir()
    for name, data in bundle.files.items():
        (folder / name).write_bytes(data)


def _check_recomputed(bundle: Bundle, run: dict[str, Any], results: dict[str, Any]) -> list[str]:
    from vlmbench.results import _categories, modality_gaps, score_task

    reasons: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vlmbench-verify-") as tmp:
        folder = Path(tmp)
        _unpack(bundle, folder)
        entries, categories = {}, {}
        for name, entry in run["tasks"].items():
            try:
                entries[name], records = score_task(name, entry, folder)
            except UserError as exc:
                reasons.append(f"incomplete: {str(exc).replace(str(folder) + '/', '')}")
                continue
            categories[name] = _categories(records)
            for key in RECOMPUTED:
                mismatch = _first_mismatch(results["tasks"][name].get(key), entries[name][key], f"tasks.{name}.{key}")
                if mismatch:
                    reasons.append(mismatch)
        if not reasons:
            mismatch = _first_mismatch(results["modality_gaps"], modality_gaps(entries, categories), "modality_gaps")
            if mismatch:
                reasons.append(mismatch)
    return reasons


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


def _check_samples(bundle: Bundle, run: dict[str, Any]) -> list[str]:
    """Every record must be a sample this vlmbench builds: same id, prompt and image bytes."""
    from vlmbench.registry import discover
    from vlmbench.results import read_records
    from vlmbench.runner import BLANK_SHA256, prepare

    registry = discover()
    seed = run["config"]["seed"]
    reasons = []
    with tempfile.TemporaryDirectory(prefix="vlmbench-verify-") as tmp:
        folder = Path(tmp)
        _unpack(bundle, folder)
        for name, entry in run["tasks"].items():
            task = registry.tasks[name].with_variant(entry.get("variant", "builtin"))
            try:
                samples, table = prepare(task, seed, None)
            except UserError as exc:
                reasons.append(f"cannot rebuild the samples of {name} to check them: {exc}")
                continue
            records = read_records(folder / entry["samples_file"])
            if len(records) != len(samples):
                reasons.append(f"incomplete: {name} has {len(records)} samples; the task has {len(samples)}")
                continue
            for record, sample in zip(records, samples):
                expected_image = None
                if sample.image == "blank":
                    expected_image = BLANK_SHA256
                elif sample.image is not None:
                    expected_image = table.image_sha256(sample.doc, sample.image)
                got_image = (record.get("image") or {}).get("sha256")
                if record["id"] != sample.id or record["prompt"] != sample.prompt or got_image != expected_image \
                        or record["target"] != sample.target:
                    reasons.append(f"samples/{name}.jsonl: sample {json.dumps(record.get('id'))[:60]} is not the sample this "
                                   f"task builds (prompt, image or target differs); rerun task {name}")
                    break
    return reasons
