"""``vlmbench leaderboard verify``: accept a bundle only if every number in it can be reproduced.

Checks, in order: the archive is safe and its hashes match (``bundle.read_bundle``); manifest,
metadata and results follow their schemas, and every JSON member is strict JSON (finite numbers,
bounded depth); the bundle holds exactly the files of the tasks run; the run is complete (no
``--limit``), used the leaderboard's seed and data variant, and ran every task of the ``all`` group;
the metadata is displayable (normalised names, no invisible or control characters, ``reference``
derived from the backend, plain version strings); the run holds no task the leaderboard does not rank;
every task is current (same version, prompts and configuration as this vlmbench's task, and the
datasets of its variant), and every descriptive field of a task (prompts, scorer, settings...) is the
current task's in run.json and run.json's in results.json; every samples file has the run's number of
lines, each of bounded size, before it is parsed; every sample has a non-empty answer and is the
sample this vlmbench builds (same id, prompt, image bytes and target); and every aggregate number,
recomputed from the answers alone with this vlmbench's samples and scoring, equals the submitted one,
of the same JSON type (:mod:`~vlmbench_leaderboard.recompute`), as does the headline judge's identity.
Nothing else a bundle
says about a sample (its label, category, options, errors) is trusted. A task whose headline judge
is a model judge must use a judge the leaderboard pins; its numbers are recomputed from that
judge's submitted verdicts, and ``--rejudge`` makes them again (:mod:`~vlmbench_leaderboard.verify_judges`).

``submit`` runs :func:`check_complete` (everything but the recomputation) before it writes a bundle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vlmbench.errors import UserError
from vlmbench.taskconfig import TaskConfig
from vlmbench_leaderboard.bundle import Bundle, Rejected, read_bundle
from vlmbench_leaderboard.metadata import check_metadata, plain_version
from vlmbench_leaderboard.recompute import check_numbers, first_mismatch, task_samples
from vlmbench_leaderboard.strictjson import check_line_counts
from vlmbench_leaderboard.text import terminal, visible
from vlmbench_leaderboard.verify_judges import JudgePolicy, check_recorded_judges

LEADERBOARD_SEED = 0
LEADERBOARD_DATA = "builtin"
KNOWN_FILES = ("metadata.json", "run.json", "results.json")
# The longest sample record accepted, in bytes (honest ones are a few KiB: prompt, answer, verdicts).
MAX_RECORD_BYTES = 256 * 2**10
# What a hostile file can make the checks trip over; each becomes a one-line rejection, not a crash.
MALFORMED = (KeyError, TypeError, AttributeError, ValueError, IndexError, UnicodeDecodeError, RecursionError, OverflowError)


@dataclass
class Verified:
    """An accepted bundle; ``notes``: lines to show with it (e.g. how ``--rejudge`` went)."""

    bundle: Bundle
    run: dict[str, Any]
    results: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class Complete:
    """A bundle that passed every check but the recomputation: its run, results and current tasks."""

    run: dict[str, Any]
    results: dict[str, Any]
    current: dict[str, TaskConfig]


def verify_bundle(path: Any, seed: int = LEADERBOARD_SEED, data: str = LEADERBOARD_DATA, policy: JudgePolicy | None = None) -> Verified:
    """Verify a bundle file (``policy``: the judges accepted, default ``rules`` only); raises :class:`Rejected` with one-line reasons."""
    bundle = read_bundle(path)
    complete = check_complete(bundle, seed, data)
    try:
        reasons, notes = check_numbers(bundle, complete.run, complete.results, complete.current, policy or JudgePolicy())
    except Rejected:
        raise
    except UserError as exc:
        raise Rejected([str(exc)]) from None
    except MALFORMED as exc:
        raise Rejected([_malformed(exc)]) from None
    if reasons:
        raise Rejected(reasons)
    return Verified(bundle, complete.run, complete.results, notes)


def check_complete(bundle: Bundle, seed: int = LEADERBOARD_SEED, data: str = LEADERBOARD_DATA) -> Complete:
    """Every check but the recomputation of the numbers; raises :class:`Rejected` with one-line reasons."""
    from vlmbench.registry import discover

    try:
        run, results = bundle.json("run.json"), bundle.json("results.json")
        _check_results_schema(results)
        _check_consistency(bundle, run, results, seed)
        _check_members(bundle, run)
        check_metadata(bundle.metadata, run)
        _check_versions(bundle, run, results)
        registry = discover()
        _check_task_set(run, data, registry)
        current = _current_tasks(run, results, registry)
        _check_answers(bundle, run, current, seed)
        check_recorded_judges(bundle, run, results)
    except Rejected:
        raise
    except UserError as exc:
        raise Rejected([str(exc)]) from None
    except MALFORMED as exc:
        raise Rejected([_malformed(exc)]) from None
    return Complete(run, results, current)


def _malformed(exc: BaseException) -> str:
    return f"malformed bundle ({type(exc).__name__}: {terminal(str(exc), 120)})"


def _check_results_schema(results: dict[str, Any]) -> None:
    from vlmbench.results import validate_results

    try:
        validate_results(results)
    except UserError as exc:
        raise Rejected([f"results.json: {str(exc).split('(', 1)[-1].rsplit(')', 1)[0]}"]) from None


def _check_consistency(bundle: Bundle, run: dict[str, Any], results: dict[str, Any], seed: int) -> None:
    if not isinstance(run, dict) or not isinstance(run.get("tasks"), dict) or not isinstance(run.get("config"), dict) or not run.get("complete"):
        raise Rejected(["run.json: not a finished run; rerun the same command to complete it, then score and submit"])
    if run["config"].get("limit") is not None:
        raise Rejected([f"run.json: incomplete run (--limit {_plain(run['config']['limit'])}); rerun without --limit"])
    if run["config"].get("default_protocol") is False:
        raise Rejected(
            ["run.json: not the default protocol (--protocol, --gen_kwargs or --system_instruction was set); rerun without them to submit"]
        )
    if run["config"].get("seed") != seed:
        raise Rejected([f"run.json: seed {terminal(json.dumps(run['config'].get('seed')), 20)}; this leaderboard uses --seed {seed}"])
    if set(run["tasks"]) != set(results["tasks"]):
        raise Rejected(["results.json: its tasks differ from run.json's; submit the results scored from this run"])
    for key in ("model", "config"):
        if run.get(key) != results.get(key):
            raise Rejected([f"results.json: '{key}' differs from run.json's; submit the results scored from this run"])
    for name, entry in run["tasks"].items():
        if not isinstance(entry, dict) or entry.get("samples_file") != f"samples/{name}.jsonl" or entry["samples_file"] not in bundle.files:
            raise Rejected([f"run.json: task {terminal(json.dumps(name), 80)} has no samples/{terminal(name, 80)}.jsonl in the bundle"])


def _check_members(bundle: Bundle, run: dict[str, Any]) -> None:
    """The bundle holds exactly the known files and the samples of the tasks run: nothing else reaches the data folder."""
    expected = {*KNOWN_FILES, *(f"samples/{name}.jsonl" for name in run["tasks"])}
    for name in sorted(set(bundle.manifest["files"]) - expected):
        raise Rejected(
            [
                f"{name}: not a file of this run (a bundle holds run.json, results.json, metadata.json and the samples "
                "of the tasks run); repack with `vlmbench submit`"
            ]
        )


def _check_versions(bundle: Bundle, run: dict[str, Any], results: dict[str, Any]) -> None:
    """Version strings and timestamps the site shows are plain, and agree between run.json and results.json."""
    for where, value in (
        ("run.json: vlmbench_version", run.get("vlmbench_version")),
        ("results.json: vlmbench_version", results.get("vlmbench_version")),
        ("results.json: scored_with", results.get("scored_with")),
        ("manifest.json: vlmbench_version", bundle.manifest.get("vlmbench_version")),
    ):
        if not plain_version(value):
            raise Rejected([f"{where} is not a plain version number (e.g. 0.1.0); submit the files `vlmbench` wrote"])
    if results.get("vlmbench_version") != run.get("vlmbench_version") or results.get("created") != run.get("created"):
        raise Rejected(["results.json: vlmbench_version or created differs from run.json's; submit the results scored from this run"])
    created = run.get("created")
    try:
        if not isinstance(created, str) or len(created) > 40:
            raise ValueError(created)
        datetime.fromisoformat(created)
    except ValueError:
        raise Rejected(["run.json: created is not an ISO 8601 time; submit the files `vlmbench run` wrote"]) from None


def _check_task_set(run: dict[str, Any], data: str, registry: Any) -> None:
    """The run used the leaderboard's data variant and ran every task of the ``all`` group, except those
    it had to skip for want of a model judge (the skip is checked against the run's recorded judges)."""
    from vlmbench.registry import ALL

    variant = run["config"].get("data")
    if variant != data:
        raise Rejected([f"run.json: data variant {terminal(json.dumps(variant), 40)}; this leaderboard uses --data {data}"])
    from vlmbench.evaluation import judge_skip_reason
    from vlmbench.results import recorded_judging

    ranked = set(registry.select(ALL))
    extra = sorted(name for name in run["tasks"] if name in registry.tasks and name not in ranked)
    if extra:
        raise Rejected(
            [
                f"run.json: task{'s' if len(extra) > 1 else ''} {', '.join(extra)} not ranked by this leaderboard (it would change "
                f"the entry's aggregate columns); submit a run of `vlmbench run --tasks {ALL} --data {data}` only"
            ]
        )
    judging = recorded_judging(run)  # type: ignore[arg-type]  # run.json checked for shape above
    skipped = run["config"].get("skipped_tasks") or {}
    missing = [
        name
        for name in registry.select(ALL)
        if name not in run["tasks"] and not (name in skipped and judge_skip_reason(registry.tasks[name].with_variant(data), judging))
    ]
    if missing:
        raise Rejected(
            [
                f"incomplete: the run lacks task{'s' if len(missing) > 1 else ''} {', '.join(missing)}; a leaderboard "
                f"entry runs every task (`vlmbench run --tasks {ALL} --data {data}`)"
            ]
        )


def _current_tasks(run: dict[str, Any], results: dict[str, Any], registry: Any) -> dict[str, TaskConfig]:
    """This vlmbench's version of every submitted task at the run's data variant; stale or unknown tasks, and
    tasks whose descriptive fields are not the current task's, are rejected."""
    current, reasons = {}, []
    for name, entry in run["tasks"].items():
        if name not in registry.tasks:
            reasons.append(f"unknown task {terminal(json.dumps(name), 80)}: not a task of this leaderboard")
            continue
        task = registry.tasks[name].with_variant(str(run["config"]["data"]))
        if entry.get("variant") != task.variant:
            reasons.append(
                f"run.json: task {name} records data variant {terminal(json.dumps(entry.get('variant')), 40)}, but --data "
                f"{terminal(run['config']['data'], 40)} gives {task.variant}; submit the files `vlmbench run` wrote"
            )
        elif task.version != entry.get("version") or task.prompt_hash != entry.get("prompt_hash"):
            reasons.append(
                f"stale: rerun task {name} (submitted version {_plain(entry.get('version'))}, current {task.version}; "
                f"prompts {'match' if task.prompt_hash == entry.get('prompt_hash') else 'differ'})"
            )
        elif task.config_hash != entry.get("config_hash"):
            reasons.append(f"stale: rerun task {name} (its configuration, e.g. generation settings or parser, differs from the current task)")
        else:
            problem = _datasets_problem(task, entry.get("datasets")) or _described_problem(task, entry, results["tasks"][name])
            if problem:
                reasons.append(problem)
        current[name] = task
    if reasons:
        raise Rejected(reasons)
    return current


def _described_problem(task: TaskConfig, entry: dict[str, Any], result: dict[str, Any]) -> str | None:
    """Why a task's descriptive fields (prompts, scorer, settings...) are not the current task's in run.json,
    or not run.json's in results.json (the board shows the latter); None when all agree, JSON types included."""
    from vlmbench.results import MANIFEST_ONLY, task_fields
    from vlmbench.scoring.aggregate import SCORED_FIELDS

    for key, value in json.loads(json.dumps(task_fields(task))).items():  # as JSON: tuples become lists
        if key not in entry or first_mismatch(entry[key], value, key):
            return f"run.json: tasks.{task.name}.{key} is not the current task's; submit the files `vlmbench run` wrote"
    # A results entry copies its run.json entry but for MANIFEST_ONLY, and adds the fields of scoring.
    for key in sorted((set(entry) - MANIFEST_ONLY) | (set(result) - SCORED_FIELDS)):
        if key not in entry or key not in result or first_mismatch(result[key], entry[key], key):
            return f"results.json: tasks.{task.name}.{terminal(key, 40)} differs from run.json's; submit the results scored from this run"
    return None


def _datasets_problem(task: TaskConfig, recorded: Any) -> str | None:
    """Why the datasets a task records are not those of its variant (or None)."""
    specs = [task.get("dataset_path")]
    if isinstance(task.get("safe_controls"), dict):
        specs.append(task.get("safe_controls").get("dataset_path"))
    problem = (
        f"run.json: task {task.name} records datasets other than those of its {task.variant} data "
        f"({', '.join(str(s) for s in specs)}); submit the files `vlmbench run` wrote"
    )
    if not isinstance(recorded, list) or len(recorded) != len(specs):
        return problem
    for spec, dataset in zip(specs, recorded):
        if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str):
            return problem
        builtin = str(spec).startswith("builtin:")
        same = dataset["path"] == spec if builtin else dataset["path"] == spec or dataset["path"].endswith("/" + str(spec).lstrip("./"))
        if not same or dataset.get("synthetic") is not builtin:
            return problem
    return None


