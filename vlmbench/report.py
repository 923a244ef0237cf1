"""The readable terminal summary of a results document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tabulate import tabulate

COUNTS = ("n_samples", "n_errors", "unparsed_rate", "refusal_rate")


def _stat(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    stderr = f" ± {stat['stderr']:.3f}" if stat.get("stderr") is not None else ""
    return f"{stat['value']:.3f}{stderr}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_table(results: Mapping[str, Any]) -> str:
    """Per-task headline metrics, then modality gaps, then which data ran."""
    rows = []
    for name, entry in results["tasks"].items():
        m = entry["metrics"]
        for metric in (k for k in m if k not in COUNTS and not k.endswith("_strict")):
            rows.append(
                [
                    name,
                    metric,
                    _stat(m[metric]),
                    _stat(m[f"{metric}_strict"]),
                    m["n_samples"],
                    _rate(m["unparsed_rate"]),
                    _rate(m["refusal_rate"]),
                    m["n_errors"],
                ]
            )
    parts = [tabulate(rows, headers=["task", "metric", "value ± se", "strict", "n", "unparsed", "refusal", "errors"])]
    gap_rows = []
    for gap in results["modality_gaps"].values():
        overall = gap["overall"]
        if overall:
            ci = "-" if overall["ci_low"] is None else f"[{overall['ci_low']:+.3f}, {overall['ci_high']:+.3f}]"
            gap_rows.append(
                [
                    f"{gap['text_task']} - {gap['image_task']}",
                    gap["metric"],
                    f"{overall['text']:.3f}",
                    f"{overall['image']:.3f}",
                    f"{overall['gap']:+.3f}",
                    ci,
                    overall["n_concepts"],
                ]
            )
    if gap_rows:
        parts.append(tabulate(gap_rows, headers=["modality gap", "metric", "text", "image", "gap", "95% CI", "concepts"]))
    notes = sorted({f"{d['path']}: {d['note']}" if d.get("note") else d["path"] for entry in results["tasks"].values() for d in entry["datasets"]})
    parts.append("data: " + "; ".join(notes))
    return "\n\n".join(parts)
