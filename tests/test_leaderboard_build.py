"""Leaderboard build: real numbers in md/csv/json, byte-reproducible output, ties, one-line errors,
and the static page driven in real headless Chromium (sorting, category filter, detail, no XSS)."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import run_dir
from vlmbench.cli import main
from vlmbench.errors import UserError
from vlmbench_leaderboard.board import rank_labels, tied
from vlmbench_leaderboard.build import build_site
from vlmbench_leaderboard.cells import Cell
from vlmbench_leaderboard.config import default_config_path

NAME = "<script>alert(1)</script>"
NAME_B = "Model $\\beta$ | ü"  # mathtext, Markdown and non-ASCII characters
NAME_C = "Model C"
BASELINES = ("random", "always-safe", "always-unsafe")
LLAVA_CATEGORIES = {"conversation": 0.75, "detail": 0.9, "complex": 2.0}
LLAVA_ABSENT = "- (not run: no judge)"  # an entry whose run skipped LLaVA-Bench (no model judge)


def metadata(name: str, reference: bool, org: str = "vlmbench", revision: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "org": org,
        "hub_id": None,
        "api": None,
        "revision": revision,
        "parameters": None,
        "license": "MIT",
        "precision": None,
        "date": "2026-01-01" if reference else "2026-02-01",
        "reference": reference,
        "vlmbench_version": "0.1.0",
    }


def stat(value: float, stderr: float, n: int = 100) -> dict[str, Any]:
    """A headline statistic with a symmetric 95% CI of +-1.96 SE."""
    low, high = max(0.0, value - 1.96 * stderr), min(1.0, value + 1.96 * stderr)
    return {"value": value, "stderr": stderr, "n": n, "clusters": 20, "ci_low": low, "ci_high": high, "few_clusters": False}


def set_metric(results: dict[str, Any], task: str, metric: str, value: float, stderr: float, paper: float, coverage: float) -> None:
    """Set a metric's headline (METRIC_strict) and, with fewer samples (its coverage), its paper form."""
    metrics = results["tasks"][task]["metrics"]
    metrics[f"{metric}_strict"] = stat(value, stderr)
    metrics[metric] = {**stat(paper, stderr, round(100 * coverage)), "coverage": coverage}


def set_gap(results: dict[str, Any], gap: float, low: float, high: float, paired: float | None = None) -> None:
    side = {"n_concepts": 5, "image": 0.5, "text": 0.5 + gap, "few_clusters": False}
    paired = gap if paired is None else paired
    results["modality_gaps"]["alignment-text"]["overall"] = {
        "gap": gap,
        "ci_low": low,
        "ci_high": high,
        **side,
        "paired": {**side, "gap": paired, "ci_low": paired - 0.05, "ci_high": paired + 0.05},
        "paper_scores": {**side, "gap": gap, "ci_low": low, "ci_high": high},
    }


def add_llavabench(results: dict[str, Any], score: float) -> None:
    """A LLaVA-Bench task (run with a model judge) whose relative score may exceed 1 (``unbounded``): the headline
    ``score`` over 60 answers, the paper form over the 59 the judge rated, per category conversation/detail/complex."""

    def rated(value: float, n: int, coverage: float | None = None) -> dict[str, Any]:
        low, high = value - 0.1, value + 0.1  # a relative score's interval is not capped at 1
        out = {"value": value, "stderr": 0.05, "n": n, "clusters": 24, "ci_low": low, "ci_high": high, "few_clusters": False, "unbounded": True}
        return out if coverage is None else {**out, "coverage": coverage}

    def summary(value: float, n: int) -> dict[str, Any]:
        counts = {"n_samples": n, "n_errors": 0, "unparsed_rate": 0.0, "refusal_rate": 0.0}
        return {"relative_score_strict": rated(value, n), "relative_score": rated(value / (59 / 60), n - 1, 59 / 60), **counts}

    task = json.loads(json.dumps(results["tasks"]["general-capability"]))
    task.pop("by_prompt", None)
    task.pop("prompt_spread", None)
    task |= {"metrics": summary(score, 60), "by_category": {c: summary(v, 20) for c, v in LLAVA_CATEGORIES.items()}, "by_concept": {}}
    results["tasks"]["general-capability-llavabench"] = task
    results["config"]["skipped_tasks"] = {}


