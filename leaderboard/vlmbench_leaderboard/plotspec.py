"""The plots of ``leaderboard.yaml`` (``plots:``): what each kind draws, checked against the results schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlmbench_leaderboard.schemas import check_schema_path, results_schema


@dataclass(frozen=True)
class GapSeries:
    """One modality gap drawn in a modality-gap plot, with its legend label."""

    gap: str
    label: str


@dataclass(frozen=True)
class GapPlot:
    """``kind: modality_gap``: one gap's image vs text sides as a scatter, and several gaps with their CIs."""

    file: str
    title: str
    alt: str
    scatter: str
    scatter_label: str
    series: tuple[GapSeries, ...]


@dataclass(frozen=True)
class HeatmapPlot:
    """``kind: heatmap``: one task metric per model (rows) and category (columns)."""

    file: str
    title: str
    alt: str
    task: str
    metric: str
    label: str


PlotSpec = GapPlot | HeatmapPlot


def parse_plot(raw: dict[str, Any], where: str) -> PlotSpec:
    """A ``plots:`` item (already schema-checked), its tasks, metrics and gaps checked against the results schema."""
    common = {"file": raw["file"], "title": raw["title"], "alt": raw["alt"]}
    if raw["kind"] == "heatmap":
        check_schema_path(results_schema(), ("tasks", raw["task"], "by_category", "x", raw["metric"], "value"), f"{where}: metric", "number")
        return HeatmapPlot(**common, task=raw["task"], metric=raw["metric"], label=raw["label"])
    series = tuple(GapSeries(s["gap"], s["label"]) for s in raw["series"])
    for i, gap in enumerate((raw["scatter"], *(s.gap for s in series))):
        field = "scatter" if i == 0 else f"series[{i - 1}]: gap"
        for leaf in ("gap", "image", "text"):
            check_schema_path(results_schema(), ("modality_gaps", gap, "overall", leaf), f"{where}: {field}", "number")
    return GapPlot(**common, scatter=raw["scatter"], scatter_label=raw["scatter_label"], series=series)
