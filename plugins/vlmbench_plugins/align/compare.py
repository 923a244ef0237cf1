"""Before/after evaluation of an ``align`` run: the base model and the tuned one on the study's
held-out test split (``alignment-test-split``) and on general capability, through ``vlmbench.evaluate``.

The comparison table has one row per model: balanced accuracy, recall on unsafe images,
specificity on safe ones, general capability, the mean response length (words) and the share of
distinct responses on the test split (a model that collapsed into a few templates, as SFT tends
to, shows a small share), plus a table per category (recall for the unsafe categories, specificity
for ``Safe``). Both runs go through the response store, so evaluating the base model again costs
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmbench_plugins.align.data import TASK

GENERAL_TASK = "general-capability"
COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
COLUMNS = (
    ("balanced_accuracy", "balanced acc."),
    ("recall_unsafe", "recall (unsafe)"),
    ("specificity", "specificity"),
    ("general_capability", "general capability"),
    ("mean_response_words", "mean words"),
    ("distinct_response_share", "distinct share"),
    ("unparsed_rate", "unparsed"),
)


@dataclass(frozen=True)
class EvalPlan:
    """How the models are evaluated (the same for both)."""

    data: str = "builtin"
    data_files: Mapping[str, str] = field(default_factory=dict)
    limit: int | float | None = None
    seed: int = 0
    general_task: str | None = GENERAL_TASK
    judge: str | None = None
    judge_args: str = ""
    batch_size: int | str | None = None
    store: str | None = None


def evaluate_model(name: str, method: str, model_args: Mapping[str, str], plan: EvalPlan, output: Path) -> dict[str, Any] | None:
    """Evaluate one model; returns its comparison row (None on a non-main process under data parallelism)."""
    from vlmbench import EvalConfig, evaluate

    tasks = [TASK] + ([plan.general_task] if plan.general_task else [])
    result = evaluate(
        EvalConfig(
            model="hf",
            model_args=dict(model_args),
            tasks=tasks,
            data=plan.data,
            data_files=dict(plan.data_files),
            limit=plan.limit,
            seed=plan.seed,
            output_path=output / name,
            batch_size=plan.batch_size,
            store=plan.store,
            judge=plan.judge,
            judge_args=plan.judge_args,
        )
    )
    if result.results is None:
        return None
    return row(name, method, result.results, result.run_dir, plan.general_task)


def _value(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    """The headline (``_strict``: every sample counts, unreadable answers as wrong) value of a metric."""
    entry = (metrics or {}).get(f"{name}_strict")
    value = entry.get("value") if isinstance(entry, Mapping) else entry
    return float(value) if isinstance(value, (int, float)) else None


def row(name: str, method: str, results: Mapping[str, Any], run_dir: Path, general_task: str | None) -> dict[str, Any]:
    """A comparison row from a run's results and its test-split samples."""
    task = results["tasks"][TASK]
    metrics = task.get("metrics", {})
    by_category = {}
    for category, values in sorted((task.get("by_category") or {}).items()):
        by_category[category] = _value(values, "specificity" if category == "Safe" else "recall_unsafe")
    general = results["tasks"].get(general_task or "", {}).get("metrics") if general_task else None
    responses = [r.get("response") for r in _samples(run_dir, TASK) if r.get("response") is not None]
    words = [len(str(text).split()) for text in responses]
    distinct = {" ".join(str(text).lower().split()) for text in responses}
    return {
        "model": name,
        "method": method,
        "balanced_accuracy": _value(metrics, "balanced_accuracy"),
        "recall_unsafe": _value(metrics, "recall_unsafe"),
        "specificity": _value(metrics, "specificity"),
        "general_capability": _value(general, "accuracy"),
        "mean_response_words": sum(words) / len(words) if words else None,
        "distinct_response_share": len(distinct) / len(responses) if responses else None,
        "unparsed_rate": metrics.get("unparsed_rate"),
        "responses": len(responses),
        "by_category": by_category,
        "run_dir": str(run_dir),
    }


def _samples(run_dir: Path, task: str) -> list[dict[str, Any]]:
    path = run_dir / "samples" / f"{task}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:.1f}"
    return str(value)


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as markdown: the headline table, then per category."""
    head = ["model", "method", *(title for _, title in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([str(r["model"]), str(r["method"]), *(_cell(r.get(key)) for key, _ in COLUMNS)]) + " |")
    categories = sorted({c for r in rows for c in r.get("by_category", {})}, key=lambda c: (c == "Safe", c))
    if categories:
        names = [f"{r['model']} ({r['method']})" for r in rows]
        lines += ["", "Per category (recall on unsafe images; specificity for Safe):", ""]
        lines += ["| category | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
        for category in categories:
            lines.append(f"| {category} | " + " | ".join(_cell(r.get("by_category", {}).get(category)) for r in rows) + " |")
    return "\n".join(lines) + "\n"


def write(rows: Sequence[Mapping[str, Any]], out_dir: Path, plan: EvalPlan) -> str:
    """Write ``comparison.json`` and ``comparison.md``; returns the markdown."""
    text = markdown(rows)
    record = {
        "task": TASK,
        "general_task": plan.general_task,
        "data": plan.data,
        "limit": plan.limit,
        "judge": plan.judge or "rules",
        "rows": list(rows),
    }
    (out_dir / COMPARISON_JSON).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / COMPARISON_MD).write_text(text, encoding="utf-8")
    return text
