"""The last check of ``leaderboard verify``: rebuild each task's samples, recompute every number, compare.

Each submitted answer is put on the sample this vlmbench builds (same id, prompt, image bytes and
target; nothing else a bundle says about a sample is trusted, except what it says of the answer's
origin: the served model and the reused answers' provenance digests, whose counts in results.json must
match the samples, though nobody can check them against the servers), and the task's numbers are made
through the one scoring path (the same as ``vlmbench run`` and ``score``): by the rule scorer, or
from the submitted verdicts of a pinned model judge (see :mod:`vlmbench_leaderboard.verify_judges`).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from typing import Any

from vlmbench.errors import UserError
from vlmbench.records import SampleRecord
from vlmbench.taskconfig import TaskConfig
from vlmbench_leaderboard.bundle import Bundle
from vlmbench_leaderboard.judges import headline_identity
from vlmbench_leaderboard.text import terminal
from vlmbench_leaderboard.verify_judges import JudgePolicy, Rejudged, score_task

# Every number of a task the site can show: overall (headline and paper form), per category, per
# concept, and per prompt with the spread across prompts (both absent for a task with one prompt); and
# the counts of the answers' origin (served models, provenance of reused answers), which must match the samples.
RECOMPUTED = ("metrics", "by_category", "by_concept", "by_prompt", "prompt_spread", "served_models", "reused_from")

# The samples of the tasks rebuilt last in this process, by (task config hash, seed, fingerprints of
# the data loaded): the bundles of one `verify` (or of a maintainer's session) that ran the same task
# on the same data are checked against samples built once. Image hashes are not kept here: an image
# file that a dataset names by path may be replaced without changing the dataset's fingerprint.
_REBUILT: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
_REBUILT_LOCK = threading.Lock()
KEEP_REBUILT = 16


def check_numbers(
    bundle: Bundle, run: dict[str, Any], results: dict[str, Any], current: dict[str, TaskConfig], policy: JudgePolicy
) -> tuple[list[str], list[str]]:
    """(rejection reasons, notes): the first number that differs from the recomputed one, and with
    ``--rejudge`` the line comparing the maintainer's verdicts (a reason when too many differ)."""
    from vlmbench.runfolder import records_in_order
    from vlmbench.scoring.aggregate import concept_categories, modality_gaps

    entries: dict[str, Any] = {}
    categories: dict[str, dict[str, str]] = {}
    tally = Rejudged()
    for name, entry in run["tasks"].items():
        task = current[name]
        records = records_in_order(bundle.lines(entry["samples_file"]), entry["samples_file"])
        rebuilt, problem = rebuild(task, run["config"]["seed"], records)
        if problem:
            return [problem], []
        scores, source = score_task(task, rebuilt, records, results["tasks"][name], policy, tally)
        mismatch = _judge_mismatch(name, results["tasks"][name], scores, source)
        if mismatch:
            return [mismatch], []
        for key in RECOMPUTED:
            mismatch = first_mismatch(results["tasks"][name].get(key), scores.get(key), f"tasks.{name}.{key}", source)
            if mismatch:
                return [mismatch], []
        entries[name] = {"ability": task.get("ability"), "modality": task.get("modality"), "metric_list": task.metric_names, **scores}
        categories[name] = concept_categories(rebuilt)
    mismatch = first_mismatch(results["modality_gaps"], modality_gaps(entries, categories), "modality_gaps", "the recomputed tasks")
    if mismatch:
        return [mismatch], []
    if not tally.judges:
        return [], ["nothing to rejudge: every task's numbers come from rules, which verify re-scored itself"] if policy.rejudge else []
    if tally.share() > policy.max_disagreement:
        return [f"{tally.line()} (at most {policy.max_disagreement:.1%} may differ)"], []
    return [], [tally.line()]


def _judge_mismatch(name: str, submitted: dict[str, Any], scores: dict[str, Any], source: str) -> str | None:
    """Why the headline judge a task's results name (without call counts) is not the one that made its
    recomputed numbers, or None: the site labels the numbers with it."""
    made = headline_identity(scores)
    given = headline_identity(submitted)
    key = next((k for k in sorted({*made, *given}) if k not in made or k not in given or first_mismatch(given[k], made[k], "")), None)
    if key is None:
        return None
    return (
        f"results.json: tasks.{name}.judges: the headline judge's {terminal(key, 40)} is {terminal(json.dumps(given.get(key)), 60)}, "
        f"but {source} give {terminal(json.dumps(made.get(key)), 60)}; score the run again with this vlmbench and resubmit"
    )


