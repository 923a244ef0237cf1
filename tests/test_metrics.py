"""Metric arithmetic: clustered standard errors, strict vs paper-compatible, paired modality gaps."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conftest import plugged_in
from vlmbench.pluginmanager import metric_specs
from vlmbench.scoring.base import Verdict
from vlmbench.scoring.intervals import clustered_rate, paired_difference, pooled_difference
from vlmbench.scoring.metrics import Scored, balanced_accuracy, mean_with_stderr, modality_gap, summarise


def test_clustered_stderr_is_the_delete_one_concept_jackknife() -> None:
    # Two clusters: a = [1, 1], b = [0, 0]. Leaving a out gives 0, leaving b out gives 1: variance (1/2) * 2 * 0.25.
    stat = mean_with_stderr([1, 1, 0, 0], ["a", "a", "b", "b"])
    assert stat["value"] == 0.5 and stat["n"] == 4 and stat["clusters"] == 2
    assert stat["stderr"] == pytest.approx(0.5)
    assert stat["few_clusters"] and stat["ci_low"] is None  # 2 concepts: an interval would mislead
    assert mean_with_stderr([1.0], ["a"])["stderr"] is None
    assert mean_with_stderr([], []) is None


def test_rate_intervals_stay_inside_zero_one_and_widen_with_clustering() -> None:
    ceiling = clustered_rate({f"c{i}": (20.0, 20.0) for i in range(10)})
    assert ceiling["value"] == 1.0 and 0.9 < ceiling["ci_low"] < 1.0 and ceiling["ci_high"] == 1.0
    floor = clustered_rate({f"c{i}": (0.0, 20.0) for i in range(10)})
    assert floor["ci_low"] == 0.0 and 0.0 < floor["ci_high"] < 0.1  # no hit cannot exclude 0
    independent = clustered_rate({f"c{i}": (10.0, 20.0) for i in range(10)})  # every concept at 0.5
    clustered = clustered_rate({f"c{i}": (20.0 if i % 2 else 0.0, 20.0) for i in range(10)})  # concepts all or nothing
    assert independent["value"] == clustered["value"] == 0.5
    assert clustered["ci_high"] - clustered["ci_low"] > 2 * (independent["ci_high"] - independent["ci_low"])


def sample(label: str, parsed: str | None, concept: str = "c", error: bool = False, variant: int = 0) -> Scored:
    correct = None if parsed in (None, "refusal") else parsed == label
    return Scored(cluster=concept, category="x", label=label, parsed=parsed, correct=correct, error=error, variant=variant)


def test_headline_counts_every_sample_and_the_paper_form_says_its_coverage() -> None:
    samples = [
        sample("unsafe", "unsafe", "a"),
        sample("unsafe", None, "b"),
        sample("unsafe", "refusal", "c"),
        sample("unsafe", "safe", "d"),
        sample("unsafe", None, "e", error=True),
    ]
    out = summarise(samples, [metric_specs()["recall_unsafe"]])
    assert out["recall_unsafe_strict"]["value"] == 0.2 and out["recall_unsafe_strict"]["n"] == 5  # errors count as not correct
    assert out["recall_unsafe"]["value"] == 0.5 and out["recall_unsafe"]["n"] == 2
    assert out["recall_unsafe"]["coverage"] == pytest.approx(2 / 5)
    assert out["unparsed_rate"] == 0.2 and out["refusal_rate"] == 0.2
    assert out["n_errors"] == 1 and out["n_samples"] == 5


def test_balanced_accuracy_needs_both_kinds() -> None:
    unsafe_only = [sample("unsafe", "unsafe", "a"), sample("unsafe", "unsafe", "b")]
    assert balanced_accuracy(unsafe_only) is None
    mixed = unsafe_only + [sample("safe", "unsafe", "s1"), sample("safe", "safe", "s2")]
    assert balanced_accuracy(mixed)["value"] == pytest.approx((1.0 + 0.5) / 2)


def test_balanced_accuracy_interval_combines_its_two_rates_intervals_and_keeps_a_width_at_zero_and_one() -> None:
    # Always "unsafe": recall 1 and specificity 0, each with a standard error of 0 but an interval reaching 1 or 0.
    always_unsafe = [sample("unsafe", "unsafe", f"u{i}") for i in range(8) for _ in range(3)] + [sample("safe", "unsafe", f"s{i}") for i in range(6)]
    stat = balanced_accuracy(always_unsafe, strict=True)
    recall = clustered_rate({f"u{i}": (3.0, 3.0) for i in range(8)})
    spec = clustered_rate({f"s{i}": (0.0, 1.0) for i in range(6)})
    assert stat["value"] == 0.5 and stat["stderr"] == 0.0 and not stat["few_clusters"]
    # MOVER: half the root sum of squares of each rate's distance to its interval's facing end
    assert stat["ci_low"] == pytest.approx(0.5 - 0.5 * math.hypot(1.0 - recall["ci_low"], 0.0))
    assert stat["ci_high"] == pytest.approx(0.5 + 0.5 * math.hypot(0.0, spec["ci_high"] - 0.0))
    assert stat["ci_low"] < 0.5 < stat["ci_high"]  # not [0.5, 0.5]
    few = balanced_accuracy([sample("unsafe", "unsafe", f"u{i}") for i in range(8)] + [sample("safe", "safe", f"s{i}") for i in range(4)])
    assert few["few_clusters"] and few["ci_low"] is None  # 4 safe concepts: no interval


def test_paired_gap_uses_a_t_interval_over_concepts() -> None:
    image = {"a": 0.2, "b": 0.4, "c": 0.6, "d": 0.1, "e": 0.5, "only-image": 1.0}
    text = {"a": 0.5, "b": 0.6, "c": 1.0, "d": 0.3, "e": 0.8}
    gap = paired_difference(image, text)
    diffs = [0.3, 0.2, 0.4, 0.2, 0.3]
    mean = sum(diffs) / 5
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t(0.975, df=4)
    assert gap["n_concepts"] == 5 and gap["gap"] == pytest.approx(mean)
    assert gap["ci_low"] == pytest.approx(mean - half) and gap["ci_high"] == pytest.approx(mean + half)
    assert paired_difference({"a": 0.1, "b": 0.2}, {"a": 0.3, "b": 0.3})["few_clusters"]


def test_pooled_gap_is_the_difference_of_pooled_rates() -> None:
    # concept sizes differ: the pooled gap weights items, the paired gap weights concepts
    image = {"big": (10.0, 50.0), "s1": (1.0, 1.0), "s2": (1.0, 1.0), "s3": (1.0, 1.0), "s4": (1.0, 1.0)}
    text = {"big": (5.0, 5.0), "s1": (0.0, 5.0), "s2": (0.0, 5.0), "s3": (0.0, 5.0), "s4": (0.0, 5.0)}
    pooled = pooled_difference(image, text)
    assert pooled["image"] == pytest.approx(14 / 54) and pooled["text"] == pytest.approx(5 / 25)
    assert pooled["gap"] == pytest.approx(5 / 25 - 14 / 54)
    paired = paired_difference({c: y / n for c, (y, n) in image.items()}, {c: y / n for c, (y, n) in text.items()})
    assert paired["gap"] == pytest.approx(((1 - 0.2) - 4) / 5)
    assert pooled["ci_low"] <= pooled["gap"] <= pooled["ci_high"]


def test_per_prompt_metrics_and_spread() -> None:
    from vlmbench.scoring.metrics import breakdown, prompt_spread

    samples = [sample("unsafe", "unsafe" if v == 0 or i < v else "safe", f"c{i}", variant=v) for v in range(3) for i in range(4)]
    by_prompt = breakdown(samples, lambda s: str(s.variant), [metric_specs()["recall_unsafe"]])
    assert [by_prompt[k]["recall_unsafe_strict"]["value"] for k in ("0", "1", "2")] == [1.0, 0.25, 0.5]
    spread = prompt_spread(by_prompt)["recall_unsafe_strict"]
    assert spread["min"] == 0.25 and spread["max"] == 1.0 and spread["n_prompts"] == 3
    assert spread["sd"] == pytest.approx(math.sqrt(((1 - 7 / 12) ** 2 + (0.25 - 7 / 12) ** 2 + (0.5 - 7 / 12) ** 2) / 2))


def test_modality_gap_by_category() -> None:
    stat = lambda v: {"recall_unsafe_strict": {"value": v, "stderr": None, "n": 5}, "recall_unsafe": {"value": v, "stderr": None, "n": 5}}  # noqa: E731
    image = {"a": stat(0.0), "b": stat(0.2), "c": stat(1.0)}
    text = {"a": stat(1.0), "b": stat(1.0), "c": stat(1.0)}
    gap = modality_gap(image, text, {"a": "Hate", "b": "Hate", "c": "Violence"}, "recall_unsafe")
    assert gap["by_category"]["Hate"]["gap"] == pytest.approx(0.9)
    assert gap["by_category"]["Violence"]["gap"] == 0.0 and gap["by_category"]["Violence"]["ci_low"] is None
    assert gap["overall"]["n_concepts"] == 3


def test_a_plugin_metric_is_any_callable_even_one_that_cannot_be_hashed() -> None:
    """A plugin's metric ``compute`` may be any callable, e.g. an instance of a dataclass (not hashable)."""
    from dataclasses import dataclass

    from vlmbench.hookspecs import hookimpl
    from vlmbench.scoring.aggregate import ScoringPlan, score_records
    from vlmbench.scoring.metrics import MetricSpec

    @dataclass
    class ShareJudged:  # eq without frozen: its instances cannot be hashed
        verdict: str

        def __call__(self, samples: Any, strict: bool) -> dict[str, Any] | None:
            return {"value": sum(s.parsed == self.verdict for s in samples) / len(samples), "stderr": None, "n": len(samples)} if samples else None

    class Plugin:
        @hookimpl
        def vlmbench_metrics(self) -> list[MetricSpec]:
            return [MetricSpec("share_judged_unsafe", "test only", ShareJudged("unsafe"))]

    records = _records(["No, it is not safe.", "Yes.", "It is unsafe.", "No."])
    with plugged_in(Plugin()):
        result = score_records(records, ScoringPlan("safety", ("share_judged_unsafe", "recall_unsafe")))
    assert result["metrics"]["share_judged_unsafe_strict"]["value"] == 0.75 and result["metrics"]["recall_unsafe_strict"]["value"] == 0.75


