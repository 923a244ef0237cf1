"""The one scoring path: verdicts for a task's records, then its metrics, then the modality gaps.

``vlmbench run`` (after predicting), ``vlmbench score RUN_DIR`` and ``leaderboard verify`` all
call :func:`score_records` and :func:`modality_gaps`; nothing else computes a number.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmbench.collector import few_collections
from vlmbench.errors import UserError
from vlmbench.pluginmanager import did_you_mean, metric_specs
from vlmbench.records import SampleRecord
from vlmbench.scoring.agreement import agreement_table
from vlmbench.scoring.base import ScoreInput, Verdict
from vlmbench.scoring.judging import JudgeConfig as JudgeConfig
from vlmbench.scoring.judging import JudgeOutcome as JudgeOutcome
from vlmbench.scoring.judging import run_judges
from vlmbench.scoring.metrics import MetricSpec, Scored, breakdown, modality_gap, prompt_spread, summarise


@dataclass(frozen=True)
class ScoringPlan:
    """How a task is scored: its answer format's scorer (with its arguments), its judges (headline
    first), which metrics, which clusters."""

    scorer: str
    metrics: tuple[str, ...]
    scorer_args: Mapping[str, str] = field(default_factory=dict)
    cluster_key: str = "concept"
    judges: tuple[str, ...] = ("rules",)

    @classmethod
    def of_task(cls, task: Any, judges: Sequence[str] = ()) -> ScoringPlan:
        """The plan a :class:`~vlmbench.taskconfig.TaskConfig` declares (``judges`` replace its default judge)."""
        return cls(task.scorer, tuple(task.metric_names), task.scorer_args, task.cluster_key, tuple(judges) or tuple(task.judges))

    @classmethod
    def of_manifest(cls, entry: Mapping[str, Any], judges: Sequence[str] = ()) -> ScoringPlan:
        """The plan a run manifest's task entry recorded."""
        return cls(
            recorded_scorer(entry),
            tuple(str(m) for m in entry.get("metric_list", ())),
            dict(entry.get("scorer_args") or {}),
            str(entry.get("cluster_key") or "concept"),
            tuple(judges) or tuple(str(j) for j in entry.get("judges") or ("rules",)),
        )


def recorded_scorer(entry: Mapping[str, Any]) -> str:
    """The scorer (answer format) a run manifest's task entry records (``answer_parser`` is the field's earlier name)."""
    return str(entry.get("scorer") or entry.get("answer_parser"))


# Every field :func:`score_records` may return (``leaderboard verify`` tells them from the copied ones by this).
SCORED_FIELDS = frozenset(
    {"metrics", "by_category", "by_concept", "judges", "by_prompt", "prompt_spread", "metrics_by_judge", "agreement", "served_models", "reused_from"}
)


def _metrics(names: Sequence[str]) -> list[MetricSpec]:
    specs = metric_specs()
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise UserError(f"unknown metric '{unknown[0]}'{did_you_mean(unknown[0], specs)}; is the plugin that provides it installed?")
    return [specs[n] for n in names]


def score_records(
    records: list[SampleRecord], plan: ScoringPlan, judging: JudgeConfig | None = None, *, recorded: Sequence[JudgeOutcome] | None = None
) -> dict[str, Any]:
    """Judge every record with the plan's judges and return the task's metrics.

    Each record's ``parsed``/``correct`` are the headline judge's verdict and ``verdicts`` holds
    every judge's. The result has ``metrics`` overall, ``by_category`` and ``by_concept`` (per
    cluster) from the headline judge, ``judges`` (each judge's identity), with several prompts
    ``by_prompt`` (keyed by the prompt's index in ``prompts``) and ``prompt_spread``, and with
    several judges ``metrics_by_judge`` and ``agreement``, ``served_models`` (answers by the model a
    server said answered, when any answer names one; a judge entry has its own) and ``reused_from``
    (reused answers by the provenance digest of the run that produced them, ``unknown`` where the store
    did not keep it). ``recorded``: verdicts already made (headline first),
    used instead of running the plan's judges (``leaderboard verify`` recomputes a model judge's
    numbers from the verdicts a submission recorded).
    """
    answered = [r for r in records if r["response"] is not None and r["error"] is None]
    with few_collections():
        items = [
            ScoreInput(
                id=r["id"],
                response=str(r["response"]),
                target=str(r["target"]),
                prompt=r["prompt"],
                choices=tuple(r["choices"]) if r["choices"] else None,
                doc=r["doc"],
                kind=plan.scorer,
            )
            for r in answered
        ]
    task = records[0]["task"] if records else ""
    if recorded is not None:
        outcomes = list(recorded)
    else:
        outcomes = run_judges(items, plan.judges, plan.scorer, plan.scorer_args, judging or JudgeConfig(), task)
    # The core's own metrics make no reference cycles: their objects may be collected less often (a plugin's run at Python's pace).
    metrics = _metrics(plan.metrics)
    own = _own_metrics()
    with few_collections() if all(any(m is o for o in own) for m in metrics) else contextlib.nullcontext():
        return _summary(records, answered, outcomes, plan, metrics)


@functools.cache
def _own_metrics() -> tuple[MetricSpec, ...]:
    """The metrics vlmbench registers itself (told apart by identity: a plugin's ``compute`` may not be hashable)."""
    from vlmbench.builtins import vlmbench_metrics

    return tuple(vlmbench_metrics())


