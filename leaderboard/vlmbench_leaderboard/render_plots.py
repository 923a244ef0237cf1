"""The configured plots (``plots:`` in leaderboard.yaml) drawn from the board: SVG bytes by site path."""

from __future__ import annotations

from typing import Any

from vlmbench.errors import UserError
from vlmbench_leaderboard.board import Board, by_name
from vlmbench_leaderboard.cells import lookup, number
from vlmbench_leaderboard.config import GapPlot, HeatmapPlot, PlotSpec

FOLDER = "plots"


def plot_path(plot: PlotSpec) -> str:
    """Where a plot is written, relative to the site folder."""
    return f"{FOLDER}/{plot.file}"


def figures(board: Board) -> list[dict[str, str]]:
    """What the page shows of each plot: its file, title and alternative text."""
    return [{"file": plot_path(p), "title": p.title, "alt": p.alt} for p in board.config.plots]


def render_plots(board: Board) -> dict[str, bytes]:
    """Every configured plot as SVG, by path relative to the site folder (none configured: no matplotlib needed)."""
    if not board.config.plots:
        return {}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("building the leaderboard needs matplotlib for its plots; pip install 'vlmbench[leaderboard]'") from None
    return {plot_path(p): _gap_plot(board, p) if isinstance(p, GapPlot) else _heatmap(board, p) for p in board.config.plots}


def _gap(results: dict[str, Any], name: str) -> Any:
    from vlmbench_leaderboard.plots import Gap

    overall = lookup(results, ("modality_gaps", name, "overall"))
    if not isinstance(overall, dict):
        return None
    image, text, gap = number(overall.get("image")), number(overall.get("text")), number(overall.get("gap"))
    if image is None or text is None or gap is None:
        return None
    return Gap(image=image, text=text, gap=gap, ci_low=number(overall.get("ci_low")), ci_high=number(overall.get("ci_high")))


def _gap_plot(board: Board, plot: GapPlot) -> bytes:
    from vlmbench_leaderboard.plots import ModelGaps, modality_gap_svg

    models = [
        ModelGaps(
            label=row.entry.name,
            reference=row.entry.reference,
            scatter=_gap(row.entry.results, plot.scatter),
            series=tuple(_gap(row.entry.results, s.gap) for s in plot.series),
        )
        for row in board.rows
    ]
    return modality_gap_svg(models, plot.scatter_label, [s.label for s in plot.series])


def _heatmap(board: Board, plot: HeatmapPlot) -> bytes:
    from vlmbench_leaderboard.plots import category_heatmap_svg

    per_row: list[dict[str, float | None]] = []
    for row in board.rows:
        by_category = lookup(row.entry.results, ("tasks", plot.task, "by_category"))
        values: dict[str, float | None] = {}
        for cat, summary in by_category.items() if isinstance(by_category, dict) else ():
            stat = summary.get(plot.metric) if isinstance(summary, dict) else None
            if isinstance(stat, dict):
                values[cat] = number(stat.get("value"))
        per_row.append(values)
    categories = by_name({c: None for values in per_row for c, v in values.items() if v is not None})
    matrix = [[values.get(c) for c in categories] for values in per_row]
    return category_heatmap_svg(
        [r.entry.name for r in board.rows], [r.entry.reference for r in board.rows], categories, matrix, plot.title, plot.label
    )
