"""Printing a run's outcome: the summary table, request counts, and the failed-request check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlmbench.records import Results, RunManifest


def print_request_counts(manifest: RunManifest) -> None:
    """``requests: N sent to the model, M reused from the response store`` on stderr."""
    tasks = manifest.get("tasks", {}).values()
    sent = sum(t["requests"]["sent"] for t in tasks)
    reused = sum(t["requests"]["reused"] for t in tasks)
    print(f"requests: {sent} sent to the model, {reused} reused from the response store", file=sys.stderr)


def print_error_classes(manifest: RunManifest) -> None:
    """The run's failed requests, and failed attempts (retried ones included), by error class, on stderr;
    nothing when the backend reports none (see ``error_summary()`` in :mod:`vlmbench.backend`)."""
    errors = manifest.get("errors") or {}
    for key, label in (("requests", "failed requests by error class"), ("attempts", "failed attempts by error class (retries included)")):
        counts = errors.get(key)
        if counts:
            print(f"vlmbench: {label}: " + ", ".join(f"{name} x{count}" for name, count in counts.items()), file=sys.stderr)


def report(results: Results, run_dir: Path, max_error_rate: float) -> int:
    """Print the summary; 1 when failed requests exceed ``max_error_rate`` (results are written either way)."""
    from vlmbench.report import summary_table

    print(summary_table(results))
    print(f"\nresults: {run_dir / 'results.json'}")
    total = sum(t["metrics"]["n_samples"] for t in results["tasks"].values())
    errors = sum(t["metrics"]["n_errors"] for t in results["tasks"].values())
    if errors:
        print(
            f"vlmbench: {errors} of {total} requests failed, to the model or to a judge (see 'error' in the samples files, "
            "and a judge's under 'verdicts')",
            file=sys.stderr,
        )
    if total and errors / total > max_error_rate:
        print(f"vlmbench: error: failed requests {errors / total:.1%} exceed --max_error_rate {max_error_rate:.1%}", file=sys.stderr)
        return 1
    return 0
