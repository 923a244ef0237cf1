"""Table values: a column's value (with its uncertainty) for one entry, read along the config's paths."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
    """A table value with its uncertainty (either a standard error or a 95% CI, or none)."""

    value: float | str | None
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


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
    if column.aggregate == "mean":
        return Cell(_mean(document, paths, category))
    value = lookup(document, fill(paths.value, category))
    if column.format == "text":
        return Cell(value if isinstance(value, str) else (None if value is None or value is MISSING else str(value)))
    main = number(value)
    if main is None:
        return Cell(None)
    return Cell(main, _optional(document, paths.stderr, category), _optional(document, paths.ci_low, category),
                _optional(document, paths.ci_high, category))


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


def path_found(document: Any, segments: tuple[str, ...]) -> bool:
    """Whether the part of a path before any placeholder exists (null along the way counts as found)."""
    cut = next((i for i, s in enumerate(segments) if s in ("*", CATEGORY)), len(segments))
    return lookup(document, segments[:cut]) is not MISSING
