"""Judge throughput: how many responses per second each judge reads, first time and from the store.

    python bench/bench_judges.py [--responses 64] [--device cpu] [--latency 0.2] [--concurrency 8]

1. ``rules``: the labelled corpus (tests/data/rules_corpus*.jsonl) judged through the scorer API.
2. ``paper-classifier``: a roberta-base-sized classifier (hidden 768, 12 layers; random weights in
   the study's checkpoint format, built offline) judging ``--responses`` alignment answers of about
   200 tokens, batch 32, on ``--device``; then the same responses again (labels from the store).
3. ``llm-judge``: the openai backend against the project's fault server answering after
   ``--latency`` seconds, ``--concurrency`` requests in flight; then again from the store.

The judges run through the public scorer interface (``vlmbench.scoring.judging``), the same path
as ``vlmbench run --judge`` / ``vlmbench score``. Figures print as a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vlmbench.scoring.base import ScoreInput, ScorerOptions
from vlmbench.scoring.judging import JudgeConfig, run_judges

REPO = Path(__file__).resolve().parent.parent
QUESTION = "Is this image safe for viewing on social media?"


def corpus() -> list[ScoreInput]:
    """The rules corpus' safety items as scorer inputs."""
    items = []
    for path in sorted((REPO / "tests" / "data").glob("rules_corpus*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("kind") == "safety":
                items.append(ScoreInput(f"{path.name}:{len(items)}", row["response"], "unsafe", row.get("question", QUESTION), kind="safety"))
    return items


def long_answers(n: int) -> list[ScoreInput]:
    """``n`` distinct alignment answers of about 200 tokens."""
    body = "The image shows a crowded street with several people and a sign; nothing in it suggests harm or violence. "
    return [
        ScoreInput(str(i), f"Answer {i}. " + body * 9 + ("Yes, it is safe." if i % 2 else "No."), "unsafe", QUESTION, kind="safety") for i in range(n)
    ]


def timed(items: Sequence[ScoreInput], judge: str, args: dict[str, str], store: Path | None) -> tuple[float, dict[str, int] | None]:
    """Seconds to judge ``items`` with one judge, and its call counts."""
    config = JudgeConfig((judge,), args, ScorerOptions(store=store))
    started = time.perf_counter()
    outcome = run_judges(items, (judge,), "safety", {}, config, "bench")[0]
    return time.perf_counter() - started, outcome.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    ns = parser.parse_args()
    rows: list[list[str]] = []

    items = corpus()
    seconds, _ = timed(items, "rules", {}, None)
    rows.append(["rules", f"{len(items)} corpus answers", f"{len(items) / seconds:,.0f}", "-"])

    with tempfile.TemporaryDirectory() as tmp:
        from vlmbench.testing.tiny_models import build_tiny_paper_classifier

        folder = build_tiny_paper_classifier(Path(tmp) / "alignment", 3, base_size=True)
        answers = long_answers(ns.responses)
        args = {"alignment": str(folder), "device": ns.device, "batch_size": "32"}
        first, counts = timed(answers, "paper-classifier", args, Path(tmp) / "store.sqlite")
        again, _ = timed(answers, "paper-classifier", args, Path(tmp) / "store.sqlite")
        rows.append(
            [
                "paper-classifier (roberta-base size)",
                f"{len(answers)} answers, ~200 tokens, batch 32, {ns.device}",
                f"{len(answers) / first:.2f}",
                f"{len(answers) / again:,.0f}",
            ]
        )

        from vlmbench.testing.fault_server import Faults, FaultServer

        with FaultServer(Faults(reply="unsafe", latency=ns.latency)) as server:
            os.environ["OPENAI_API_KEY"] = "bench"
            args = {"backend": "openai", "model": "judge", "base_url": server.base_url, "num_concurrent": str(ns.concurrency)}
            first, counts = timed(answers, "llm-judge", args, Path(tmp) / "store.sqlite")
            again, _ = timed(answers, "llm-judge", args, Path(tmp) / "store.sqlite")
            assert counts and counts["sent"] == len(answers) and server.stats()["requests"] == len(answers)
        rows.append(
            [
                "llm-judge (openai backend)",
                f"{len(answers)} answers, server latency {ns.latency} s, {ns.concurrency} in flight",
                f"{len(answers) / first:.1f}",
                f"{len(answers) / again:,.0f}",
            ]
        )

    print(
        f"# judge throughput, {datetime.date.today()}, {platform.platform()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    print("| judge | input | responses/s (first time) | responses/s (from the store, model load included) |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
