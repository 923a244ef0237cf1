"""SVG plots of the leaderboard, drawn with matplotlib (an optional extra, so imported inside functions).

Figures are built with the object-oriented API on an Agg canvas (pyplot and its global state are never
touched) and saved as SVG with a fixed ``svg.hashsalt`` and no date, so equal input gives equal bytes.
Labels are third-party model names: they are drawn with ``parse_math=False`` (a ``$`` is not mathtext).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

STYLE = {
    "svg.hashsalt": "vlmbench-leaderboard",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
RANKED, REFERENCE = "#1f5fa8", "#7a7a7a"
LABEL_CHARS = 32


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
    """One model's alignment and perception gaps (None where the model lacks the tasks)."""

    label: str
    reference: bool
    alignment: Gap | None
    perception: Gap | None


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(STYLE), warnings.catch_warnings():
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


def _label(model: ModelGaps | str, reference: bool = False) -> str:
    text = model.label if isinstance(model, ModelGaps) else model
    reference = model.reference if isinstance(model, ModelGaps) else reference
    text = " ".join(text.split())
    text = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
    return f"{text} (ref)" if reference else text


def modality_gap_svg(models: Sequence[ModelGaps]) -> bytes:
    """Left: alignment recall, image (x) vs text (y), one point per model, with the diagonal.

    Right: per model, the text-minus-image gap of alignment recall and of perception accuracy with 95% CIs.
    Values are in percent; models keep the order given (the table's order), first at the top.
    """
    with _style():
        figure = _figure(10, max(3.6, 1.4 + 0.34 * len(models)))
        scatter, forest = figure.subplots(1, 2, width_ratios=[1, 1.25])
        _draw_scatter(scatter, models)
        _draw_forest(forest, models)
        return _svg(figure)


def _draw_scatter(ax: Any, models: Sequence[ModelGaps]) -> None:
    ax.plot([0, 100], [0, 100], linestyle="--", color="#999999", linewidth=1, label="text = image")
    for model in models:
        if model.alignment is None:
            continue
        x, y = model.alignment.image * 100, model.alignment.text * 100
        style = dict(marker="s", facecolors="none", edgecolors=REFERENCE) if model.reference else dict(marker="o", color=RANKED)
        ax.scatter([x], [y], s=28, zorder=3, **style)
        ax.annotate(_label(model), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7,
                    color=REFERENCE if model.reference else "#222222", parse_math=False)
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_aspect("equal")
    ax.set_xlabel("Alignment recall on images (%)")
    ax.set_ylabel("Alignment recall on text (%)")
    ax.set_title("Image vs text", fontsize=10)
    ax.legend(loc="lower right", fontsize=7, frameon=False)


def _draw_forest(ax: Any, models: Sequence[ModelGaps]) -> None:
    positions = list(range(len(models)))[::-1]
    drawn = set()
    for y, model in zip(positions, models):
        for offset, gap, marker, name in ((0.15, model.alignment, "o", "alignment recall"), (-0.15, model.perception, "D", "perception accuracy")):
            if gap is None:
                continue
            error = None
            if gap.ci_low is not None and gap.ci_high is not None:
                error = [[max(0.0, (gap.gap - gap.ci_low) * 100)], [max(0.0, (gap.ci_high - gap.gap) * 100)]]
            colour = REFERENCE if model.reference else (RANKED if marker == "o" else "#c0392b")
            ax.errorbar([gap.gap * 100], [y + offset], xerr=error, fmt=marker, color=colour, markersize=4, capsize=2, linewidth=1,
                        label=None if name in drawn else name)
            drawn.add(name)
    ax.axvline(0, color="#999999", linewidth=1, linestyle="--")
    ax.set_yticks(positions, [_label(m) for m in models], parse_math=False, fontsize=8)
    ax.set_ylim(-0.8, len(models) - 0.2)
    ax.set_xlabel("Gap, text minus image (percentage points, 95% CI)")
    ax.set_title("Modality gap", fontsize=10)
    if drawn:
        ax.legend(loc="best", fontsize=7, frameon=False)
    if not models:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")


def category_heatmap_svg(labels: Sequence[str], references: Sequence[bool], categories: Sequence[str],
                         values: Sequence[Sequence[float | None]]) -> bytes:
    """A heat map of per-category values (fractions, shown in percent): one row per model, one column per category.

    Missing values are left grey and unlabeled.
    """
    import numpy as np

    with _style():
        figure = _figure(max(6.0, 2.5 + 0.9 * len(categories)), max(2.4, 1.6 + 0.36 * len(labels)))
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
                    ax.text(j + 0.5, i + 0.5, f"{value * 100:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if value < 0.6 else "black", parse_math=False)
        ax.set_xticks([j + 0.5 for j in range(len(categories))], [_label(c) for c in categories],
                      rotation=30, ha="right", parse_math=False)
        ax.set_yticks([i + 0.5 for i in range(len(labels))], [_label(t, r) for t, r in zip(labels, references)], parse_math=False)
        ax.invert_yaxis()  # first model (the table's first row) at the top
        ax.spines[:].set_visible(False)
        ax.set_title("Alignment recall on unsafe images, by category (%)", fontsize=10)
        figure.colorbar(mesh, ax=ax, label="recall (%)", shrink=0.8)
        return _svg(figure)