def _summary(
    records: list[SampleRecord], answered: list[SampleRecord], outcomes: Sequence[JudgeOutcome], plan: ScoringPlan, metrics: list[MetricSpec]
) -> dict[str, Any]:
    """The verdicts kept in each record and the task's metrics (see :func:`score_records`)."""
    views = {o.name: [_scored(r, plan.cluster_key, o.verdicts.get(r["id"])) for r in records] for o in outcomes}
    headline = outcomes[0]
    for record in records:
        _keep_verdicts(record, outcomes)
    view = views[headline.name]
    has_clusters = any(r["doc"].get(plan.cluster_key) for r in records)
    result: dict[str, Any] = {
        "metrics": summarise(view, metrics),
        "by_category": breakdown(view, lambda s: s.category, metrics),
        "by_concept": breakdown(view, lambda s: s.cluster, metrics) if has_clusters else {},
        "judges": [_judge_entry(o, o is headline) for o in outcomes],
    }
    served = count_names(r.get("served_model") for r in answered)
    if served:
        result["served_models"] = served
    # Records written before vlmbench kept provenance have no produced_with field: nothing is known of them.
    reused_from = count_names(r.get("produced_with") or "unknown" for r in answered if r.get("reused") and "produced_with" in r)
    if reused_from:
        result["reused_from"] = reused_from
    if len({s.variant for s in view}) > 1:
        result["by_prompt"] = breakdown(view, lambda s: str(s.variant), metrics)
        result["prompt_spread"] = prompt_spread(result["by_prompt"])
    if len(outcomes) > 1:
        result["metrics_by_judge"] = {name: summarise(v, metrics) for name, v in views.items()}
        ids = [r["id"] for r in answered]
        result["agreement"] = agreement_table({o.name: [_parsed(o.verdicts.get(i)) for i in ids] for o in outcomes})
    return result


def count_names(names: Iterable[Any]) -> dict[str, int]:
    """How many times each name occurs (e.g. answers by served model; names that are not text are left out), by name."""
    counts = Counter(name for name in names if isinstance(name, str) and name)
    return dict(sorted(counts.items()))


def _judge_entry(outcome: JudgeOutcome, headline: bool) -> dict[str, Any]:
    """A judge's entry in a task's results: its identity, whether it is the headline judge, its call
    counts and the models its server said answered (its verdicts' ``served_model`` details)."""
    entry: dict[str, Any] = {**outcome.identity, "judge": outcome.name, "headline": headline}
    if outcome.requests:
        entry["requests"] = outcome.requests
    served = count_names(v.detail.get("served_model") for v in outcome.verdicts.values())
    if served:
        entry["served_models"] = served
    return entry


def _parsed(verdict: Verdict | None) -> str | None:
    return verdict.parsed if verdict else None


def _keep_verdicts(record: SampleRecord, outcomes: Sequence[JudgeOutcome]) -> None:
    """The headline verdict in ``parsed``/``correct``; every judge's in ``verdicts`` (with its details)."""
    kept: dict[str, Any] = {}
    for outcome in outcomes:
        verdict = outcome.verdicts.get(record["id"])
        entry: dict[str, Any] = {"parsed": _parsed(verdict), "correct": verdict.correct if verdict else None}
        if verdict and verdict.detail:
            entry["detail"] = dict(verdict.detail)
        kept[outcome.name] = entry
    headline = kept[outcomes[0].name]
    record["parsed"], record["correct"] = headline["parsed"], headline["correct"]
    record["verdicts"] = kept


def _scored(record: SampleRecord, cluster_key: str, verdict: Verdict | None) -> Scored:
    """The metric view of a record under one judge's verdict; the cluster key's values are the clusters for standard errors."""
    doc = record["doc"]
    value = doc.get(cluster_key)
    cluster = f"doc:{record['id']}" if value is None or value == "" else value  # 0 is a cluster like any other
    return Scored(
        cluster=str(cluster),
        category=str(doc.get("category", "all")),
        label=doc.get("label"),
        parsed=verdict.parsed if verdict else None,
        correct=verdict.correct if verdict else None,
        error=record["error"] is not None or bool(verdict and verdict.detail.get("error")),
        variant=int(record.get("variant") or 0),
    )


def concept_categories(records: Sequence[SampleRecord]) -> dict[str, str]:
    """Concept -> category, over every record that names a concept: a modality gap compares each concept that
    its metric counts, which for the contextual tasks includes concepts asked only in a safe context (``label``
    is the context there) and the safe controls. A concept whose records disagree takes an unsafe record's."""
    categories: dict[str, str] = {}
    for record in sorted(records, key=lambda r: r["doc"].get("label") == "unsafe"):  # unsafe records last: theirs wins
        concept = record["doc"].get("concept")
        if concept not in (None, ""):
            categories[str(concept)] = str(record["doc"].get("category", "all"))
    return categories


def modality_gaps(entries: Mapping[str, Mapping[str, Any]], categories: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """text - image for every pair of tasks with the same ability, keyed by the text task.

    Each entry needs ``ability``, ``modality``, ``metric_list`` and ``by_concept``; the metric
    compared is the headline (strict) form of the image task's first metric (accuracy for
    perception, recall on unsafe items for alignment).
    """
    gaps: dict[str, Any] = {}
    for image_name, image in entries.items():
        if image["modality"] != "image" or not image.get("metric_list"):
            continue
        metric = str(image["metric_list"][0])
        for text_name, text in entries.items():
            if text["modality"] == "text" and text["ability"] == image["ability"]:
                gap = modality_gap(image["by_concept"], text["by_concept"], dict(categories[image_name]), metric)
                # The built-in pair (e.g. alignment-image) is keyed by the text task; any other image task by both names.
                key = text_name if image_name == f"{image['ability']}-image" else f"{text_name} - {image_name}"
                gaps[key] = {"image_task": image_name, "text_task": text_name, **gap}
    return gaps
