"""The one scoring path: verdicts for a task's records, then its metrics, then the modality gaps.

``vlmbench run`` (after predicting), ``vlmbench score RUN_DIR`` and ``leaderboard verify`` all
call :func:`score_records` and :func:`modality_gaps`; nothing else computes a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmbench.errors import UserError
from vlmbench.pluginmanager import did_you_mean, metric_specs, scorer_specs
from vlmbench.records import SampleRecord
from vlmbench.scoring.base import ScoreInput
from vlmbench.scoring.metrics import MetricSpec, Scored, breakdown, modality_gap, summarise


@dataclass(frozen=True)
class ScoringPlan:
    """How a task is scored: which scorer (with its arguments), which metrics, which clusters."""

    scorer: str
    metrics: tuple[str, ...]
    scorer_args: Mapping[str, str] = field(default_factory=dict)
    cluster_key: str = "concept"

    @classmethod
    def of_task(cls, task: Any) -> ScoringPlan:
        """The plan a :class:`~vlmbench.taskconfig.TaskConfig` declares."""
        return cls(task.scorer, tuple(task.metric_names), task.scorer_args, task.cluster_key)

    @classmethod
    def of_manifest(cls, entry: Mapping[str, Any]) -> ScoringPlan:
        """The plan a run manifest's task entry recorded (``answer_parser`` is the field's earlier name)."""
        scorer = entry.get("scorer") or entry.get("answer_parser")
        return cls(
            str(scorer),
            tuple(str(m) for m in entry.get("metric_list", ())),
            dict(entry.get("scorer_args") or {}),
            str(entry.get("cluster_key") or "concept"),
        )


def _metrics(names: Sequence[str]) -> list[MetricSpec]:
    specs = metric_specs()
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise UserError(f"unknown metric '{unknown[0]}'{did_you_mean(unknown[0], specs)}; is the plugin that provides it installed?")
    return [specs[n] for n in names]


def score_records(records: list[SampleRecord], plan: ScoringPlan) -> dict[str, Any]:
    """Set every record's ``parsed``/``correct`` with the plan's scorer; return the task's metrics
    (``metrics`` overall, ``by_category`` and ``by_concept``, i.e. per cluster)."""
    specs = scorer_specs()
    if plan.scorer not in specs:
        raise UserError(f"unknown scorer '{plan.scorer}'{did_you_mean(plan.scorer, specs)}; is the plugin that provides it installed?")
    scorer = specs[plan.scorer].factory(plan.scorer_args)
    answered = [r for r in records if r["response"] is not None and r["error"] is None]
    items = [
        ScoreInput(
            id=r["id"],
            response=str(r["response"]),
            target=str(r["target"]),
            prompt=r["prompt"],
            choices=tuple(r["choices"]) if r["choices"] else None,
            doc=r["doc"],
        )
        for r in answered
    ]
    verdicts = {v.id: v for v in scorer.score(items)}
    view = []
    for record in records:
        verdict = verdicts.get(record["id"])
        record["parsed"], record["correct"] = (verdict.parsed, verdict.correct) if verdict else (None, None)
        view.append(_scored(record, plan.cluster_key))
    metrics = _metrics(plan.metrics)
    has_clusters = any(r["doc"].get(plan.cluster_key) for r in records)
    return {
        "metrics": summarise(view, metrics),
        "by_category": breakdown(view, lambda s: s.category, metrics),
        "by_concept": breakdown(view, lambda s: s.cluster, metrics) if has_clusters else {},
    }


def _scored(record: SampleRecord, cluster_key: str) -> Scored:
    """The metric view of a record; the cluster key's values are the clusters for standard errors."""
    doc = record["doc"]
    cluster = doc.get(cluster_key) or f"doc:{record['id']}"
    return Scored(
        cluster=str(cluster),
        category=str(doc.get("category", "all")),
        label=doc.get("label"),
        parsed=record["parsed"],
        correct=record["correct"],
        error=record["error"] is not None,
    )


def concept_categories(records: Sequence[SampleRecord]) -> dict[str, str]:
    """Concept -> category, over the unsafe records (the concepts a modality gap compares)."""
    return {r["doc"]["concept"]: r["doc"]["category"] for r in records if r["doc"].get("label") == "unsafe" and r["doc"].get("concept")}


def modality_gaps(entries: Mapping[str, Mapping[str, Any]], categories: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """text - image for every pair of tasks with the same ability, keyed by the text task.

    Each entry needs ``ability``, ``modality``, ``metric_list`` and ``by_concept``; the metric
    compared is the image task's first metric (accuracy for perception, recall on unsafe items
    for alignment).
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
