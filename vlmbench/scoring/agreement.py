"""How much two judges agree on the same responses: percent agreement, Cohen's kappa, confusion table.

Every verdict counts, ``unparsed`` included (a judge that cannot read an answer disagrees with
one that can). Responses that failed (no answer) are judged by nobody and are not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

UNPARSED = "unparsed"


def label(parsed: str | None) -> str:
    """A verdict as a table label (``unparsed`` for no verdict)."""
    return UNPARSED if parsed is None else parsed


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two label sequences of equal length (None when it is undefined: no items,
    or both judges gave one and the same label to everything, so chance agreement is 1)."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[k] * counts_b[k] for k in counts_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def pair_agreement(first: Sequence[str | None], second: Sequence[str | None]) -> dict[str, Any]:
    """``n``, ``agreement`` (share of identical verdicts), ``kappa`` and ``confusion``
    (first judge's label -> second judge's label -> count)."""
    a, b = [label(x) for x in first], [label(x) for x in second]
    confusion: dict[str, dict[str, int]] = {}
    for x, y in zip(a, b):
        confusion.setdefault(x, {}).setdefault(y, 0)
        confusion[x][y] += 1
    n = len(a)
    return {
        "n": n,
        "agreement": (sum(x == y for x, y in zip(a, b)) / n) if n else None,
        "kappa": cohen_kappa(a, b),
        "confusion": {k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
    }


def agreement_table(verdicts: Mapping[str, Sequence[str | None]]) -> dict[str, Any]:
    """Agreement for every pair of judges (keyed ``"first vs second"``, in the judges' order)."""
    return {f"{a} vs {b}": {"judges": [a, b], **pair_agreement(verdicts[a], verdicts[b])} for a, b in combinations(verdicts, 2)}
