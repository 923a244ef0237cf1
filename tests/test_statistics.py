"""The numbers a run reports: headlines over every sample, the paper's form beside them, both
modality gaps, intervals on the same convention everywhere, and per-prompt results."""

from __future__ import annotations

import math

import pytest

from tests.conftest import RunModel


def test_a_model_that_answers_nothing_readable_cannot_beat_random_on_general_capability(run_model: RunModel) -> None:
    # always-safe answers "Yes." to everything: unreadable on general capability's questions
    safe = run_model("always-safe", "general-capability", limit=40).metrics("general-capability")
    rand = run_model("random", "general-capability", limit=40).metrics("general-capability")
    assert safe["accuracy_strict"]["value"] < rand["accuracy_strict"]["value"]
    assert safe["accuracy_strict"]["n"] == 40  # every sample is in the headline's denominator
    assert safe["accuracy"] is None or safe["accuracy"]["coverage"] < 0.5  # the paper's form says how little it counts


def test_every_metric_has_its_own_n_interval_and_coverage(run_model: RunModel) -> None:
    run = run_model("always-unsafe", "alignment-image", limit=12)
    metrics = run.metrics("alignment-image")
    recall, spec, balanced = metrics["recall_unsafe_strict"], metrics["specificity_strict"], metrics["balanced_accuracy_strict"]
    assert recall["n"] + spec["n"] == balanced["n"] == metrics["n_samples"]
    assert recall["value"] == 1.0 and spec["value"] == 0.0 and balanced["value"] == 0.5
    assert 0.0 <= recall["ci_low"] <= recall["ci_high"] <= 1.0 and recall["clusters"] >= 5
    assert metrics["recall_unsafe"]["coverage"] == 1.0
    table = run.stdout
    assert "95% CI" in table and "coverage" in table and "±" not in table  # one convention: 95% intervals
    row = next(line for line in table.splitlines() if line.startswith("alignment-image") and "recall_unsafe" in line)
    assert f" {recall['n']} " in row


def test_the_gap_is_the_difference_of_the_headlines_and_the_paired_gap_is_beside_it(run_model: RunModel) -> None:
    run = run_model("random", "alignment-image,alignment-text", limit=30, seed=3)
    results = run.results
    gap = results["modality_gaps"]["alignment-text"]
    overall = gap["overall"]
    image = results["tasks"]["alignment-image"]["metrics"]["recall_unsafe_strict"]["value"]
    text = results["tasks"]["alignment-text"]["metrics"]["recall_unsafe_strict"]["value"]
    assert gap["metric"] == "recall_unsafe_strict"
    assert overall["image"] == pytest.approx(image) and overall["text"] == pytest.approx(text)
    assert overall["gap"] == pytest.approx(text - image)
    assert overall["ci_low"] <= overall["gap"] <= overall["ci_high"]
    paired = overall["paired"]
    assert paired["n_concepts"] == overall["n_concepts"] and paired["ci_low"] <= paired["gap"] <= paired["ci_high"]
    for category in gap["by_category"].values():
        assert (category["ci_low"] is None) == category["few_clusters"]
        assert category["few_clusters"] == (category["n_concepts"] < 5)
    assert "paired gap" in run.stdout and "the paper's definition" in run.stdout


def test_each_categorys_gap_is_the_difference_of_that_categorys_headlines_for_the_context_pair(run_model: RunModel) -> None:
    # With --limit some concepts are asked only in a safe context (the context tasks' `label` is the context):
    # they count in their category's rates, so they count in its gap too, as do the safe controls ("Safe").
    results = run_model("random", "alignment-context-image,alignment-context-text", limit=25, seed=2).results
    gap = results["modality_gaps"]["alignment-context-text"]
    image, text = (results["tasks"][f"alignment-context-{m}"]["by_category"] for m in ("image", "text"))
    assert sorted(gap["by_category"]) == sorted(image) == sorted(text) and "Safe" in gap["by_category"]
    for category, entry in gap["by_category"].items():
        expected_image, expected_text = image[category]["accuracy_strict"], text[category]["accuracy_strict"]
        assert (entry["image"], entry["text"]) == (pytest.approx(expected_image["value"]), pytest.approx(expected_text["value"])), category
        assert entry["gap"] == pytest.approx(expected_text["value"] - expected_image["value"]), category
    assert sum(entry["n_concepts"] for entry in gap["by_category"].values()) == gap["overall"]["n_concepts"]


def test_per_prompt_metrics_and_their_spread(run_model: RunModel) -> None:
    run = run_model("random", "alignment-text", limit=15, seed=1)
    entry = run.results["tasks"]["alignment-text"]
    assert sorted(entry["by_prompt"]) == ["0", "1", "2", "3", "4"] and len(entry["prompts"]) == 5
    values = [entry["by_prompt"][k]["recall_unsafe_strict"]["value"] for k in ("0", "1", "2", "3", "4")]
    spread = entry["prompt_spread"]["recall_unsafe_strict"]
    mean = sum(values) / 5
    assert spread["min"] == min(values) and spread["max"] == max(values)
    assert spread["sd"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 4))
    assert sum(entry["by_prompt"][k]["n_samples"] for k in entry["by_prompt"]) == entry["metrics"]["n_samples"]
    assert "per prompt" in run.stdout
    perception = run_model("random", "perception-image", limit=5).results["tasks"]["perception-image"]
    assert "by_prompt" not in perception  # one prompt: nothing to spread


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.706204736174694),
        (0.975, 2, 4.302652729749462),
        (0.975, 3, 3.1824463052837078),
        (0.975, 5, 2.5705818356363146),
        (0.975, 10, 2.228138851986274),
        (0.975, 30, 2.0422724563012378),
        (0.975, 100, 1.9839715185235518),
        (0.975, 1000, 1.9623390808264083),
        (0.995, 7, 3.4994832973504924),
        (0.9, 4, 1.533206274058944),
        (0.025, 10, -2.228138851986274),
    ],
)
def test_student_t_quantiles_match_the_tables(p: float, df: int, expected: float) -> None:
    from vlmbench.scoring import student_t
    from vlmbench.scoring.intervals import t_quantile

    assert student_t.quantile(p, df) == pytest.approx(expected, rel=1e-12)
    assert student_t.upper_tail(expected, df) == pytest.approx(1 - p, rel=1e-10)
    if p == 0.975:
        assert t_quantile(df) == pytest.approx(expected, rel=1e-12)


def test_student_t_agrees_with_scipy_over_every_degree_of_freedom_used() -> None:
    special = pytest.importorskip("scipy.special")
    from vlmbench.scoring import student_t

    for df in [*range(1, 400), 512, 777, 1000, 2500, 5000, 9999, 10_000]:
        for p in (0.6, 0.9, 0.975, 0.995, 0.9995):
            assert student_t.quantile(p, df) == pytest.approx(float(special.stdtrit(df, p)), rel=1e-10), (df, p)
        for t in (0.05, 1.0, 2.5, 8.0):
            assert student_t.upper_tail(t, df) == pytest.approx(float(special.stdtr(df, -t)), rel=1e-10), (df, t)
    with pytest.raises(ValueError, match="between 0 and 1"):
        student_t.quantile(1.0, 3)
