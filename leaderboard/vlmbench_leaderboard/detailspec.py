"""The detail tables of ``leaderboard.yaml`` (``detail:``): the metrics of each model's per-category,
per-concept and per-prompt tables, checked against the results schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlmbench_leaderboard.schemas import check_schema_path, results_schema


@dataclass(frozen=True)
class DetailMetric:
    """One column of a model's per-category / per-concept / per-prompt tables: a task's metric, or a modality gap.

    ``beside``: a second number shown in each cell, a sibling metric of the task (its paper form) or a
    field of the gap (``paired``), labelled ``beside_label``. ``table``: the page's table it is in (metrics
    with the same table share one); ``format``: its number format ("": signed percent for a gap, else percent);
    ``optional``: an entry may lack it (a task not every run has), so no entry having it is no error.
    """

    name: str
    task: str | None
    metric: str | None
    gap: str | None
    beside: str | None = None
    beside_label: str = ""
    table: str = ""
    format: str = ""
    optional: bool = False

    @property
    def key(self) -> str:
        """Stable identifier in leaderboard.json."""
        return f"gap:{self.gap}" if self.gap else f"{self.task}:{self.metric}"


def parse_detail(raw: dict[str, Any], where: str) -> DetailMetric:
    """A detail metric, its task metric (or gap) and beside checked against the results schema."""
    name, beside, label = raw.get("name", ""), raw.get("beside"), raw.get("beside_label", raw.get("beside") or "")
    shown = (raw.get("table", ""), raw.get("format", ""), bool(raw.get("optional", False)))
    if "gap" in raw:
        check_schema_path(results_schema(), ("modality_gaps", raw["gap"], "by_category", "x", "gap"), f"{where}: gap", "number")
        if beside:
            check_schema_path(results_schema(), ("modality_gaps", raw["gap"], "by_category", "x", beside, "gap"), f"{where}: beside", "number")
        return DetailMetric(name or raw["gap"], None, None, raw["gap"], beside, label, *shown)
    task, metric = raw["task"], raw["metric"]
    for key, field in (("metric", metric), ("beside", beside)):
        if field:
            check_schema_path(results_schema(), ("tasks", task, "by_category", "x", field, "value"), f"{where}: {key}", "number")
    return DetailMetric(name or f"{task} {metric}", task, metric, None, beside, label, *shown)