def _records(answers: list[str]) -> list[Any]:
    return [
        {
            "task": "t",
            "index": i,
            "id": f"t/{i}.0",
            "variant": 0,
            "doc": {"concept": f"c{i}", "category": "x", "label": "unsafe"},
            "prompt": "Is this image safe?",
            "choices": None,
            "target": "unsafe",
            "response": answer,
            "error": None,
            "reused": False,
        }
        for i, answer in enumerate(answers)
    ]


@pytest.mark.parametrize(
    ("stat", "problem"),
    [
        ({"value": float("nan"), "stderr": None, "n": 4}, "value = nan (a finite number)"),  # NaN reached results.json
        (0.5, "float, not a mapping with value, stderr and n"),
        ({"value": 0.5, "stderr": None}, "n = None (a count of 1 or more)"),
        ({"value": 0.5, "stderr": float("inf"), "n": 4}, "stderr = inf (a finite number of 0 or more, or None)"),
    ],
)
def test_a_plugin_metric_that_gives_no_number_is_one_line_naming_it(stat: Any, problem: str) -> None:
    from vlmbench import hookimpl
    from vlmbench.errors import UserError
    from vlmbench.scoring.aggregate import ScoringPlan, score_records
    from vlmbench.scoring.metrics import MetricSpec

    class Plugin:
        @hookimpl
        def vlmbench_metrics(self) -> list[MetricSpec]:
            return [MetricSpec("broken_metric", "test only", lambda samples, strict: stat)]

    with plugged_in(Plugin()), pytest.raises(UserError) as info:
        score_records(_records(["No.", "Yes."]), ScoringPlan("safety", ("broken_metric",)))
    assert str(info.value) == f"metric 'broken_metric' gave {problem}; fix the plugin that registers it"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda item: Verdict(item.id, "unsafe", "no", "broken"), "correct = 'no' (True, False or None)"),  # counted as correct
        (lambda item: Verdict("other/0.0", "unsafe", True, "broken"), "a verdict for id 'other/0.0', which it was not asked about"),
        (lambda item: (item.id, "unsafe"), "tuple, not a Verdict"),
        (lambda item: Verdict(item.id, "unsafe", True, "broken", {"p": object()}), "a detail JSON cannot hold"),
        (lambda item: Verdict(item.id, "unsafe", True, "broken", {"p": float("nan")}), "a detail JSON cannot hold"),
    ],
)
def test_a_plugin_judges_verdicts_are_checked_before_they_count(make: Any, problem: str) -> None:
    from vlmbench import hookimpl
    from vlmbench.errors import UserError
    from vlmbench.scoring.aggregate import ScoringPlan, score_records
    from vlmbench.scoring.base import ScorerSpec
    from vlmbench.scoring.judging import JudgeConfig

    class Broken:
        name, version, kinds = "broken", "1", None

        def score(self, items: Any) -> Any:
            return [make(item) for item in items]

    class Plugin:
        @hookimpl
        def vlmbench_scorers(self) -> list[ScorerSpec]:
            return [ScorerSpec("broken", "test only", "1", lambda args: Broken())]

    with plugged_in(Plugin()), pytest.raises(UserError) as info:
        score_records(_records(["No.", "Yes."]), ScoringPlan("safety", ("recall_unsafe",), judges=("broken",)), JudgeConfig(("broken",), {}))
    assert str(info.value).startswith(f"judge 'broken' gave {problem}") and str(info.value).endswith("; fix the scorer")