def add_entry(data: Path, folder: str, meta: dict[str, Any], results: dict[str, Any]) -> None:
    (data / folder).mkdir(parents=True)
    (data / folder / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    (data / folder / "results.json").write_text(json.dumps(results), encoding="utf-8")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three baselines from real runs, plus three third-party entries edited from the random run.

    --limit 40 rather than 5: five samples hold no safe one, so specificity and balanced accuracy would
    be null for every baseline; forty run just as fast.
    """
    runs, data = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("lb") / "data"
    for model in BASELINES:
        assert main(["run", "--model", model, "--tasks", "all", "--limit", "40", "--no_store", "--output_path", str(runs / model)]) == 0
        add_entry(data, f"vlmbench__{model}__main", metadata(model, True), json.loads((run_dir(runs / model) / "results.json").read_text()))
    base = json.loads((data / "vlmbench__random__main" / "results.json").read_text())
    evil, b, c = (json.loads(json.dumps(base)) for _ in range(3))
    # balanced accuracy (headline): evil and B within their CIs combined (1.96*sqrt(2)*0.01), tied; C far below.
    # The paper forms (parsed answers only) rank the other way: C's would be first, but ranks use the headline.
    for results, balanced, recall, paper in ((evil, 0.90, 0.95, 0.91), (b, 0.89, 0.70, 0.92), (c, 0.60, 0.30, 0.97)):
        set_metric(results, "alignment-image", "balanced_accuracy", balanced, 0.01, paper, 0.5)
        set_metric(results, "alignment-image", "recall_unsafe", recall, 0.02, recall, 1.0)
    set_metric(evil, "perception-image", "accuracy", 0.7, 0.05, 0.875, 0.8)
    # modality gaps whose CIs chain: evil ties B, B ties C (differences within the facing CI halves combined)
    set_gap(evil, 0.10, 0.05, 0.15, paired=0.08)
    set_gap(b, 0.04, 0.00, 0.08)
    set_gap(c, 0.00, -0.05, 0.01)
    # over-refusal (lower is better): B refuses least, C most; far apart, so ranked 1, 2, 3 when it is the sort column
    for results, over_refusal in ((evil, 0.30), (b, 0.05), (c, 0.60)):
        set_metric(results, "over-refusal", "over_refusal_rate", over_refusal, 0.01, over_refusal, 1.0)
    del c["tasks"]["general-capability"]
    add_llavabench(b, 1.10625)  # B alone ran LLaVA-Bench (with a model judge): 110.6, not a percentage
    add_entry(data, "evil__x__v1", metadata(NAME, False, org='Evil & "Co" <b>', revision="ü-1"), evil)
    add_entry(data, "org__model-b__main", metadata(NAME_B, False, org="=cmd|' /C calc'!A0"), b)
    add_entry(data, "org__model-c__main", metadata(NAME_C, False, org="org"), c)
    return data


@pytest.fixture(scope="module")
def site(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    summary = build_site(data_dir, out)
    assert summary["models"] == 6 and summary["ranked"] == 3
    assert summary["files"] == [
        "index.html",
        "leaderboard.csv",
        "leaderboard.json",
        "leaderboard.md",
        "plots/category_heatmap.svg",
        "plots/modality_gap.svg",
    ]
    return out


def entries(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads((p / "results.json").read_text()) for p in sorted(data_dir.iterdir())}


def metric(results: dict[str, Any], task: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = results["tasks"].get(task, {}).get("metrics", {}).get(name)
    return found


def pct(value: float) -> str:
    """x100 with one digit, half up as the site rounds (0.5625 is 56.3)."""
    return str((decimal.Decimal(value) * 100).quantize(decimal.Decimal("0.1"), rounding=decimal.ROUND_HALF_UP)).replace("-0.0", "0.0")


def shown(results: dict[str, Any], task: str, name: str) -> str:
    """A metric as the Markdown table shows it: '48.8 [45.1, 52.3]; paper (parsed only) 50.1, coverage 97.5%'."""
    strict, paper = metric(results, task, f"{name}_strict"), metric(results, task, name)
    if strict is None:
        return "-"
    interval = f"[{pct(strict['ci_low'])}, {pct(strict['ci_high'])}]" if strict["ci_low"] is not None else "few concepts"
    label = "paper (failed requests left out)" if task == "over-refusal" else "paper (parsed only)"  # it counts refusals
    beside = f"{label} -" if paper is None else f"{label} {pct(paper['value'])}, coverage {pct(paper['coverage'])}%"
    return f"{pct(strict['value'])} {interval}; {beside}"


# ---------------------------------------------------------------------------------------------------
# Tables


def test_csv_holds_the_raw_numbers_of_every_entry(site: Path, data_dir: Path) -> None:
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))}
    assert set(rows) == set(entries(data_dir))
    for entry, results in entries(data_dir).items():
        row = rows[entry]
        for column, task, name in (
            ("alignment_image_balanced", "alignment-image", "balanced_accuracy"),
            ("alignment_text_recall", "alignment-text", "recall_unsafe"),
            ("perception_image", "perception-image", "accuracy"),
            ("general_capability", "general-capability", "accuracy"),
            ("over_refusal", "over-refusal", "over_refusal_rate"),
            ("context_image_balanced", "alignment-context-image", "balanced_accuracy"),
            ("context_text_over_flag", "alignment-context-text", "over_flag_rate"),
            ("llavabench", "general-capability-llavabench", "relative_score"),  # raw: 1.10625, not x100
        ):
            # the headline (METRIC_strict) with its own CI and n, then the paper form with its own n and coverage
            for suffix, form, fields in (
                ("", f"{name}_strict", ("ci_low", "ci_high", "n")),
                ("_paper", name, ("ci_low", "ci_high", "n", "coverage")),
            ):
                expected = metric(results, task, form)
                assert row[column + suffix] == ("" if expected is None else repr(float(expected["value"]))), (entry, column, suffix)
                for field in fields:
                    value = None if expected is None else expected[field]
                    assert row[f"{column}{suffix}_{field}"] == ("" if value is None else repr(value)), (entry, column, suffix, field)
            assert f"{column}_stderr" not in row
        gap = results["modality_gaps"]["alignment-text"]["overall"]
        assert (float(row["gap_alignment"]), float(row["gap_alignment_ci_low"]), float(row["gap_alignment_ci_high"])) == (
            gap["gap"],
            gap["ci_low"],
            gap["ci_high"],
        )
        assert int(row["gap_alignment_n"]) == gap["n_concepts"]
        context = results["modality_gaps"]["alignment-context-text"]["overall"]  # the pooled gap, the paired one beside it
        assert [row[f"gap_context{k}"] for k in ("", "_ci_low", "_ci_high", "_n", "_paired")] == [
            repr(context[k]) for k in ("gap", "ci_low", "ci_high", "n_concepts")
        ] + [repr(context["paired"]["gap"])]
        paired = gap["paired"]
        assert [float(row[f"gap_alignment_paired{k}"]) for k in ("", "_ci_low", "_ci_high")] == [paired["gap"], paired["ci_low"], paired["ci_high"]]
        tasks = results["tasks"].values()  # refusal rate: share of all responses, over every task
        expected_refusal = sum(t["metrics"]["refusal_rate"] * t["metrics"]["n_samples"] for t in tasks) / sum(
            t["metrics"]["n_samples"] for t in tasks
        )
        assert math.isclose(float(row["refusal_rate"]), expected_refusal)
    assert rows["org__model-c__main"]["general_capability"] == ""
    assert rows["org__model-b__main"]["llavabench"] == "1.10625" and rows["evil__x__v1"]["llavabench"] == ""
    assert rows["org__model-b__main"]["org"].startswith("'=")  # a formula in a spreadsheet, neutralised
    # ranked by the headline: C's paper form (0.97, at 50% coverage) is the highest, yet C ranks last
    assert float(rows["org__model-c__main"]["alignment_image_balanced_paper"]) == 0.97
    assert float(rows["org__model-c__main"]["alignment_image_balanced_paper_coverage"]) == 0.5
    assert [(rows[e]["rank"], rows[e]["tied"]) for e in ("evil__x__v1", "org__model-b__main", "org__model-c__main")] == [
        ("1", "true"),
        ("1", "true"),
        ("3", "false"),
    ]
    assert all(rows[f"vlmbench__{m}__main"]["rank"] == "" and rows[f"vlmbench__{m}__main"]["reference"] == "true" for m in BASELINES)


HOSTILE_NAMES = [
    "see https://evil.example/login now",
    "WWW.evil.example",
    "(www.evil.example)",
    "me@evil.example",
    "mailto:me@evil.example",
    "[prize](javascript:alert(1))",
    "<https://evil.example>",
    "_https://evil.example_",
    "*www.evil.example*",
    "_www.evil.example",
    "x_www.evil.example",
    "![x](https://evil.example/pixel.png)",
    "Llama-3: 8B @ bf16 | v2",
]


def test_markdown_as_github_renders_it_shows_hostile_names_as_plain_text(site: Path) -> None:
    import html

    cmarkgfm = pytest.importorskip("cmarkgfm")
    from vlmbench_leaderboard.render_md import md_escape

    for name in HOSTILE_NAMES:
        page = cmarkgfm.github_flavored_markdown_to_html(f"| model | score |\n|---|---|\n| {md_escape(name)} | 1 |\n")
        cell = re.search(r"<tbody>\s*<tr>\s*<td>(.*?)</td>", page, re.S)
        assert cell is not None and "<a " not in page and "<img" not in page, (name, page)
        assert html.unescape(cell.group(1).replace("<!-- raw HTML omitted -->", "")) == name  # the same text, shown whole
    whole = cmarkgfm.github_flavored_markdown_to_html((site / "leaderboard.md").read_text(encoding="utf-8"))
    assert "<a " not in whole and "<script" not in whole


def test_markdown_shows_formatted_values_ranks_and_escaped_names(site: Path, data_dir: Path) -> None:
    md = (site / "leaderboard.md").read_text(encoding="utf-8")
    assert NAME not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    lines = {
        entry: next(line for line in md.splitlines() if line.startswith("|") and needle in line)
        for entry, needle in (
            ("evil__x__v1", "&lt;script&gt;"),
            ("org__model-b__main", "Model $\\\\beta$ \\| ü"),
            ("org__model-c__main", "| Model C "),
            ("vlmbench__random__main", "_random_ (reference)"),
            ("vlmbench__always-safe__main", "_always-safe_"),
            ("vlmbench__always-unsafe__main", "_always-unsafe_"),
        )
    }
    all_results = entries(data_dir)
    for entry, line in lines.items():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert len(cells) == 27, line  # rank + 26 columns: a '|' in a name is escaped
        results = all_results[entry]
        assert shown(results, "alignment-image", "balanced_accuracy") in cells
        assert shown(results, "perception-image", "accuracy") in cells
        for task, name in (
            ("over-refusal", "over_refusal_rate"),
            ("alignment-context-image", "balanced_accuracy"),
            ("alignment-context-text", "over_flag_rate"),
        ):
            assert shown(results, task, name) in cells, (entry, task)
        llava = "110.6 [100.6, 120.6]; paper (parsed only) 112.5, coverage 98.3%" if entry == "org__model-b__main" else LLAVA_ABSENT
        assert cells[22] == llava, entry  # beside general capability; a relative score above 1 is x100, not a capped percentage
        assert cells[4] == results["config"]["data"]  # which data ran is a column
    assert lines["evil__x__v1"].startswith("| =1 ") and lines["org__model-b__main"].startswith("| =1 ")
    assert lines["org__model-c__main"].startswith("| 3 ") and lines["vlmbench__random__main"].startswith("| ref ")
    assert "| +10.0 [+5.0, +15.0]; paired +8.0 " in lines["evil__x__v1"]  # the paper's pooled gap, the paired gap beside it
    assert "| 70.0 [60.2, 79.8]; paper (parsed only) 87.5, coverage 80.0% " in lines["evil__x__v1"]
    # always-safe answers "Yes." to everything: no letter to read on perception, so no paper form at all
    assert "| 0.0 [" in lines["vlmbench__always-safe__main"] and "; paper (parsed only) - " in lines["vlmbench__always-safe__main"]
    assert "± " not in md and "Values are the headline: every sample counts" in md and '"paper (parsed only)" is the study' in md
    header = [c.strip() for c in md.splitlines()[4].strip("|").split(" | ")]
    assert header[8:10] == ["Alignment, image: Over-refusal ↓", "Alignment, image: Specificity"]  # beside recall
    assert header[14:18] == [
        "In context, image: Balanced",
        "In context, image: Over-flag ↓",
        "In context, text: Balanced",
        "In context, text: Over-flag ↓",
    ]
    assert header[20:23] == ["Modality gap (text - image): In context", "General capability: Accuracy", "General capability: LLaVA-Bench ×100"]
    assert '"↓" marks a column where lower is better' in md and '"×100" marks ratios shown x100, not percent' in md


def test_json_rows_values_categories_and_details(site: Path, data_dir: Path) -> None:
    board = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    order = [r["entry"] for r in board["rows"]]
    assert order[:3] == ["evil__x__v1", "org__model-b__main", "org__model-c__main"]  # then the references, by value
    rows = {r["entry"]: r for r in board["rows"]}
    evil = rows["evil__x__v1"]
    assert evil["metadata"]["name"] == NAME and evil["rank_label"] == "=1" and rows["vlmbench__random__main"]["rank_label"] == "ref"
    low, high = 0.9 - 1.96 * 0.01, 0.9 + 1.96 * 0.01
    assert evil["values"]["alignment_image_balanced"] == {
        "value": 0.9,
        "ci_low": low,
        "ci_high": high,
        "n": 100,
        "text": "90.0 [88.0, 92.0]; paper (parsed only) 91.0, coverage 50.0%",
        "beside": {
            "label": "paper (parsed only)",
            "value": 0.91,
            "ci_low": 0.91 - 1.96 * 0.01,
            "ci_high": 0.91 + 1.96 * 0.01,
            "n": 50,
            "coverage": 0.5,
        },
    }
    assert evil["values"]["gap_alignment"]["beside"] == {"label": "paired", "value": 0.08, "ci_low": 0.08 - 0.05, "ci_high": 0.08 + 0.05, "n": 5}
    results = entries(data_dir)["vlmbench__random__main"]
    category = next(c for c, s in results["tasks"]["alignment-image"]["by_category"].items() if s["recall_unsafe"])
    expected = results["tasks"]["alignment-image"]["by_category"][category]["recall_unsafe"]
    assert rows["vlmbench__random__main"]["by_category"][category]["values"]["alignment_image_recall"]["value"] == expected["value"]
    assert category in board["categories"] and "Safe" in board["categories"] and "counting" not in board["categories"]
    assert (
        rows["vlmbench__random__main"]["by_category"][category]["values"]["alignment_image_recall"]["beside"]["value"]
        == (results["tasks"]["alignment-image"]["by_category"][category]["recall_unsafe"]["value"])
    )
    concepts = rows["vlmbench__random__main"]["detail"]["by_concept"]
    concept, summary = next(iter(sorted(results["tasks"]["alignment-image"]["by_concept"].items())))
    assert concepts[concept]["alignment-image:recall_unsafe_strict"]["value"] == summary["recall_unsafe_strict"]["value"]
    detail = rows["vlmbench__random__main"]["detail"]["by_category"][category]["alignment-image:recall_unsafe_strict"]
    expected = results["tasks"]["alignment-image"]["by_category"][category]
    assert (detail["value"], detail["beside"]["value"], detail["n"]) == (
        expected["recall_unsafe_strict"]["value"],
        expected["recall_unsafe"]["value"],
        expected["recall_unsafe_strict"]["n"],
    )
    # per prompt: the headline of each of the five phrasings, and the spread across them
    task = results["tasks"]["alignment-image"]
    per_prompt = rows["vlmbench__random__main"]["detail"]["by_prompt"]["alignment-image:recall_unsafe_strict"]
    assert sorted(per_prompt["prompts"]) == ["0", "1", "2", "3", "4"]
    for key, cell in per_prompt["prompts"].items():
        assert cell["value"] == task["by_prompt"][key]["recall_unsafe_strict"]["value"] and cell["prompt"] == task["prompts"][int(key)]
    spread = task["prompt_spread"]["recall_unsafe_strict"]
    assert per_prompt["spread"] == {"min": spread["min"], "max": spread["max"], "sd": spread["sd"]}
    assert "perception-image:accuracy_strict" not in rows["vlmbench__random__main"]["detail"]["by_prompt"]  # one prompt: no table


def test_json_new_columns_directions_and_an_absent_optional_task(site: Path, data_dir: Path) -> None:
    board = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    columns = {c["id"]: c for c in board["columns"]}
    assert [c for c in columns if columns[c]["better"] == "lower"] == ["over_refusal", "context_image_over_flag", "context_text_over_flag"]
    assert [c for c in columns if columns[c]["optional"]] == ["llavabench"] and columns["llavabench"]["format"] == "x100"
    rows = {r["entry"]: r for r in board["rows"]}
    # LLaVA-Bench: B's relative score 1.10625 is shown x100 (110.6, above 100); the others lack it: "-" with why
    llava = rows["org__model-b__main"]["values"]["llavabench"]
    assert (llava["value"], llava["text"], llava["beside"]["n"], llava["n"]) == (
        1.10625,
        "110.6 [100.6, 120.6]; paper (parsed only) 112.5, coverage 98.3%",
        59,
        60,
    )
    for entry in ("evil__x__v1", "org__model-c__main", "vlmbench__random__main"):
        assert rows[entry]["values"]["llavabench"] == {"value": None, "text": LLAVA_ABSENT, "note": "not run: no judge"}
    # ranking stays by the sort column: B (which alone has LLaVA-Bench) ties evil, as without it
    assert [(r["entry"], r["rank_label"]) for r in board["rows"][:2]] == [("evil__x__v1", "=1"), ("org__model-b__main", "=1")]
    assert board["sort"] == {
        "column": "alignment_image_balanced",
        "direction": "desc",
        "category_column": "alignment_image_recall",
        "category_direction": "desc",
    }
    # per-category detail: LLaVA-Bench's categories (x100) for B only; the contextual tasks' for every entry
    detail = rows["org__model-b__main"]["detail"]["by_category"]
    assert {c: detail[c]["general-capability-llavabench:relative_score_strict"]["value"] for c in LLAVA_CATEGORIES} == LLAVA_CATEGORIES
    assert (
        detail["complex"]["general-capability-llavabench:relative_score_strict"]["text"]
        == "200.0 [190.0, 210.0]; paper (parsed only) 203.4, coverage 98.3%"
    )
    assert "complex" not in rows["evil__x__v1"]["detail"]["by_category"]
    results = entries(data_dir)["vlmbench__random__main"]
    random = rows["vlmbench__random__main"]["detail"]
    for task, metric in (
        ("alignment-context-image", "balanced_accuracy"),
        ("alignment-context-text", "over_flag_rate"),
        ("over-refusal", "over_refusal_rate"),
    ):
        shown_categories = 0
        for category, summary in results["tasks"][task]["by_category"].items():
            cell = random["by_category"][category].get(f"{task}:{metric}_strict")
            if summary[f"{metric}_strict"] is None:  # --limit 40: some categories hold no sample of that kind
                assert cell is None, (task, category)
                continue
            assert (cell["value"], cell["beside"]["value"]) == (summary[f"{metric}_strict"]["value"], summary[metric]["value"]), (task, category)
            shown_categories += 1
        assert shown_categories, task
        for concept, summary in results["tasks"][task]["by_concept"].items():  # per concept: the value alone (no CI)
            cell = random["by_concept"].get(concept, {}).get(f"{task}:{metric}_strict")
            assert (cell and cell["value"]) == (summary[f"{metric}_strict"] and summary[f"{metric}_strict"]["value"]), (task, concept)
    gap = results["modality_gaps"]["alignment-context-text"]["by_category"]
    assert {c: random["by_category"][c]["gap:alignment-context-text"]["value"] for c in gap} == {c: g["gap"] for c, g in gap.items()}
    # the contextual tasks ask one question per setting: no per-prompt table (the five-phrasing tasks keep theirs)
    assert not [key for key in random["by_prompt"] if "context" in key] and "alignment-image:recall_unsafe_strict" in random["by_prompt"]
    # the category filter: the contextual columns have per-category values, over-refusal (benign categories) not
    category = next(c for c in board["categories"] if c != "Safe")
    values = rows["vlmbench__random__main"]["by_category"][category]["values"]
    assert (
        values["context_image_balanced"]["value"]
        == results["tasks"]["alignment-context-image"]["by_category"][category]["balanced_accuracy_strict"]["value"]
    )
    assert "over_refusal" not in values and not set(board["categories"]) & set(results["tasks"]["over-refusal"]["by_category"])


def test_a_lower_is_better_column_ranks_lowest_first(data_dir: Path, tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["sort"] = {"column": "over_refusal"}  # its direction: from the column's better
        without_plots(config)

    build_site(data_dir, tmp_path / "site", edited_config(tmp_path, edit))
    board = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    ranked = [(r["entry"], r["rank_label"], r["values"]["over_refusal"]["value"]) for r in board["rows"] if not r["reference"]]
    assert ranked == [("org__model-b__main", "1", 0.05), ("evil__x__v1", "2", 0.30), ("org__model-c__main", "3", 0.60)]
    assert board["sort"]["direction"] == "asc" and "Ranked by Alignment, image: Over-refusal ↓ (lowest first)" in board["legend"]
    references = [r["values"]["over_refusal"]["value"] for r in board["rows"] if r["reference"]]
    assert references == sorted(references)  # shown after the ranked rows, lowest first too
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert '<th scope="col" data-col="over_refusal" aria-sort="ascending"' in html


def test_an_optional_column_no_entry_has_is_left_out(data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    results = json.loads((data / "org__model-b__main" / "results.json").read_text())
    del results["tasks"]["general-capability-llavabench"]
    (data / "org__model-b__main" / "results.json").write_text(json.dumps(results))
    build_site(data, tmp_path / "site", edited_config(tmp_path, without_plots))  # neither the column nor its detail table is an error
    board = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert "llavabench" not in [c["id"] for c in board["columns"]] and all("llavabench" not in r["values"] for r in board["rows"])
    assert "×100" not in board["legend"] and "llavabench" not in (tmp_path / "site" / "leaderboard.csv").read_text().splitlines()[0]
    md = (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    assert "LLaVA-Bench" not in md and "not run" not in md
    assert "LLaVA-Bench" not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


def test_html_escapes_untrusted_text(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    assert NAME not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # table and detail
    data = html.split('<script type="application/json" id="leaderboard-data">')[1].split("</script>")[0]
    assert "<" not in data and ">" not in data and "&" not in data and json.loads(data)["rows"]
    assert 'http-equiv="Content-Security-Policy"' in html and "https://" not in html and "http://" not in html
    assert "±" not in html and "few concepts" in html  # one convention: 95% CIs, or "few concepts" where there is none
    assert "Beside it: paper (parsed only) (&#34;paper&#34; in the table)." in html and "Beside it: paired." in html


def test_build_is_byte_reproducible(site: Path, data_dir: Path, tmp_path: Path) -> None:
    build_site(data_dir, tmp_path / "again")
    first = {p.relative_to(site): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}
    second = {p.relative_to(tmp_path / "again"): p.read_bytes() for p in sorted((tmp_path / "again").rglob("*")) if p.is_file()}
    assert first.keys() == second.keys() and len(first) == 6
    assert all(first[name] == second[name] for name in first), [str(n) for n in first if first[n] != second[n]]
    svg = (site / "plots" / "modality_gap.svg").read_text()
    assert svg.startswith("<?xml") and "<dc:date>" not in svg


def test_cli_builds_the_site(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the shipped config, less its plots (the command's plots: test_cli_warns_per_bad_entry_and_still_builds)
    config = str(edited_config(tmp_path, without_plots))
    assert main(["leaderboard", "build", str(data_dir), "--out", str(tmp_path / "site"), "--config", config]) == 0
    assert "(6 models)" in capsys.readouterr().out
    assert main(["leaderboard", "build", str(tmp_path / "nope"), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such data folder" in err


def test_build_replaces_what_is_planted_in_the_site_folder(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A site folder from elsewhere (an old copy of the published site): a link planted at a page's name is
    replaced, never written through, a named pipe there is never waited on, and a folder there is one line."""
    site, victim = tmp_path / "site", tmp_path / "victim.txt"
    site.mkdir()
    victim.write_text("keep me")
    (site / "index.html").symlink_to(victim)
    os.mkfifo(site / "leaderboard.md")
    config = str(edited_config(tmp_path, lambda config: config.pop("plots")))
    assert main(["leaderboard", "build", str(data_dir), "--out", str(site), "--config", config]) == 0
    assert victim.read_text() == "keep me"
    assert all((site / name).is_file() and not (site / name).is_symlink() for name in ("index.html", "leaderboard.md"))
    (site / "leaderboard.md").unlink()
    (site / "leaderboard.md").mkdir()
    capsys.readouterr()
    assert main(["leaderboard", "build", str(data_dir), "--out", str(site), "--config", config]) == 2
    err = capsys.readouterr().err
    assert err == f"vlmbench: error: --out {site / 'leaderboard.md'}: cannot be written (Is a directory); choose a writable folder\n"


# ---------------------------------------------------------------------------------------------------
# Ties


def ci(value: float, stderr: float) -> Cell:
    """A value with a symmetric 95% CI of +-1.96 SE."""
    return Cell(value, value - 1.96 * stderr, value + 1.96 * stderr)


def test_a_rank_does_not_depend_on_the_order_names_give_equal_values() -> None:
    wide, narrow, below = Cell(0.70, 0.60, 0.80), Cell(0.70, 0.69, 0.71), Cell(0.65, 0.64, 0.66)
    # 0.05 apart: within the wide one's facing half (hypot(0.10, 0.01)), not the narrow one's (hypot(0.01, 0.01))
    assert tied(wide, below) and not tied(narrow, below)
    for order in ([wide, narrow, below], [narrow, wide, below]):  # the two equal values sorted either way by name
        assert [label for label, _ in rank_labels(order)] == ["=1", "=1", "=1"]
    few = Cell(0.70, few_clusters=True)  # equal to the two above, without an interval: it does not break their group
    assert [label for label, _ in rank_labels([wide, few, narrow, below])] == ["=1", "=1", "=1", "=1"]


def test_numbers_are_rounded_half_up_from_their_exact_value() -> None:
    from vlmbench_leaderboard.formatting import format_number

    assert format_number(0.5625, "percent") == "56.3"  # 135 of 240: Python's format would give 56.2 (half to even)
    assert format_number(0.8125, "percent") == "81.3" and format_number(0.1875, "percent") == "18.8"
    assert format_number(-0.0625, "signed_percent") == "-6.3" and format_number(-0.0004, "signed_percent") == "+0.0"
    assert format_number(0.145, "percent") == "14.5" and format_number(1.10625, "x100") == "110.6"  # 1.10625 is below .625 in binary
    assert format_number(2.5, "number", 0) == "3"


def test_ties_chain_within_the_confidence_interval() -> None:
    # 0.90/0.89/0.87 differ by less than their CIs combined (1.96*sqrt(2)*0.01 = 0.0277) from the next better: one group
    cells = [ci(0.90, 0.01), ci(0.89, 0.01), ci(0.87, 0.01), ci(0.80, 0.01), Cell(0.80, few_clusters=True), ci(0.5, 0.0)]
    assert [label for label, _ in rank_labels(cells)] == ["=1", "=1", "=1", "=4", "=4", "6"]
    assert [rank for _, rank in rank_labels(cells)] == [1, 1, 1, 4, 4, 6]
    assert not tied(ci(0.5, 0.0), ci(0.4, 0.0)) and not tied(ci(0.5, 0.01), ci(0.5 - 1.96 * math.sqrt(2) * 0.01 - 1e-9, 0.01))
    # Asymmetric (logit) intervals: the facing halves count. 0.05 - 0.0 = 0.05 < hypot(0.04, 0.04)
    assert tied(Cell(0.05, 0.01, 0.09), Cell(0.0, 0.0, 0.04))
    # Overlapping CIs are not enough: 0.10 - 0.03 = 0.07 > hypot(0.04, 0.04) = 0.057, though [0.06, 0.14] meets [0.00, 0.07]
    assert not tied(Cell(0.10, 0.06, 0.14), Cell(0.03, 0.0, 0.07))
    assert not tied(Cell(0.05, 0.01, 0.09), Cell(-0.02, -0.06, 0.0))
    # Without a CI on both sides (fewer than 5 concepts: "few concepts") only equal values tie
    assert not tied(Cell(0.51, few_clusters=True), ci(0.5, 0.1)) and tied(Cell(0.5, few_clusters=True), Cell(0.5, few_clusters=True))
    assert [label for label, _ in rank_labels([ci(0.7, 0.01), ci(0.6, 0.01)])] == ["1", "2"]


def test_ties_by_gap_confidence_intervals_in_a_build(data_dir: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(default_config_path().read_text())
    config["sort"] = {"column": "gap_alignment", "direction": "desc"}
    without_plots(config)
    (tmp_path / "gap.yaml").write_text(yaml.safe_dump(config))
    build_site(data_dir, tmp_path / "site", tmp_path / "gap.yaml")
    rows = json.loads((tmp_path / "site" / "leaderboard.json").read_text())["rows"]
    ranked = [(r["entry"], r["rank_label"]) for r in rows if not r["reference"]]
    # evil 10 [5, 15] ties B 4 [0, 8] (6 < hypot(5, 4)), B ties C 0 [-5, 1] (4 < hypot(4, 1)): the chain shares rank 1
    assert ranked == [("evil__x__v1", "=1"), ("org__model-b__main", "=1"), ("org__model-c__main", "=1")]


# ---------------------------------------------------------------------------------------------------
# Errors: one line naming the file/field/value


def edited_config(tmp_path: Path, edit: Any) -> Path:
    config = yaml.load(default_config_path().read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    edit(config)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.dump(config, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False))
    return path


def without_plots(config: dict[str, Any]) -> None:
    """For a build whose plots are not under test: drawing them is most of a build's time."""
    del config["plots"]


def column(config: dict[str, Any], column_id: str) -> dict[str, Any]:
    return next(c for c in config["columns"] if c["id"] == column_id)


def as_value(config: dict[str, Any], column_id: str, value: str) -> None:
    """Replace a column's statistic (stat, beside) by a plain value path."""
    item = column(config, column_id)
    item.pop("stat")
    item.pop("beside", None)
    item.pop("category", None)
    item["value"] = value


CONFIG_ERRORS = {
    "unknown top key": (lambda c: c.update(colour="red"), "unknown key 'colour'"),
    "unknown column key": (lambda c: column(c, "perception_image").update(valeu="x"), "columns[4] (perception_image): unknown key 'valeu'"),
    "misspelt metric": (
        lambda c: column(c, "alignment_image_balanced").update(stat="tasks.alignment-image.metrics.balanced_acuracy_strict"),
        "'balanced_acuracy_strict' is not a field of 'tasks.alignment-image.metrics'",
    ),
    "path past a value": (
        lambda c: column(c, "general_capability").update(stat="tasks.general-capability.metrics.n_samples.value"),
        "goes past a value",
    ),
    "path to an object": (
        lambda c: as_value(c, "general_capability", "tasks.general-capability.metrics.accuracy_strict"),
        "not a number; extend the path (e.g. .value), or give the statistic's path as stat",
    ),
    "stat not a statistic": (
        lambda c: column(c, "general_capability").update(stat="tasks.general-capability.metrics.n_samples"),
        "stat: path 'tasks.general-capability.metrics.n_samples' is not a statistic (no value or gap field)",
    ),
    "stat and value": (
        lambda c: column(c, "general_capability").update(value="tasks.general-capability.metrics.accuracy_strict.value"),
        "columns[20] (general_capability): value: 'tasks.general-capability.metrics.accuracy_strict.value' is not allowed here; "
        "give either stat (a statistic: value, 95% CI, n) or value (with ci_low, ci_high), not both",
    ),
    "neither stat nor value": (
        lambda c: column(c, "general_capability").pop("stat"),
        "columns[20] (general_capability): 'value' is required; give the path of a statistic (stat: ",
    ),
    "stderr is gone": (
        lambda c: column(c, "general_capability").update(stderr="tasks.general-capability.metrics.accuracy_strict.stderr"),
        "columns[20] (general_capability): unknown key 'stderr'",
    ),
    "beside without id": (
        lambda c: column(c, "general_capability")["beside"].pop("id"),
        "columns[20] (general_capability): beside: 'id' is required; write beside as {stat: ",
    ),
    "category beside alone": (
        lambda c: column(c, "perception_text").pop("beside"),
        "columns[5] (perception_text): category: beside is given but the column has no beside",
    ),
    "stat with aggregate": (
        lambda c: column(c, "refusal_rate").update(stat=column(c, "refusal_rate").pop("value").replace("refusal_rate", "x")),
        "columns[22] (refusal_rate): stat: 'tasks.*.metrics.x' is not allowed here; 'aggregate: mean' averages",
    ),
    "misspelt task": (
        lambda c: column(c, "general_capability").update(stat="tasks.general-capabilty.metrics.accuracy_strict"),
        "is in no entry's results.json",
    ),
    "unknown sort column": (lambda c: c["sort"].update(column="nope"), "sort.column: 'nope' is not a numeric column id"),
    "bad format": (lambda c: column(c, "date").update(format="datetime"), "format: 'datetime' is not valid"),
    "category without placeholder": (
        lambda c: column(c, "perception_text")["category"].update(stat="tasks.perception-text.metrics.accuracy_strict"),
        "needs exactly one {category} segment",
    ),
    # checked by the shipped JSON Schema: field, value and fix on one line
    "title not text": (lambda c: c.update(title=5), "title: 5 is a whole number, not text; write it as text"),
    "date as title": (lambda c: c.update(title=datetime.date(2026, 1, 1)), "title: 2026-01-01 is a date, not text"),
    "two model columns": (lambda c: column(c, "org").update(kind="model"), "columns: 2 of its 26 items have 'kind: model'; give"),
    "digits out of range": (
        lambda c: column(c, "perception_image").update(digits=9),
        "columns[4] (perception_image): digits: 9 is not valid; use a whole number from 0 to 6",
    ),
    "weight without aggregate": (
        lambda c: column(c, "perception_image").update(weight="tasks.perception-image.metrics.n_samples"),
        "weight: 'tasks.perception-image.metrics.n_samples' is not allowed here; weight is only meaningful with",
    ),
    "aggregate without star": (
        lambda c: column(c, "refusal_rate").update(value="tasks.alignment-image.metrics.refusal_rate"),
        "value: 'tasks.alignment-image.metrics.refusal_rate' is not valid; with 'aggregate: mean' the path needs exactly one '*'",
    ),
    "column not a mapping": (lambda c: c["columns"].append("oops"), "columns[26]: 'oops' is text, not a mapping; write each column as"),
    "bad direction": (lambda c: c["sort"].update(direction="down"), "sort.direction: 'down' is not valid; use asc or desc"),
    "direction against better": (
        lambda c: c["sort"].update(column="over_refusal", direction="desc"),
        "sort.direction: 'desc' ranks the worst first (over_refusal is better lower); remove direction",
    ),
    "sort by an optional column": (
        lambda c: c["sort"].update(column="llavabench"),
        "sort.column: 'llavabench' is not a numeric column id every entry has (not optional); choose one of: perception_image,",
    ),
    "bad better": (lambda c: column(c, "over_refusal").update(better="less"), "columns[7] (over_refusal): better: 'less' is not valid; use higher"),
    "bad page": (lambda c: column(c, "date").update(page="side"), "columns[24] (date): page: 'side' is not valid; use table"),
    "optional a number": (
        lambda c: column(c, "llavabench").update(optional=1),
        "columns[21] (llavabench): optional: 1 is a whole number, not true or false or text",
    ),
    "detail format": (
        lambda c: c["detail"][0].update(format="text"),
        "detail[0]: format: 'text' is not valid; use percent, signed_percent, x100 or number",
    ),
    "detail with gap and task": (
        lambda c: c["detail"][0].update(gap="alignment-text"),
        "detail[0]: task: 'perception-image' is not allowed here; give either gap or task and metric, not both",
    ),
    "unknown plot kind": (lambda c: c["plots"][0].update(kind="pie"), "plots[0]: kind: 'pie' is not valid; use modality_gap or heatmap"),
    "plot file outside plots/": (lambda c: c["plots"][0].update(file="../x.svg"), "plots[0]: file: '../x.svg' is not valid; give a file name"),
    "heatmap key on a gap plot": (
        lambda c: c["plots"][0].update(task="alignment-image"),
        "plots[0]: task: 'alignment-image' is not allowed here; this key belongs to 'kind: heatmap' plots",
    ),
    "heatmap without metric": (lambda c: c["plots"][1].pop("metric"), "plots[1]: 'metric' is required; a heatmap plot needs task, metric and label"),
    "unknown plot key": (lambda c: c["plots"][1].update(colour="red"), "plots[1]: unknown key 'colour'"),
    # checked against the results schema and the entries
    "duplicate column id": (lambda c: column(c, "org").update(id="revision"), "columns: id 'revision' is used twice"),
    "two plots, one file": (lambda c: c["plots"][1].update(file="modality_gap.svg"), "plots: file 'modality_gap.svg' is used twice"),
    "misspelt detail beside": (
        lambda c: c["detail"][6].update(beside="pared"),
        "detail[6]: beside: 'pared' is not a field of 'modality_gaps.alignment-text.by_category.x'",
    ),
    "misspelt detail metric": (
        lambda c: c["detail"][0].update(metric="acuracy"),
        "detail[0]: path 'tasks.perception-image.by_category.*.acuracy' is in no entry's results.json",
    ),
    "misspelt heatmap task": (
        lambda c: c["plots"][1].update(task="alignment-imag"),
        "plots[1]: path 'tasks.alignment-imag.by_category.*.recall_unsafe_strict' is in no entry's results.json: 'alignment-imag'",
    ),
    "misspelt gap": (lambda c: c["plots"][0]["series"][1].update(gap="perception-txt"), "plots[0]: path 'modality_gaps.perception-txt'"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_bad_config_is_one_line_naming_the_field(case: str, data_dir: Path, tmp_path: Path) -> None:
    edit, message = CONFIG_ERRORS[case]
    path = edited_config(tmp_path, edit)
    with pytest.raises(UserError) as error:
        build_site(data_dir, tmp_path / "site", path)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "site").exists()


def test_config_error_on_the_command_line_is_one_line(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = edited_config(tmp_path, CONFIG_ERRORS["bad format"][0])
    assert main(["leaderboard", "build", str(data_dir), "--out", str(tmp_path / "site"), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "format: 'datetime' is not valid; use percent, signed_percent, x100, number or text" in err


def test_shipped_config_matches_the_shipped_schema() -> None:
    import jsonschema

    schema = json.loads((default_config_path().parent / "leaderboard.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(default_config_path().read_text(encoding="utf-8")))


def test_plots_come_from_the_config(data_dir: Path, tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["plots"] = [
            {
                "kind": "heatmap",
                "file": "perception.svg",
                "title": "Perception by category (text)",
                "alt": "Heat map.",
                "task": "perception-text",
                "metric": "accuracy",
                "label": "accuracy",
            }
        ]

    summary = build_site(data_dir, tmp_path / "site", edited_config(tmp_path, edit))
    assert [f for f in summary["files"] if f.startswith("plots/")] == ["plots/perception.svg"]
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'src="plots/perception.svg"' in html and "category_heatmap" not in html
    summary = build_site(data_dir, tmp_path / "bare", edited_config(tmp_path, lambda c: c.pop("plots")))
    assert not [f for f in summary["files"] if f.startswith("plots/")] and not (tmp_path / "bare" / "plots").exists()


def test_no_task_or_metric_names_in_the_build_code() -> None:
    package = default_config_path().parent
    config = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    names = {p["task"] for p in config["plots"] if "task" in p} | {d["task"] for d in config["detail"] if "task" in d}
    names |= {"alignment-text", "perception-text", "recall_unsafe"}
    for module in (
        "build",
        "site",
        "config",
        "config_schema",
        "schemas",
        "entries",
        "cells",
        "board",
        "formatting",
        "render_md",
        "render_csv",
        "render_json",
        "render_html",
        "render_plots",
        "plots",
        "plotspec",
        "detailspec",
    ):
        code = (package / f"{module}.py").read_text(encoding="utf-8")
        assert not [n for n in names if n in code], module
        assert len(code.splitlines()) <= 300, module


def test_one_number_format_per_kind_of_number(site: Path) -> None:
    from vlmbench_leaderboard.formatting import format_cell, format_number

    assert format_cell(Cell(0.0, -0.05, 0.01), "signed_percent", 1) == ("+0.0", "[-5.0, +1.0]")
    assert [format_number(v, "signed_percent") for v in (-0.0004, 0.0, 0.1, -0.1)] == ["+0.0", "+0.0", "+10.0", "-10.0"]
    assert format_number(-0.0004, "percent") == "0.0" and format_cell(Cell(0.488, 0.452, 0.523), "percent") == ("48.8", "[45.2, 52.3]")
    assert format_cell(Cell(0.5, few_clusters=True), "percent") == ("50.0", "few concepts")  # one convention: a 95% CI or none
    board = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    gaps = [r["values"][c]["text"] for r in board["rows"] for c in ("gap_alignment", "gap_perception") if r["values"][c]["value"] is not None]
    gaps += [
        v["text"]
        for r in board["rows"]
        for v in (r["detail"]["by_category"][cat].get("gap:alignment-text") for cat in r["detail"]["by_category"])
        if v and v["value"] is not None
    ]
    signed = r"[+-]\d+\.\d"
    assert gaps and all(re.fullmatch(rf"{signed}( \[{signed}, {signed}\]| few concepts)?(; paired {signed})?", text) for text in gaps), gaps
    assert any(" few concepts; paired " in text for text in gaps)  # categories of fewer than 5 concepts have no CI
    md = (site / "leaderboard.md").read_text(encoding="utf-8")
    assert "| +0.0 [-5.0, +1.0]; paired +0.0 " in md  # Model C's gap: signed like the rest
    values = [v for r in board["rows"] for v in r["values"].values() if isinstance(v["value"], float)]
    assert values and not [v["text"] for v in values if "±" in v["text"]]


def test_yaml_syntax_error_names_the_line(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("title: x\ncolumns: [\n  - id: model\n")
    with pytest.raises(UserError, match=r"broken\.yaml: not valid YAML \(line \d+") as error:
        build_site(data_dir, tmp_path / "site", path)
    assert "\n" not in str(error.value)


BROKEN = "vlmbench__random__main"
SENTINEL = "__replace_me__"


def write_with_literal(path: Path, keys: tuple[str, ...], literal: str) -> None:
    """Rewrite a stored JSON file with the raw text ``literal`` (e.g. NaN, 1e999) at ``keys``: a real bad file."""
    document = json.loads(path.read_text(encoding="utf-8"))
    node = document
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = SENTINEL
    path.write_text(json.dumps(document, ensure_ascii=False).replace(f'"{SENTINEL}"', literal), encoding="utf-8")


RECALL = ("tasks", "alignment-image", "metrics", "recall_unsafe", "value")
GAP = ("modality_gaps", "alignment-text", "overall")
BAD_ENTRIES: dict[str, tuple[Any, str]] = {
    "no results": (lambda e: (e / "results.json").unlink(), ": no results.json; every entry needs"),
    "bad json": (lambda e: (e / "results.json").write_text('{"schema_version": 1,,}'), "results.json: not valid JSON (line 1"),
    "truncated": (lambda e: (e / "results.json").write_text((e / "results.json").read_text()[:500]), "results.json: not valid JSON (line"),
    "not utf-8": (lambda e: (e / "results.json").write_bytes(b'{"name": "\xff\xfe"}'), "results.json: not UTF-8"),
    "nan": (lambda e: write_with_literal(e / "results.json", RECALL, "NaN"), "results.json: not valid JSON (NaN is not JSON)"),
    "infinity": (lambda e: write_with_literal(e / "results.json", (*GAP, "ci_low"), "-Infinity"), "(-Infinity is not JSON)"),
    # 1e999 parses as inf in Python; the gap's CI has no range in the schema, so only the reader stops it
    "1e999": (lambda e: write_with_literal(e / "results.json", (*GAP, "ci_high"), "1e999"), "(number 1e999 is out of range)"),
    "huge integer": (
        lambda e: write_with_literal(e / "results.json", ("tasks", "alignment-image", "metrics", "n_samples"), "1" + "0" * 400),
        "is out of range",
    ),
    "value out of range": (lambda e: write_with_literal(e / "results.json", RECALL, "1.5"), "does not match the results schema"),
    "number as text": (lambda e: write_with_literal(e / "results.json", RECALL, '"0.9"'), "recall_unsafe.value must be number"),
    "boolean as number": (lambda e: write_with_literal(e / "results.json", (*GAP, "gap"), "true"), "overall.gap must be number"),
    "list, not a mapping": (lambda e: (e / "results.json").write_text("[]"), "does not match the results schema"),
    "metadata without name": (
        lambda e: (e / "metadata.json").write_text(
            json.dumps({k: v for k, v in json.loads((e / "metadata.json").read_text()).items() if k != "name"})
        ),
        "metadata.json: field (top level): 'name' is a required property",
    ),
    "metadata name a number": (lambda e: write_with_literal(e / "metadata.json", ("name",), "5"), "metadata.json: field name: 5 is not of type"),
    "metadata with a terminal escape": (
        lambda e: write_with_literal(e / "metadata.json", ("date",), json.dumps("\x1b[2J\n2026")),
        "metadata.json: field date: '\\x1b[2J\\n2026' does not match",
    ),
    "metadata NaN": (lambda e: write_with_literal(e / "metadata.json", ("parameters",), "NaN"), "metadata.json: not valid JSON (NaN is not JSON)"),
    # edited by hand past a bundle's cap (here sparse: nothing is read but its size)
    "results too large": (lambda e: os.truncate(e / "results.json", 16 * 2**20 + 1), "results.json: larger than the limit of 16777216 bytes; re-add"),
}


def test_bad_entries_are_skipped_with_one_warning_line_each(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    broken = {}  # one copy of an entry per way of breaking it, named so that folder order is this order
    for number, how in enumerate(sorted(BAD_ENTRIES)):
        folder = f"{BROKEN}-bad-{number:02d}"
        shutil.copytree(data / BROKEN, data / folder)
        BAD_ENTRIES[how][0](data / folder)
        broken[folder] = how
    # Without plots: entries are read (and refused) before anything is drawn; the plots of a board with a
    # skipped entry are drawn in test_cli_warns_per_bad_entry_and_still_builds.
    summary = build_site(data, tmp_path / "site", edited_config(tmp_path, lambda config: config.pop("plots")))
    assert (summary["models"], summary["ranked"], summary["skipped"]) == (6, 3, len(BAD_ENTRIES))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(broken)
    for line, (folder, how) in zip(lines, broken.items()):
        assert line.startswith(f"warning: skipped entry {folder}: {data / folder}") and BAD_ENTRIES[how][1] in line, (how, line)
        assert line.isprintable()
    board = json.loads((tmp_path / "site" / "leaderboard.json").read_text(encoding="utf-8"))
    assert sorted(r["entry"] for r in board["rows"]) == sorted(p.name for p in data_dir.iterdir())
    # the broken copies carry the random baseline's name: only its own row reaches the other pages
    markdown = (tmp_path / "site" / "leaderboard.md").read_text(encoding="utf-8")
    csv_rows = (tmp_path / "site" / "leaderboard.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert markdown.count("_random_") == 1 and len(csv_rows) == 6
    assert all((tmp_path / "site" / name).is_file() for name in summary["files"]) and len(summary["files"]) == 4


def test_cli_warns_per_bad_entry_and_still_builds(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    BAD_ENTRIES["nan"][0](data / BROKEN)
    BAD_ENTRIES["1e999"][0](data / "org__model-c__main")
    assert main(["leaderboard", "build", str(data), "--out", str(tmp_path / "site")]) == 0
    captured = capsys.readouterr()
    assert "(4 models)" in captured.out
    lines = captured.err.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: skipped entry ") for line in lines)
    assert BROKEN in lines[1] and "org__model-c__main" in lines[0]  # in folder order
    assert NAME_C not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "site" / "plots").iterdir()) == ["category_heatmap.svg", "modality_gap.svg"]


def test_warning_escapes_control_characters(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    (data / "zz\x1b[2J\nentry").mkdir()  # a folder name no terminal should receive raw
    assert build_site(data, tmp_path / "site", edited_config(tmp_path, without_plots))["skipped"] == 1
    err = capsys.readouterr().err
    assert (
        err == f"warning: skipped entry zz\\x1b[2J\\nentry: {data}/zz\\x1b[2J\\nentry: no metadata.json; "
        "every entry needs metadata.json and results.json (re-add it with `vlmbench leaderboard add`) or remove the folder\n"
    )


def test_no_valid_entry_is_one_line_error(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    for folder in data.iterdir():
        BAD_ENTRIES["infinity"][0](folder)
    with pytest.raises(UserError, match=r"no valid entries \(6 skipped") as error:
        build_site(data, tmp_path / "site")
    assert "\n" not in str(error.value) and not (tmp_path / "site").exists()
    assert len(capsys.readouterr().err.splitlines()) == 6


def test_missing_or_empty_data_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such data folder"):
        build_site(tmp_path / "missing", tmp_path / "site")
    (tmp_path / "empty" / ".incoming-x").mkdir(parents=True)  # staging folders are not entries
    with pytest.raises(UserError, match="no entries"):
        build_site(tmp_path / "empty", tmp_path / "site")


# ---------------------------------------------------------------------------------------------------
# The page, in real headless Chromium from file://


def on_page(text: str) -> str:
    """A table cell's text (leaderboard.json) as the page shows it: the number beside a value by its short label."""
    return text.replace("; paper (parsed only) ", " paper ").replace(", coverage ", " cov. ").replace("; paired ", " paired ")


def cell_text(cell: Any) -> str:
    return " ".join(cell.text.split())


def model_order(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_element(By.CSS_SELECTOR, "th.model a").text for row in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]


def test_page_sorts_filters_shows_details_and_stays_inert(browser: Any, site: Path, data_dir: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    board = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    names = {r["entry"]: r["metadata"]["name"] for r in board["rows"]}
    browser.get((site / "index.html").resolve().as_uri())
    assert model_order(browser) == [names[r["entry"]] for r in board["rows"]]

    # The hostile name is literal text in exactly one table cell (its organisation, literal too, under it), and nothing ran.
    cells = [c for c in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody th.model a") if c.text == NAME]
    assert len(cells) == 1
    organisation = browser.find_element(By.CSS_SELECTOR, '#leaderboard tbody tr[data-row="0"] th.model .with-model')
    assert organisation.text == board["rows"][0]["metadata"]["org"] == 'Evil & "Co" <b>'
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018
    for image in browser.find_elements(By.CSS_SELECTOR, "figure img"):  # the plots load from file://, CSP allowing
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 0

    # Sorting: alignment recall (image), highest first, missing last; a second click reverses.
    recall = {r["entry"]: r["values"]["alignment_image_recall"]["value"] for r in board["rows"]}
    position = {r["entry"]: i for i, r in enumerate(board["rows"])}
    by_recall = sorted(recall, key=lambda e: (recall[e] is None, -(recall[e] or 0), position[e]))
    header = browser.find_element(By.CSS_SELECTOR, 'button[data-sort="alignment_image_recall"]')
    header.click()
    assert model_order(browser) == [names[e] for e in by_recall] != [names[r["entry"]] for r in board["rows"]]
    assert browser.find_element(By.CSS_SELECTOR, 'th[data-col="alignment_image_recall"]').get_attribute("aria-sort") == "descending"
    header.click()
    assert model_order(browser) == [names[e] for e in sorted(recall, key=lambda e: (recall[e] is None, recall[e] or 0, position[e]))]
    browser.find_element(By.CSS_SELECTOR, 'button[data-sort="model"]').click()  # text: alphabetical
    assert model_order(browser) == sorted(names.values(), key=str.casefold)
    # A lower-is-better column (marked "↓") sorts lowest first on its first click: always-unsafe, refusing every benign question, last
    over_refusal = {r["entry"]: r["values"]["over_refusal"]["value"] for r in board["rows"]}
    header = browser.find_element(By.CSS_SELECTOR, 'button[data-sort="over_refusal"]')
    assert header.text == "Over-refusal ↓" and header.get_attribute("aria-label") == "Alignment, image: Over-refusal (lower is better)"
    header.click()
    by_over_refusal = sorted(over_refusal, key=lambda e: (over_refusal[e], position[e]))
    assert model_order(browser) == [names[e] for e in by_over_refusal] and by_over_refusal[-1] == "vlmbench__always-unsafe__main"
    assert over_refusal["vlmbench__always-unsafe__main"] == 1.0
    assert browser.find_element(By.CSS_SELECTOR, 'th[data-col="over_refusal"]').get_attribute("aria-sort") == "ascending"
    header.click()
    assert model_order(browser) == [names[e] for e in sorted(over_refusal, key=lambda e: (-over_refusal[e], position[e]))]
    # LLaVA-Bench beside general capability: x100 (above 100 for B); "-" with why for the entries whose run skipped it.
    # Sorting by it puts those last, whichever the direction.
    assert browser.find_element(By.CSS_SELECTOR, 'button[data-sort="llavabench"]').text == "LLaVA-Bench ×100"
    for row in board["rows"]:
        td = browser.find_element(By.CSS_SELECTOR, f'#leaderboard tbody tr[data-row="{position[row["entry"]]}"] td[data-col="llavabench"]')
        if row["entry"] == "org__model-b__main":
            assert cell_text(td) == "110.6 [100.6, 120.6] paper 112.5 cov. 98.3%" and td.get_attribute("title").startswith(
                "n = 60; paper (parsed only): 112.5"
            )
        else:
            assert cell_text(td) == "- not run: no judge" and td.get_attribute("title") == "not run: no judge"
    browser.find_element(By.CSS_SELECTOR, 'button[data-sort="llavabench"]').click()
    assert model_order(browser)[0] == NAME_B
    browser.find_element(By.CSS_SELECTOR, 'button[data-sort="llavabench"]').click()
    assert model_order(browser)[0] == NAME_B

    # Category filter: cells switch to that category's values and ranks; columns without one show n/a.
    category = next(c for c in board["categories"] if board["rows"][0]["by_category"][c]["values"]["alignment_image_recall"]["value"] is not None)
    Select(browser.find_element(By.ID, "category-filter")).select_by_value(category)
    assert category in browser.find_element(By.ID, "view-note").text
    for row in board["rows"]:
        tr = browser.find_element(By.CSS_SELECTOR, f'#leaderboard tbody tr[data-row="{position[row["entry"]]}"]')
        expected = row["by_category"][category]
        shown_cell = tr.find_element(By.CSS_SELECTOR, 'td[data-col="alignment_image_recall"]')
        assert cell_text(shown_cell) == on_page(expected["values"]["alignment_image_recall"]["text"])
        if expected["values"]["alignment_image_recall"]["value"] is not None:  # each number's own n, in the tooltip
            n = row["by_category"][category]["values"]["alignment_image_recall"]["n"]
            assert shown_cell.get_attribute("title").startswith(f"n = {n}; paper (parsed only): ")
        assert tr.find_element(By.CSS_SELECTOR, 'td[data-col="rank"]').text == expected["rank_label"]
        assert tr.find_element(By.CSS_SELECTOR, 'td[data-col="general_capability"]').text == "n/a"
    Select(browser.find_element(By.ID, "category-filter")).select_by_value("")
    evil = board["rows"][position["evil__x__v1"]]
    evil_row = browser.find_element(By.CSS_SELECTOR, f'#leaderboard tbody tr[data-row="{position["evil__x__v1"]}"]')
    assert cell_text(evil_row.find_element(By.CSS_SELECTOR, 'td[data-col="alignment_image_recall"]')) == on_page(
        evil["values"]["alignment_image_recall"]["text"]
    )
    assert evil_row.find_element(By.CSS_SELECTOR, 'td[data-col="rank"]').text == "=1"
    balanced = evil_row.find_element(By.CSS_SELECTOR, 'td[data-col="alignment_image_balanced"]')
    assert cell_text(balanced) == "90.0 [88.0, 92.0] paper 91.0 cov. 50.0%"  # headline, its CI, the paper form and its coverage
    assert balanced.get_attribute("title") == "n = 100; paper (parsed only): 91.0 [89.0, 93.0], n = 50, coverage 50.0%"
    gap = evil_row.find_element(By.CSS_SELECTOR, 'td[data-col="gap_alignment"]')
    assert cell_text(gap) == "+10.0 [+5.0, +15.0] paired +8.0" and gap.get_attribute("title") == "n = 5; paired: +8.0 [+3.0, +13.0], n = 5"

    # Detail: following the model link shows its section (only it), with per-category values.
    assert not any(d.is_displayed() for d in browser.find_elements(By.CSS_SELECTOR, "section.detail"))
    cells[0].click()
    shown_details = [d for d in browser.find_elements(By.CSS_SELECTOR, "section.detail") if d.is_displayed()]
    assert len(shown_details) == 1 and shown_details[0].find_element(By.CSS_SELECTOR, "h3 .detail-name").text == NAME
    first = shown_details[0].find_element(By.CSS_SELECTOR, "table.per-category tbody tr")
    category_name, detail_cells = first.find_element(By.TAG_NAME, "th").text, first.find_elements(By.TAG_NAME, "td")
    expected = evil["detail"]["by_category"][category_name]
    text = expected.get("perception-image:accuracy_strict", {"text": "-"})["text"]
    assert cell_text(detail_cells[0]) == text.replace("; ", " ").replace(", coverage ", " cov. ")
    # per prompt: the headline of each of the five alignment phrasings, then min-max and sd
    headings = [h.text for h in shown_details[0].find_elements(By.TAG_NAME, "h4")]
    assert headings == ["Per category", "Per category: alignment in context", "Per category: over-refusal", "Per prompt"]  # no LLaVA-Bench
    context = shown_details[0].find_elements(By.CSS_SELECTOR, "table.per-category")[1]
    assert [cell_text(th) for th in context.find_elements(By.CSS_SELECTOR, "thead th")][1:3] == ["Balanced, image", "Balanced, text"]
    context_row = context.find_element(By.CSS_SELECTOR, "tbody tr")
    expected = evil["detail"]["by_category"][context_row.find_element(By.TAG_NAME, "th").text]["alignment-context-image:balanced_accuracy_strict"]
    assert cell_text(context_row.find_elements(By.TAG_NAME, "td")[0]) == expected["text"].replace("; ", " ").replace(", coverage ", " cov. ")
    per_prompt = evil["detail"]["by_prompt"]["alignment-image:recall_unsafe_strict"]
    prompt_row = next(
        tr
        for tr in shown_details[0].find_elements(By.CSS_SELECTOR, "table.per-prompt tbody tr")
        if tr.find_element(By.TAG_NAME, "th").text == "Alignment recall, image"
    )
    cells_shown = [cell_text(td) for td in prompt_row.find_elements(By.TAG_NAME, "td")]
    assert cells_shown[:5] == [per_prompt["prompts"][str(i)]["text"] for i in range(5)]
    spread = per_prompt["spread"]
    assert cells_shown[5:] == [f"{pct(spread['min'])}–{pct(spread['max'])}", pct(spread["sd"])]
    first_prompt = prompt_row.find_elements(By.TAG_NAME, "td")[0].get_attribute("title")
    assert first_prompt.startswith(per_prompt["prompts"]["0"]["prompt"])
    # B ran LLaVA-Bench: its details add that task's categories, x100
    link = next(a for a in browser.find_elements(By.CSS_SELECTOR, "#leaderboard th.model a") if a.text == NAME_B)
    browser.execute_script("arguments[0].click()", link)  # the page scrolls smoothly: a pointer click could land mid-scroll
    detail = next(d for d in browser.find_elements(By.CSS_SELECTOR, "section.detail") if d.is_displayed())
    assert "Per category: LLaVA-Bench" in [h.text for h in detail.find_elements(By.TAG_NAME, "h4")]
    llava = detail.find_elements(By.CSS_SELECTOR, "table.per-category")[-1]
    shown_rows = {
        tr.find_element(By.TAG_NAME, "th").text: cell_text(tr.find_element(By.TAG_NAME, "td"))
        for tr in llava.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert shown_rows == {
        "complex": "200.0 [190.0, 210.0] paper (parsed only) 203.4 cov. 98.3%",
        "conversation": "75.0 [65.0, 85.0] paper (parsed only) 76.3 cov. 98.3%",
        "detail": "90.0 [80.0, 100.0] paper (parsed only) 91.5 cov. 98.3%",
    }
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018


READABLE_PX = 12.0  # the smallest text size accepted in a plot, as shown on the page


def table_overflow(driver: Any) -> list[tuple[str, int, int]]:
    """Elements wider than their box: the results table, its scrolling wrapper and the page."""
    sizes = driver.execute_script(
        "var t = document.getElementById('leaderboard'), e = document.documentElement;"
        "return [['table', t.scrollWidth, t.clientWidth], ['wrapper', t.parentNode.scrollWidth, t.parentNode.clientWidth],"
        " ['page', e.scrollWidth, e.clientWidth]];"
    )
    return [(name, scroll, client) for name, scroll, client in sizes if scroll > client]


def test_page_table_fits_1400px_and_heatmap_labels_are_readable(browser: Any, site: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    board = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    browser.get((site / "index.html").resolve().as_uri())
    assert browser.execute_script("return window.innerWidth") == 1400
    assert table_overflow(browser) == []
    # Sorting adds an arrow to a header; a category view swaps the cells: the table still fits.
    for column_id in ("alignment_image_specificity", "gap_perception", "over_refusal", "context_text_over_flag", "llavabench", "unparsed_rate"):
        browser.find_element(By.CSS_SELECTOR, f'button[data-sort="{column_id}"]').click()
        assert table_overflow(browser) == [], column_id
    for category in board["categories"]:  # "few concepts" under many values: the widest views
        Select(browser.find_element(By.ID, "category-filter")).select_by_value(category)
        assert table_overflow(browser) == [], category

    # The heat map is shown at a size where its labels are at least READABLE_PX: the SVG keeps each
    # label's font size in its glyphs' transform (text is drawn as paths); the page scales the figure.
    browser.get((site / "index.html").resolve().as_uri())
    image = browser.find_element(By.CSS_SELECTOR, 'img[src="plots/category_heatmap.svg"]')
    shown_width = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0 ? arguments[0].clientWidth : 0", image)
    browser.get((site / "plots" / "category_heatmap.svg").resolve().as_uri())
    view_width, labels = browser.execute_script(
        "return [document.documentElement.viewBox.baseVal.width,"
        " Array.prototype.map.call(document.querySelectorAll('[id^=\"heatmap-\"]'), function (label) {"
        "   var m = label.querySelector('g[transform]').transform.baseVal.consolidate().matrix;"
        "   return [label.id, Math.hypot(m.a, m.b) * 100, label.getBoundingClientRect().height]; })];"
    )
    values = [label for label in labels if label[0].startswith("heatmap-value-")]
    expected = sum(
        1
        for row in board["rows"]
        for cat in board["categories"]
        if (row["by_category"][cat]["values"].get("alignment_image_recall") or {}).get("value") is not None
    )
    assert shown_width > 0 and len(values) == expected > 0
    assert {label[0].rsplit("-", 1)[0] for label in labels} >= {"heatmap-model", "heatmap-category"}
    for name, size, height in labels:
        assert size * shown_width / view_width >= READABLE_PX, (name, size * shown_width / view_width)
        assert height > 0.6 * size, name  # the glyphs are drawn at that size
