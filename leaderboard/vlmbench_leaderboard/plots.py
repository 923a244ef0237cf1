"""SVG plots of the leaderboard, drawn with matplotlib (an optional extra, so imported inside functions).

Figures are built with the object-oriented API on an Agg canvas (pyplot and its global state are never
touched) and saved as SVG with a fixed ``svg.hashsalt`` and no date, so equal input gives equal bytes.
Labels are third-party model names: they are drawn with ``parse_math=False`` (a ``$`` is not mathtext).
What to plot (tasks, metrics, gaps, labels) comes from the config; see ``render_plots``.
Text is sized for the page, which shows figures at their natural size: never below 9 pt (12 px).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from vlmbench_leaderboard.formatting import format_number

STYLE: dict[str, Any] = {
    "svg.hashsalt": "vlmbench-leaderboard",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
RANKED, REFERENCE = "#1f5fa8", "#7a7a7a"
SERIES = (("o", RANKED), ("D", "#c0392b"), ("s", "#2e8b57"), ("^", "#8e44ad"))
LABEL_CHARS = 32
SMALL, VALUE, TITLE = 9, 10, 11  # point sizes: annotations and legends, heat-map values, titles


@dataclass(frozen=True)
class Gap:
    """A modality gap (text minus image) with its 95% CI and the two sides it compares."""

    image: float
    text: float
    gap: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class ModelGaps:
    """One model's gaps: the one drawn as image vs text, and one per series (None where the model lacks it)."""

    label: str
    reference: bool
    scatter: Gap | None
    series: tuple[Gap | None, ...]


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    style: Any = STYLE  # matplotlib types its keys as a Literal of every rc name
    with matplotlib.rc_context(style), warnings.catch_warnings():
        # Third-party names may use characters the font lacks; a missing glyph is drawn as a box.
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph .* missing from.*")
        yield


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _svg(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def short_label(text: str, reference: bool = False) -> str:
    """A label on one line, at most LABEL_CHARS characters, ``(ref)`` marking reference rows."""
    text = " ".join(text.split())
    text = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
    return f"{text} (ref)" if reference else text


def modality_gap_svg(models: Sequence[ModelGaps], scatter_label: str, series_labels: Sequence[str]) -> bytes:
    """Left: the scatter gap's two sides, image (x) vs text (y), one point per model, with the diagonal.

    Right: per model, each series' text-minus-image gap with its 95% CI. Values are in percent; models
    keep the order given (the table's order), first at the top.
    """
    with _style():
        figure = _figure(10, max(3.8, 1.6 + 0.4 * len(models)))
        scatter, forest = figure.subplots(1, 2, width_ratios=[1, 1.25])
        _draw_scatter(scatter, models, scatter_label)
        _draw_forest(forest, models, series_labels)
        return _svg(figure)


def _draw_scatter(ax: Any, models: Sequence[ModelGaps], label: str) -> None:
    ax.plot([0, 100], [0, 100], linestyle="--", color="#999999", linewidth=1, label="text = image")
    for model in models:
        if model.scatter is None:
            continue
        x, y = model.scatter.image * 100, model.scatter.text * 100
        style = {"marker": "s", "facecolors": "none", "edgecolors": REFERENCE} if model.reference else {"marker": "o", "color": RANKED}
        ax.scatter([x], [y], s=28, zorder=3, **style)
        ax.annotate(
            short_label(model.label, model.reference),
            (x, y),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=SMALL,
            color=REFERENCE if model.reference else "#222222",
            parse_math=False,
        )
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{label} on images (%)", parse_math=False)
    ax.set_ylabel(f"{label} on text (%)", parse_math=False)
    ax.set_title("Image vs text", fontsize=TITLE)
    ax.legend(loc="lower right", fontsize=SMALL, frameon=False)


def _draw_forest(ax: Any, models: Sequence[ModelGaps], labels: Sequence[str]) -> None:
    positions = list(range(len(models)))[::-1]
    step = 0.6 / max(1, len(labels))
    drawn: set[str] = set()
    for y, model in zip(positions, models):
        for index, (gap, name) in enumerate(zip(model.series, labels)):
            if gap is None:
                continue
            error = None
            if gap.ci_low is not None and gap.ci_high is not None:
                error = [[max(0.0, (gap.gap - gap.ci_low) * 100)], [max(0.0, (gap.ci_high - gap.gap) * 100)]]
            marker, colour = SERIES[index % len(SERIES)]
            offset = 0.3 - step / 2 - index * step
            ax.errorbar(
                [gap.gap * 100],
                [y + offset],
                xerr=error,
                fmt=marker,
                color=REFERENCE if model.reference else colour,
                markersize=4,
                capsize=2,
                linewidth=1,
                label=None if name in drawn else name,
            )
            drawn.add(name)
    ax.axvline(0, color="#999999", linewidth=1, linestyle="--")
    ax.set_yticks(positions, [short_label(m.label, m.reference) for m in models], parse_math=False, fontsize=SMALL)
    ax.set_ylim(-0.8, len(models) - 0.2)
    ax.set_xlabel("Gap, text minus image (percentage points, 95% CI)")
    ax.set_title("Modality gap", fontsize=TITLE)
    if drawn:
        ax.legend(loc="best", fontsize=SMALL, frameon=False)
    if not models:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")


def category_heatmap_svg(
    labels: Sequence[str], references: Sequence[bool], categories: Sequence[str], values: Sequence[Sequence[float | None]], title: str, label: str
) -> bytes:
    """A heat map of per-category values (fractions, shown in percent): one row per model, one column per category.

    Each cell is labelled with its value in the tables' percent format; missing values are left grey
    and unlabeled. Labels carry SVG ids (``heatmap-value-I-J``, ``heatmap-model-I``, ``heatmap-category-J``).
    """
    import numpy as np

    with _style():
        figure = _figure(max(6.0, 3.0 + 1.0 * len(categories)), max(2.6, 1.9 + 0.42 * len(labels)))
        ax = figure.subplots()
        if not labels or not categories:
            ax.text(0.5, 0.5, "no per-category data", transform=ax.transAxes, ha="center")
            ax.set_axis_off()
            return _svg(figure)
        grid = np.ma.masked_invalid(np.array([[np.nan if v is None else v * 100 for v in row] for row in values], dtype=float))
        ax.set_facecolor("#e6e6e6")
        mesh = ax.pcolormesh(grid, cmap="viridis", vmin=0, vmax=100, edgecolors="white", linewidth=0.5)
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is not None:
                    text = ax.text(
                        j + 0.5,
                        i + 0.5,
                        format_number(value, "percent"),
                        ha="center",
                        va="center",
                        fontsize=VALUE,
                        color="white" if value < 0.6 else "black",
                        parse_math=False,
                    )
                    text.set_gid(f"heatmap-value-{i}-{j}")
        ax.set_xticks(
            [j + 0.5 for j in range(len(categories))], [short_label(c) for c in categories], rotation=30, ha="right", parse_math=False, fontsize=SMALL
        )
        ax.set_yticks(
            [i + 0.5 for i in range(len(labels))], [short_label(t, r) for t, r in zip(labels, references)], parse_math=False, fontsize=SMALL
        )
        for prefix, ticks in (("heatmap-category", ax.get_xticklabels()), ("heatmap-model", ax.get_yticklabels())):
            for n, tick in enumerate(ticks):
                tick.set_gid(f"{prefix}-{n}")
        ax.invert_yaxis()  # first model (the table's first row) at the top
        ax.spines[:].set_visible(False)
        ax.set_title(title, fontsize=TITLE, parse_math=False)
        figure.colorbar(mesh, ax=ax, label=f"{label} (%)", shrink=0.8)
        return _svg(figure)