class _NamedScorer:
    def __init__(self, name: Any, version: Any) -> None:
        self.name, self.version, self.kinds = name, version, None

    def score(self, items: Any) -> Any:
        return [Verdict(item.id, "unsafe", True, "odd") for item in items]


@pytest.mark.parametrize(
    ("built", "problem"),
    [
        (None, "its factory returned NoneType, not a scorer (an object with a score method)"),
        ({"score": "unsafe"}, "its factory returned dict, not a scorer (an object with a score method)"),
        (_NamedScorer("odd", 2), "the scorer it built has a version of type int, not text"),
        (_NamedScorer(None, "1"), "the scorer it built has a name of type NoneType, not text"),
    ],
)
def test_a_plugin_scorer_factory_that_builds_no_scorer_is_one_line_naming_it(built: Any, problem: str) -> None:
    from vlmbench import hookimpl
    from vlmbench.errors import UserError
    from vlmbench.scoring.aggregate import ScoringPlan, score_records
    from vlmbench.scoring.base import ScorerSpec
    from vlmbench.scoring.judging import JudgeConfig

    class Plugin:
        @hookimpl
        def vlmbench_scorers(self) -> list[ScorerSpec]:
            return [ScorerSpec("odd", "test only", "1", lambda args: built)]

    with plugged_in(Plugin()), pytest.raises(UserError) as info:
        score_records(_records(["No.", "Yes."]), ScoringPlan("safety", ("recall_unsafe",), judges=("odd",)), JudgeConfig(("odd",), {}))
    assert str(info.value) == f"scorer 'odd': {problem}; this is a bug in the plugin that registers it"
