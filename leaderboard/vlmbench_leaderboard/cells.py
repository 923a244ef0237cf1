"""Table values: a column's value (with its 95% CI, n and the number shown beside it) for one entry, read along the config's paths."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from vlmbench_leaderboard.config import Column, Paths
from vlmbench_leaderboard.entries import Entry
from vlmbench_leaderboard.schemas import CATEGORY


class _Missing:
    """A path that does not exist, as opposed to one that leads to null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Cell:
    """A table value with its 95% CI (or none: ``few_clusters`` when it has too few concepts for one),
    its own n and coverage where the results give them, the number shown beside it (``beside``), and
    for a value an entry lacks (an optional column), why (``note``)."""

    value: float | str | None
    ci_low: float | None = None
    ci_high: float | None = None
    few_clusters: bool = False
    n: int | None = None
    coverage: float | None = None
    beside: Cell | None = None
    note: str = ""

    @property
    def has_ci(self) -> bool:
        """Whether both ends of the 95% CI are known."""
        return self.ci_low is not None and self.ci_high is not None


def lookup(document: Any, segments: Sequence[str]) -> Any:
    """The value at a path of keys; ``MISSING`` where a key is absent, None where the path meets null."""
    node = document
    for segment in segments:
        if node is None:
            return None
        if not isinstance(node, dict) or segment not in node:
            return MISSING
        node = node[segment]
    return node


def fill(segments: tuple[str, ...], category: str | None, star: str | None = None) -> tuple[str, ...]:
    """A path with ``{category}`` and ``*`` replaced by the given keys."""
    return tuple(category if s == CATEGORY and category is not None else star if s == "*" and star is not None else s for s in segments)


def number(value: Any) -> float | None:
    """A finite number as float; None for anything else (null, text, booleans, NaN, infinities, huge integers)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def _optional(document: Any, segments: tuple[str, ...] | None, category: str | None, star: str | None = None) -> float | None:
    return None if segments is None else number(lookup(document, fill(segments, category, star)))


def column_cell(column: Column, entry: Entry, category: str | None = None) -> Cell:
    """The value of ``column`` for ``entry``: overall, or for one category (``column.category`` paths)."""
    paths = column.paths if category is None else column.category
    if paths is None:
        return Cell(None)
    document = entry.document(column.source)
    if column.optional and not column.aggregate and lookup(document, fill(paths.value, category)) is MISSING:
        return Cell(None, note=column.absent_note)  # e.g. a task the run skipped: "-" with the column's note
    if column.aggregate == "mean":
        return Cell(_mean(document, paths, category))
    if column.format == "text":
        value = lookup(document, fill(paths.value, category))
        return Cell(value if isinstance(value, str) else (None if value is None or value is MISSING else str(value)))
    cell = stat_cell(document, paths, category)
    beside = column.beside
    extra = None if beside is None else beside.paths if category is None else beside.category
    if cell.value is None or extra is None:
        return cell
    second = stat_cell(document, extra, category)
    # A statistic that is there but null (e.g. the paper form when nothing was parsed) is shown as "-".
    present = second.value is not None or lookup(document, fill(extra.value[:-1], category)) is None
    return replace(cell, beside=second if present else None)


def stat_cell(document: Any, paths: Paths, category: str | None = None) -> Cell:
    """A number with whichever of its 95% CI, few-concepts flag, n and coverage the paths give."""
    main = number(lookup(document, fill(paths.value, category)))
    if main is None:
        return Cell(None)
    few = paths.few_clusters is not None and lookup(document, fill(paths.few_clusters, category)) is True
    return Cell(
        main,
        _optional(document, paths.ci_low, category),
        _optional(document, paths.ci_high, category),
        few,
        count(lookup(document, fill(paths.n, category)) if paths.n else None),
        _optional(document, paths.coverage, category),
    )


def count(value: Any) -> int | None:
    """A whole number (an n) as int; None for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53 else None


def _mean(document: Any, paths: Paths, category: str | None) -> float | None:
    star = paths.value.index("*")
    parent = lookup(document, fill(paths.value[:star], category))
    if not isinstance(parent, dict):
        return None
    total = weights = 0.0
    for key in sorted(parent):
        value = _optional(document, paths.value, category, key)
        weight = _optional(document, paths.weight, category, key) if paths.weight else 1.0
        if value is not None and weight:
            total += value * weight
            weights += weight
    return total / weights if weights else None


def unresolved(documents: Sequence[Any], segments: tuple[str, ...]) -> tuple[int, list[str]] | None:
    """Where a path leaves every document: the index of the first segment found in none, and the keys found there.

    ``*`` and ``{category}`` match every key; a null along the way, or a placeholder over an empty
    mapping, counts as found (nothing more can be checked). None when some document holds the path.
    """
    best: tuple[int, set[str]] = (-1, set())
    for document in documents:
        depth, known = _walk(document, segments, 0)
        if depth == len(segments):
            return None
        if depth > best[0]:
            best = (depth, set(known))
        elif depth == best[0]:
            best[1].update(known)
    return best[0], sorted(best[1])


def _walk(node: Any, segments: tuple[str, ...], depth: int) -> tuple[int, list[str]]:
    """The deepest depth a path reaches in one document, and the keys at that point."""
    if depth == len(segments) or node is None:
        return len(segments), []
    if not isinstance(node, dict):
        return depth, []
    segment = segments[depth]
    if segment in ("*", CATEGORY):
        if not node:
            return len(segments), []
        reached = [_walk(child, segments, depth + 1) for child in node.values()]
        deepest = max(d for d, _ in reached)
        return deepest, sorted({k for d, keys in reached if d == deepest for k in keys})
    if segment not in node:
        return depth, [str(k) for k in node]
    return _walk(node[segment], segments, depth + 1)
