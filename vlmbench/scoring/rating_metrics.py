"""Metrics over a model judge's 1-10 ratings of an answer against a reference (``relative-judge``).

- ``relative_score``: LLaVA-Bench's score, the sum of the answers' ratings over the sum of the
  reference answers' ratings (x100 gives the number LLaVA reports). It may exceed 1 when the judge
  prefers the model's answers, so its stat carries ``unbounded: true``. Paper form: over the
  answers the judge rated. Headline: every sample counts; an answer that was not rated (a failed
  request or an unreadable judge reply) counts as rated 0 against an average reference, i.e. the
  paper form times its coverage.
- ``answer_rating``: the mean rating of the answers, divided by 10 (unrated answers count 0 in the
  headline).

Intervals: delete-one-cluster jackknife (clusters: the task's ``cluster_key``, e.g. the image) with a
t quantile; fewer than 5 clusters give the estimate alone (``few_clusters``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from vlmbench.scoring.intervals import MIN_CLUSTERS, t_quantile
from vlmbench.scoring.metrics import MetricSpec, Scored, mean_with_stderr
from vlmbench.scoring.relative_judge import ratings


def _totals(samples: Sequence[Scored]) -> dict[str, list[float]]:
    """Per cluster: [answer ratings, reference ratings, rated items, items]."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for sample in samples:
        entry = totals[sample.cluster]
        entry[3] += 1
        pair = None if sample.error else ratings(sample.parsed)
        if pair is not None:
            entry[0] += pair[0]
            entry[1] += pair[1]
            entry[2] += 1
    return totals


def _ratio(answer: float, reference: float, rated: float, items: float, strict: bool) -> float | None:
    if reference <= 0 or rated <= 0:
        return 0.0 if strict and items > 0 else None
    return answer / reference * (rated / items if strict else 1.0)


def relative_score(samples: Sequence[Scored], strict: bool = False) -> dict[str, Any] | None:
    """Sum of answer ratings over sum of reference ratings, with a clustered jackknife interval."""
    totals = _totals(samples)
    answer, reference, rated, items = (sum(t[i] for t in totals.values()) for i in range(4))
    value = _ratio(answer, reference, rated, items, strict)
    if value is None:
        return None
    leave_out = [_ratio(answer - t[0], reference - t[1], rated - t[2], items - t[3], strict) for t in totals.values() if (t[3] if strict else t[2])]
    estimates = [e for e in leave_out if e is not None]
    groups = len(estimates)
    stderr = None
    if groups > 1:
        mean = sum(estimates) / groups
        stderr = math.sqrt((groups - 1) / groups * sum((e - mean) ** 2 for e in estimates))
    few = groups < MIN_CLUSTERS or stderr is None
    half = None if few or stderr is None else t_quantile(groups - 1) * stderr
    return {
        "value": value,
        "stderr": stderr,
        "n": int(items if strict else rated),
        "clusters": groups,
        "ci_low": None if half is None else max(0.0, value - half),
        "ci_high": None if half is None else value + half,
        "few_clusters": few,
        "unbounded": True,
    }


def answer_rating(samples: Sequence[Scored], strict: bool = False) -> dict[str, Any] | None:
    """Mean rating of the answers / 10."""
    pool = [(s, None if s.error else ratings(s.parsed)) for s in samples]
    kept = pool if strict else [(s, r) for s, r in pool if r is not None]
    return mean_with_stderr([r[0] / 10 if r else 0.0 for _, r in kept], [s.cluster for s, _ in kept])


RATING_METRICS = (
    MetricSpec("relative_score", "LLaVA-Bench relative score: answer ratings / reference ratings (judge 1-10; may exceed 1)", relative_score),
    MetricSpec("answer_rating", "mean judge rating of the answers, / 10", answer_rating),
)
