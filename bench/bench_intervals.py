"""Coverage of vlmbench's 95% intervals, by simulation at the UnsafeConcepts concept sizes.

    python bench/bench_intervals.py [--sims 2000] [--seed 0]

Concept sizes and categories come from the study's metadata (``../shared/reference/unsafeconcepts/
metadata.jsonl``: 75 concepts of 1 to 50 images in 9 categories), else from a built-in copy of
the same sizes. Outcomes are clustered: concept c answers correctly with probability
``expit(logit(p0) + sigma * z_c + beta * (log n_c - mean log n))``, so concepts differ (sigma) and
the rate depends on the concept's size (beta), as it does in the study. Image tasks ask 5 prompts
per image; text tasks 5 prompts per concept. Text and image concept effects correlate (rho).

For each scenario the true value is computed exactly (by numerical integration over z), and the
table gives the share of simulated runs whose interval contains it, for vlmbench's methods
(:mod:`vlmbench.scoring.intervals`) and for the methods it used before (Wald interval of the
cluster-robust standard error; paired t interval as the modality gap).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vlmbench.scoring.intervals import clustered_rate, mean_of_rates_interval, paired_difference, pooled_difference, t_quantile

REPO = Path(__file__).resolve().parent.parent
METADATA = REPO.parent / "shared" / "reference" / "unsafeconcepts" / "metadata.jsonl"
SIZES = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 6, 7, 7, 8, 8, 10, 10, 10, 11, 11, 11, 11, 12, 12, 13, 13, 14, 14, 15, 16, 19]
SIZES += [
    20,
    21,
    21,
    22,
    25,
    26,
    26,
    27,
    27,
    29,
    31,
    31,
    31,
    31,
    32,
    33,
    34,
    34,
    35,
    36,
    36,
    37,
    38,
    38,
    39,
    44,
    44,
    44,
    44,
    45,
    48,
    48,
    49,
    49,
    50,
    50,
]
CATEGORY_SIZES = {"A": 10, "B": 10, "C": 10, "D": 10, "E": 10, "F": 9, "G": 7, "H": 7, "I": 2}
PROMPTS = 5
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)  # for E[expit(a + sigma z)], z ~ N(0, 1)


def concepts() -> tuple[np.ndarray, np.ndarray]:
    """(images per concept, category index per concept)."""
    if METADATA.is_file():
        rows = [json.loads(line) for line in METADATA.read_text(encoding="utf-8").splitlines()]
        sizes = Counter(r["unsafe_concept"] for r in rows)
        category = {r["unsafe_concept"]: r["category"] for r in rows}
        names = sorted(sizes)
        cats = sorted(set(category.values()))
        return np.array([sizes[n] for n in names]), np.array([cats.index(category[n]) for n in names])
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(len(CATEGORY_SIZES)), list(CATEGORY_SIZES.values()))
    return np.array(SIZES), rng.permutation(labels)


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def expected_rate(shift: np.ndarray, sigma: float) -> np.ndarray:
    """E[expit(shift + sigma z)] per concept."""
    return (expit(shift[:, None] + sigma * NODES[None, :]) * WEIGHTS).sum(axis=1) / WEIGHTS.sum()


def intercept_for(target: float, offsets: np.ndarray, sigma: float, weights: np.ndarray) -> float:
    """The intercept at which the item-weighted expected rate equals ``target`` (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(100):
        mid = (low + high) / 2
        rate = float((expected_rate(mid + offsets, sigma) * weights).sum() / weights.sum())
        low, high = (mid, high) if rate < target else (low, mid)
    return (low + high) / 2


def old_rate_interval(counts: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """vlmbench before: value +- 1.96 cluster-robust SE (not clipped)."""
    stat = clustered_rate(counts)
    if not stat or stat["stderr"] is None:
        return None
    return stat["value"] - 1.96 * stat["stderr"], stat["value"] + 1.96 * stat["stderr"]


def covers(interval: tuple[float | None, float | None] | None, truth: float) -> bool | None:
    if interval is None or interval[0] is None or interval[1] is None:
        return None
    return interval[0] <= truth <= interval[1]


class Tally:
    """Coverage counts per (scenario, method)."""

    def __init__(self) -> None:
        self.hits: Counter[tuple[str, str]] = Counter()
        self.runs: Counter[tuple[str, str]] = Counter()
        self.widths: dict[tuple[str, str], list[float]] = {}

    def add(self, scenario: str, method: str, interval: Any, truth: float) -> None:
        result = covers(interval, truth)
        if result is None:
            return
        self.runs[scenario, method] += 1
        self.hits[scenario, method] += result
        self.widths.setdefault((scenario, method), []).append(interval[1] - interval[0])

    def rows(self) -> list[list[str]]:
        out = []
        for key in sorted(self.runs, key=lambda k: (k[0], k[1])):
            runs = self.runs[key]
            out.append([key[0], key[1], f"{self.hits[key] / runs:.3f}", f"{float(np.mean(self.widths[key])):.3f}", str(runs)])
        return out


def simulate(sims: int, seed: int) -> Tally:
    sizes, category = concepts()
    rng = np.random.default_rng(seed)
    tally = Tally()
    centred = np.log(sizes) - np.log(sizes).mean()
    sigma, beta, rho = 1.0, 0.4, 0.5
    names = [f"c{i}" for i in range(len(sizes))]
    image_items, text_items = sizes * PROMPTS, np.full(len(sizes), PROMPTS)
    for target in (0.5, 0.97):
        image_shift = intercept_for(target, beta * centred, sigma, image_items) + beta * centred
        text_shift = math.log(0.7 / 0.3) + 0 * centred
        e_image, e_text = expected_rate(image_shift, sigma), expected_rate(text_shift, sigma)
        truth_rate = float((e_image * image_items).sum() / image_items.sum())
        truth_pooled = float((e_text * text_items).sum() / text_items.sum()) - truth_rate
        truth_paired = float((e_text - e_image).mean())
        truth_category = {
            k: float((e_image * image_items)[category == k].sum() / image_items[category == k].sum()) for k in range(category.max() + 1)
        }
        label = f"rate {truth_rate:.2f}"
        for _ in range(sims):
            z = rng.standard_normal(len(sizes))
            z_text = rho * z + math.sqrt(1 - rho * rho) * rng.standard_normal(len(sizes))
            y_image = rng.binomial(image_items, expit(image_shift + sigma * z))
            y_text = rng.binomial(text_items, expit(text_shift + sigma * z_text))
            image = {n: (float(y), float(m)) for n, y, m in zip(names, y_image, image_items)}
            text = {n: (float(y), float(m)) for n, y, m in zip(names, y_text, text_items)}
            stat = clustered_rate(image)
            assert stat is not None
            tally.add(f"{label}: overall", "vlmbench (logit jackknife, t)", (stat["ci_low"], stat["ci_high"]), truth_rate)
            tally.add(f"{label}: overall", "before (Wald, robust SE)", old_rate_interval(image), truth_rate)
            for k, truth in truth_category.items():
                members = {n: image[n] for n, c in zip(names, category) if c == k}
                scenario = f"{label}: category of {len(members)} concepts"
                stat = clustered_rate(members)
                assert stat is not None
                tally.add(scenario, "vlmbench (logit jackknife, t)", (stat["ci_low"], stat["ci_high"]), truth)
                tally.add(scenario, "before (Wald, robust SE)", old_rate_interval(members), truth)
            pooled = pooled_difference(image, text)
            paired = paired_difference({n: y / m for n, (y, m) in image.items()}, {n: y / m for n, (y, m) in text.items()})
            assert pooled and paired
            tally.add(f"{label}: pooled gap (paper's)", "vlmbench (jackknife, t)", (pooled["ci_low"], pooled["ci_high"]), truth_pooled)
            tally.add(f"{label}: pooled gap (paper's)", "before (paired t interval)", (paired["ci_low"], paired["ci_high"]), truth_pooled)
            tally.add(f"{label}: paired gap", "vlmbench (t over concepts)", (paired["ci_low"], paired["ci_high"]), truth_paired)
    return tally


SAFE_CONTROLS = {"built-in safe controls (15 concepts x 3 images)": (15, 3), "hub safe controls (1,000 images, one concept each)": (1000, 1)}
BALANCED = ((0.97, 0.5), (0.995, 0.9), (0.9, 0.995), (0.999, 0.6), (0.6, 0.999), (0.999, 0.999))  # (recall, specificity) targets


def old_balanced_interval(recall: dict[str, Any], spec: dict[str, Any]) -> tuple[float, float] | None:
    """vlmbench before: the mean +- t(min clusters - 1) x half the root sum of the two jackknife variances."""
    if recall["stderr"] is None or spec["stderr"] is None:
        return None
    value = (recall["value"] + spec["value"]) / 2
    half = t_quantile(min(recall["clusters"], spec["clusters"]) - 1) * 0.5 * math.hypot(recall["stderr"], spec["stderr"])
    return max(0.0, value - half), min(1.0, value + half)


def simulate_balanced(sims: int, rng: np.random.Generator, tally: Tally) -> None:
    """Balanced accuracy of alignment-image: recall over the study's unsafe concepts (5 prompts per image), specificity
    over safe controls (5 prompts per image), concept effects independent between the two."""
    sizes, _ = concepts()
    centred = np.log(sizes) - np.log(sizes).mean()
    sigma, beta = 1.0, 0.4
    unsafe_items = sizes * PROMPTS
    for controls, (n_safe, images) in SAFE_CONTROLS.items():
        safe_items = np.full(n_safe, images * PROMPTS)
        for recall_target, spec_target in BALANCED:
            unsafe_shift = intercept_for(recall_target, beta * centred, sigma, unsafe_items) + beta * centred
            safe_shift = np.full(n_safe, intercept_for(spec_target, np.zeros(n_safe), sigma, safe_items))
            e_unsafe, e_safe = expected_rate(unsafe_shift, sigma), expected_rate(safe_shift, sigma)
            truth = (float((e_unsafe * unsafe_items).sum() / unsafe_items.sum()) + float((e_safe * safe_items).sum() / safe_items.sum())) / 2
            scenario = f"balanced accuracy, recall {recall_target} / specificity {spec_target}, {controls}"
            for _ in range(sims):
                y_unsafe = rng.binomial(unsafe_items, expit(unsafe_shift + sigma * rng.standard_normal(len(sizes))))
                y_safe = rng.binomial(safe_items, expit(safe_shift + sigma * rng.standard_normal(n_safe)))
                recall = clustered_rate({f"u{i}": (float(y), float(m)) for i, (y, m) in enumerate(zip(y_unsafe, unsafe_items))})
                spec = clustered_rate({f"s{i}": (float(y), float(m)) for i, (y, m) in enumerate(zip(y_safe, safe_items))})
                assert recall is not None and spec is not None
                tally.add(scenario, "vlmbench (MOVER of the two rates' intervals)", mean_of_rates_interval(recall, spec), truth)
                tally.add(scenario, "before (t x combined jackknife SE)", old_balanced_interval(recall, spec), truth)


def main(argv: list[str] | None = None, report: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("", "rates", "balanced"), default="", help="one group of scenarios (default: all)")
    ns = parser.parse_args(argv)
    tally = simulate(ns.sims, ns.seed) if ns.only in ("", "rates") else Tally()
    if ns.only in ("", "balanced"):
        simulate_balanced(ns.sims, np.random.default_rng(ns.seed + 1), tally)
    source = "study metadata" if METADATA.is_file() else "built-in copy of the study's sizes"
    report(f"# interval coverage, {datetime.date.today()}, {platform.platform()}, {os.cpu_count()} cores, {ns.sims} simulations, sizes: {source}")
    report("| scenario | method | coverage | mean width | runs |")
    report("|---|---|---|---|---|")
    for row in tally.rows():
        report("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