def _check_answers(bundle: Bundle, run: dict[str, Any], current: dict[str, TaskConfig], seed: int) -> None:
    """Every samples file holds as many lines as the current task has samples (counted before it is parsed),
    is strict JSON Lines, and every sample has a non-empty answer."""
    for name, entry in run["tasks"].items():
        where = entry["samples_file"]
        expected = entry.get("n_samples")
        if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
            raise Rejected([f"run.json: tasks.{name}.n_samples is not a count; submit the files `vlmbench run` wrote"])
        built = len(task_samples(current[name], seed)[0])  # kept: verify's recomputation reuses them
        if expected != built:
            raise Rejected([f"incomplete: run.json: tasks.{name}.n_samples is {expected}; the task has {built} samples"])
        check_line_counts(bundle.files[where], where, expected, MAX_RECORD_BYTES)  # before parsing: a count is cheap, parsing is not
        records = bundle.lines(where)
        if not all(isinstance(r, dict) for r in records):
            raise Rejected([f"{where}: a line is not a sample record; submit the files `vlmbench run` wrote"])
        failed = sum(1 for r in records if r.get("error") is not None or not isinstance(r.get("response"), str))
        if failed:
            raise Rejected(
                [
                    f"incomplete: {failed} samples of {name} have no answer (failed requests); rerun the same command "
                    "to retry them, then score and submit"
                ]
            )
        empty = sum(1 for r in records if not visible(r["response"]))
        if empty:
            raise Rejected(
                [
                    f"incomplete: {empty} samples of {name} have an empty answer; check the model's output (e.g. "
                    "max_new_tokens, chat template), rerun with --no_store, then score and submit"
                ]
            )


def _plain(value: Any) -> str:
    """Untrusted text made safe to print on one line."""
    return re.sub(r"[^\w.+-]", "?", str(value))[:20]
