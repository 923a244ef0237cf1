"""95% confidence intervals for clustered proportions and their differences.

Samples of one concept are not independent (a model that misses a concept misses most of its
images), and concepts hold 1 to 50 images, so intervals treat the concept as the unit of
sampling. The methods were chosen by simulation at the study's concept sizes
(``bench/bench_intervals.py``; coverage table in docs/benchmarks.md):

- a rate (pooled over items): a delete-one-concept jackknife on the logit scale (of the rate with
  half an item added, so 0 and 1 stay finite; variance at least the binomial one) with a Student t
  quantile on the effective number of concepts minus one (``(sum n)^2 / sum n^2``: unequal concept
  sizes leave fewer degrees of freedom), transformed back. It stays inside (0, 1) and
  keeps its coverage near the ceiling, where a Wald interval of the cluster-robust standard error
  covered 82% per category;
- the pooled difference of two rates over the same concepts (the paper's modality gap): the
  delete-one-concept jackknife variance of the difference, t quantile on ``clusters - 1``;
- the paired difference (the mean of per-concept differences): a t interval over the concepts;
- the mean of two rates over different items (balanced accuracy: recall on unsafe items, specificity
  on safe ones): the two rates' own intervals combined by MOVER (Zou and Donner, 2008), so it keeps
  their coverage near 0 and 1, where a rate's standard error is 0 and gives no width.

With fewer than :data:`MIN_CLUSTERS` concepts an interval would mislead: the estimate is given
with ``few_clusters: true`` and no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from vlmbench.scoring import student_t

MIN_CLUSTERS = 5
LEVEL = 0.95

Counts = Mapping[str, tuple[float, float]]  # cluster -> (hits, items)


@lru_cache(maxsize=256)
def t_quantile(df: int) -> float:
    """The two-sided 95% Student t quantile (the normal one for df 0 or very large df)."""
    if df <= 0 or df > 10_000:
        return 1.959963984540054
    return student_t.quantile(0.5 + LEVEL / 2, df)


def _jackknife(estimates: Sequence[float]) -> float:
    """The delete-one-cluster jackknife variance from the leave-one-cluster-out estimates."""
    groups = len(estimates)
    if groups < 2:
        return 0.0
    mean = sum(estimates) / groups
    return (groups - 1) / groups * sum((e - mean) ** 2 for e in estimates)


def _robust_variance(residuals: Sequence[float]) -> float:
    """Cluster-robust variance of a total from per-cluster residual sums (with the G/(G-1) correction)."""
    groups = len(residuals)
    return groups / (groups - 1) * sum(r * r for r in residuals) if groups > 1 else 0.0


def clustered_rate(counts: Counts) -> dict[str, Any] | None:
    """A pooled rate over clusters with its cluster-robust standard error and 95% interval.

    Returns ``value``, ``stderr``, ``ci_low``, ``ci_high``, ``n`` (items), ``clusters`` and
    ``few_clusters``; None when there are no items."""
    items = sum(n for _, n in counts.values())
    if items <= 0:
        return None
    hits = sum(y for y, _ in counts.values())
    p = hits / items
    present = [(y, n) for y, n in counts.values() if n > 0]
    groups = len(present)
    variance = _jackknife([(hits - y) / (items - n) if items > n else p for y, n in present])
    stat: dict[str, Any] = {"value": p, "stderr": math.sqrt(variance) if groups > 1 else None, "n": int(items), "clusters": groups}
    if groups < MIN_CLUSTERS:
        return {**stat, "ci_low": None, "ci_high": None, "few_clusters": True}
    adjusted = (hits + 0.5) / (items + 1)
    left_out = [_logit((hits - y + 0.5) / (items - n + 1)) for y, n in present]
    spread = math.sqrt(max(_jackknife(left_out), 1 / (items * adjusted * (1 - adjusted)))) * t_quantile(_effective_df([n for _, n in present]))
    centre = _logit(adjusted)
    # No hit at all (or nothing but hits) cannot exclude 0 (or 1): the interval reaches it, and always holds the estimate.
    low = 0.0 if hits <= 0 else min(_expit(centre - spread), p)
    high = 1.0 if hits >= items else max(_expit(centre + spread), p)
    return {**stat, "ci_low": low, "ci_high": high, "few_clusters": False}


def mean_of_rates_interval(first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[float, float] | None:
    """The 95% interval of ``(first + second) / 2`` from the two rates' own intervals (MOVER: each side's
    distance from its estimate, combined as independent), or None when either has no interval. Each rate's
    interval reaches 0 or 1 where its estimate does, so a mean of rates at 0 and 1 still gets its width."""
    if any(stat.get("ci_low") is None or stat.get("ci_high") is None for stat in (first, second)):
        return None
    value = (first["value"] + second["value"]) / 2
    low = value - 0.5 * math.hypot(first["value"] - first["ci_low"], second["value"] - second["ci_low"])
    high = value + 0.5 * math.hypot(first["ci_high"] - first["value"], second["ci_high"] - second["value"])
    return max(0.0, low), min(1.0, high)


def _effective_df(sizes: Sequence[float]) -> int:
    """Degrees of freedom from the effective number of clusters, ``(sum n)^2 / sum n^2``, minus one:
    a few large concepts carry a pooled rate, so unequal sizes leave fewer degrees of freedom."""
    total = sum(sizes)
    effective = total * total / sum(n * n for n in sizes)
    return max(1, math.floor(effective) - 1)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def pooled_difference(first: Counts, second: Counts) -> dict[str, Any] | None:
    """``rate(second) - rate(first)``, each pooled over all its items: exactly the difference of the
    two headline rates. The jackknife leaves one cluster out of both sides at once, so clusters
    present in both (a concept asked as image and as text) count as pairs."""
    n1, n2 = sum(n for _, n in first.values()), sum(n for _, n in second.values())
    if n1 <= 0 or n2 <= 0:
        return None
    y1, y2 = sum(y for y, _ in first.values()), sum(y for y, _ in second.values())
    p1, p2 = y1 / n1, y2 / n2
    clusters = sorted(set(first) | set(second))
    left_out = []
    for c in clusters:
        (a, m), (b, k) = first.get(c, (0.0, 0.0)), second.get(c, (0.0, 0.0))
        if n1 - m <= 0 or n2 - k <= 0:
            return _difference(p2 - p1, p1, p2, 0.0, 1)  # one cluster holds all of one side: no interval
        left_out.append((y2 - b) / (n2 - k) - (y1 - a) / (n1 - m))
    return _difference(p2 - p1, p1, p2, _jackknife(left_out), len(clusters))


def paired_difference(first: Mapping[str, float], second: Mapping[str, float]) -> dict[str, Any] | None:
    """The mean over shared clusters of ``second[c] - first[c]``, with a t interval over the clusters."""
    shared = sorted(set(first) & set(second))
    if not shared:
        return None
    diffs = [second[c] - first[c] for c in shared]
    mean = sum(diffs) / len(diffs)
    m1, m2 = sum(first[c] for c in shared) / len(shared), sum(second[c] for c in shared) / len(shared)
    residuals = [(d - mean) / len(diffs) for d in diffs]
    return _difference(mean, m1, m2, _robust_variance(residuals), len(shared))


def _difference(value: float, first: float, second: float, variance: float, groups: int) -> dict[str, Any]:
    out: dict[str, Any] = {"gap": value, "image": first, "text": second, "n_concepts": groups}
    if groups < MIN_CLUSTERS:
        return {**out, "ci_low": None, "ci_high": None, "few_clusters": True}
    half = t_quantile(groups - 1) * math.sqrt(variance)
    return {**out, "ci_low": max(-1.0, value - half), "ci_high": min(1.0, value + half), "few_clusters": False}