def rebuild(task: TaskConfig, seed: int, records: list[SampleRecord]) -> tuple[list[SampleRecord], str | None]:
    """Records made of this vlmbench's samples and the submitted answers only (built by the same
    constructor as the runner's); or the first problem."""
    from vlmbench.backend import Response
    from vlmbench.records import BLANK_SHA256, new_record

    try:
        samples, table = task_samples(task, seed)
    except UserError as exc:
        return [], f"cannot rebuild the samples of {task.name} to check them: {exc}"
    if len(records) != len(samples):
        return [], f"incomplete: samples/{task.name}.jsonl has {len(records)} samples; the task has {len(samples)}"
    failed = sum(1 for r in records if r.get("error") is not None or not isinstance(r.get("response"), str))
    if failed:
        return [], (
            f"incomplete: {failed} samples of {task.name} have no answer (failed requests); rerun the same command "
            "to retry them, then score and submit"
        )
    rebuilt = []
    for index, (record, sample) in enumerate(zip(records, samples)):
        image = None if sample.image is None else BLANK_SHA256 if sample.image == "blank" else table.image_sha256(sample.doc, sample.image)
        if record.get("id") != sample.id or record.get("prompt") != sample.prompt or (record.get("image") or {}).get("sha256") != image:
            return [], (
                f"samples/{task.name}.jsonl: sample {json.dumps(record.get('id'))[:60]} is not the sample this task builds "
                f"(prompt or image differs); rerun task {task.name}"
            )
        answer = Response(sample.id, text=str(record["response"]), served_model=record.get("served_model"))
        reused = record.get("reused") is True and "produced_with" in record  # records before provenance was kept name none
        made_by = record.get("produced_with") if isinstance(record.get("produced_with"), str) else None
        rebuilt.append(new_record(task.name, index, sample, image, answer, reused=reused, produced_with=made_by))
    return rebuilt, None


def task_samples(task: TaskConfig, seed: int) -> tuple[list[Any], Any]:
    """The task's samples as this vlmbench builds them (the runner's ``prepare``), and the table of its
    data (the runner's ``DocTable``); the samples are built once per task, seed and data version."""
    from vlmbench.runner import load_task_docs
    from vlmbench.samples import build_samples

    table, catalog = load_task_docs(task)
    key = (task.config_hash, seed, tuple(info.fingerprint for info in table.infos), table.safe_controls_missing)
    with _REBUILT_LOCK:
        samples = _REBUILT.pop(key, None)
    if samples is None:
        samples = build_samples(task, table, catalog, seed, None, None)
    with _REBUILT_LOCK:
        _REBUILT[key] = samples  # the most recently used last
        while len(_REBUILT) > KEEP_REBUILT:
            _REBUILT.popitem(last=False)
    return samples, table


def first_mismatch(submitted: Any, recomputed: Any, where: str, source: str = "the responses") -> str | None:
    """The first place where the submitted numbers differ from the recomputed ones (``source``: what gave those).

    JSON types must match exactly (``75.0`` is not the count ``75``, nor ``0`` the flag ``false``); floats
    are compared with a tolerance of rounding only."""
    if _same_json_text(submitted, recomputed):
        return None
    if isinstance(recomputed, dict):
        if not isinstance(submitted, dict) or set(submitted) != set(recomputed):
            return f"results.json: {where}: entries differ from those {source} give"
        for key in recomputed:
            found = first_mismatch(submitted[key], recomputed[key], f"{where}.{key}", source)
            if found:
                return found
        return None
    if isinstance(recomputed, (list, tuple)):
        if not isinstance(submitted, list) or len(submitted) != len(recomputed):
            return f"results.json: {where}: entries differ from those {source} give"
        for index, (given, made) in enumerate(zip(submitted, recomputed)):
            found = first_mismatch(given, made, f"{where}.{index}", source)
            if found:
                return found
        return None
    if json_kind(submitted) == json_kind(recomputed):
        if isinstance(recomputed, float):
            if math.isclose(submitted, recomputed, rel_tol=1e-9, abs_tol=1e-12):
                return None
        elif submitted == recomputed:
            return None
    return f"results.json: {where} = {json.dumps(submitted)[:40]} but {source} give {json.dumps(recomputed)[:40]}"


_canonical = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _same_json_text(submitted: Any, recomputed: Any) -> bool:
    """Whether both values are the same JSON text (keys sorted), the common case, told by the C encoder in one
    pass instead of a walk over some 40,000 values per bundle. Equal text means equal values of the same JSON
    types: ``true``, ``1`` and ``1.0`` are three texts, and a float is written as its shortest repr. Text with
    NaN or an infinity, keys that cannot be sorted together and values JSON cannot hold are left to the walk."""
    if not isinstance(recomputed, (dict, list, tuple)):
        return False  # a single value: the walk is as quick
    try:
        text = _canonical(recomputed)
        if text != _canonical(submitted):
            return False
    except (TypeError, ValueError, RecursionError):
        return False
    return "NaN" not in text and "Infinity" not in text


def json_kind(value: Any) -> str:
    """The JSON type of a value: null, bool, int, float, str, list or object (an int is not a float here)."""
    for kind, types in (
        ("null", type(None)),
        ("bool", bool),
        ("int", int),
        ("float", float),
        ("str", str),
        ("list", (list, tuple)),
        ("object", dict),
    ):
        if isinstance(value, types):
            return kind
    return type(value).__name__
