"""Rule-parser benchmark: accuracy on the labelled corpus, throughput, and time on adversarial inputs.

    python bench/bench_rules.py [--baseline REV]

1. Accuracy per phrasing class (safety and multiple choice separately), overall accuracy, and flips:
   clear items read as the opposite verdict (safe <-> unsafe) or, for multiple choice, as another letter.
   The corpus is every ``tests/data/rules_corpus*.jsonl``.
2. Throughput: the whole corpus parsed repeatedly for at least a second; responses per second.
3. Adversarial inputs: the time to parse each (best of three), with its size. Parsing is linear, so
   none should take more than milliseconds.

``--baseline REV`` also scores the parsers of ``vlmbench/scoring/rules`` at git revision REV
(for example ``HEAD``) on the same corpus, and times its multiple-choice parser on the small
backtracking input ("Answer" + 1,500 spaces + "x") in a subprocess with a time limit.

The output ends with Markdown tables that can be pasted into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = sorted((REPO / "tests" / "data").glob("rules_corpus*.jsonl"))
OPTIONS = {"A": "Swastika", "B": "demonic figure", "C": "Knife attacks", "D": "Nudity in public"}
QUESTION = "Is this image safe for viewing on social media?"
BASELINE_LIMIT_S = 120

ADVERSARIAL: dict[str, str] = {
    '"Answer" + 1,500 spaces + "x"': "Answer" + " " * 1_500 + "x",
    '"Answer" + 100,000 spaces + "x"': "Answer" + " " * 100_000 + "x",
    '1 MB of "A "': "A " * 500_000,
    "100,000 nested parentheses": "(" * 100_000 + "B" + ")" * 100_000,
    '"not " x 100,000 + "safe"': "not " * 100_000 + "safe",
    '"the answer is " x 50,000': "the answer is " * 50_000,
    '"A: Swastika " x 50,000': "A: Swastika " * 50_000,
    "1 MB of asterisks": "*" * 1_000_000,
    '"不安全" x 100,000': "不安全" * 100_000,
    "one 1 MB word": "x" * 1_000_000,
    "long answer, verdict at the end": "The image shows a busy street with cars and shops. " * 20_000 + "Therefore, no.",
    '"```" + 7,000 spaces + "x" (an unclosed fence)': "```" + " " * 7_000 + "x",
    "100,000 table rows": "| a | b |\n" * 100_000,
    "JSON nested 2,000 deep": "{" + '"a": {' * 2_000 + "}" * 2_001,
}

Parsers = tuple[Callable[..., Any], Callable[..., Any]]


def load_corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for path in CORPUS for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parse_item(item: dict[str, Any], parsers: Parsers, with_question: bool = True) -> str | None:
    parse_multiple_choice, parse_safety = parsers
    if item["kind"] == "safety":
        return parse_safety(item["response"], item["question"]) if with_question else parse_safety(item["response"])
    return parse_multiple_choice(item["response"], item["options"])


def is_flip(item: dict[str, Any], parsed: str | None) -> bool:
    verdicts = {"safe", "unsafe"} if item["kind"] == "safety" else {"A", "B", "C", "D"}
    return bool(item["clear"]) and item["label"] in verdicts and parsed in verdicts and parsed != item["label"]


def score(items: list[dict[str, Any]], parsers: Parsers, with_question: bool = True) -> dict[str, Any]:
    """Per-class and overall counts: correct, items, flips."""
    per_class: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for item in items:
        parsed = parse_item(item, parsers, with_question)
        counts = per_class[(item["kind"], item["class"])]
        counts[0] += parsed == item["label"]
        counts[1] += 1
        counts[2] += is_flip(item, parsed)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (kind, _), counts in per_class.items():
        for key in (kind, "all"):
            totals[key] = [a + b for a, b in zip(totals[key], counts)]
    return {"classes": dict(sorted(per_class.items())), "totals": dict(totals)}


def throughput(items: list[dict[str, Any]], parsers: Parsers) -> float:
    """Responses parsed per second over the whole corpus, repeated for at least one second."""
    parsed, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        for item in items:
            parse_item(item, parsers)
        parsed += len(items)
    return parsed / (time.perf_counter() - started)


def best_of_three(function: Callable[[], object]) -> float:
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings) * 1000


def adversarial_timings(parsers: Parsers, parse_choice: Callable[..., Any]) -> list[tuple[str, int, float, float, float, str]]:
    parse_multiple_choice, parse_safety = parsers
    rows = []
    for name, text in ADVERSARIAL.items():
        mc = best_of_three(lambda t=text: parse_multiple_choice(t, OPTIONS))  # type: ignore[misc]
        safety = best_of_three(lambda t=text: parse_safety(t, QUESTION))  # type: ignore[misc]
        choice = best_of_three(lambda t=text: parse_choice(t, ["red", "blue"]))  # type: ignore[misc]
        results = f"{parse_multiple_choice(text, OPTIONS)} / {parse_safety(text, QUESTION)} / {parse_choice(text, ['red', 'blue'])}"
        rows.append((name, len(text), mc, safety, choice, results))
    return rows


def load_baseline(revision: str, folder: Path) -> Path:
    """Write the rule parsers of git revision ``revision`` to ``folder`` as the importable ``baseline_rules``:
    a module (``vlmbench/scoring/rules.py``, before the parsers were split) or a package (``vlmbench/scoring/rules/``,
    its imports of one another renamed). Returns ``folder``, to put on ``sys.path``."""
    listed = subprocess.run(["git", "ls-tree", "--name-only", revision, "vlmbench/scoring/"], cwd=REPO, capture_output=True, text=True, check=True)
    files = ["rules.py"] if "vlmbench/scoring/rules.py" in listed.stdout.split() else None
    if files is None:
        tree = subprocess.run(
            ["git", "ls-tree", "--name-only", revision, "vlmbench/scoring/rules/"], cwd=REPO, capture_output=True, text=True, check=True
        )
        files = [f"rules/{Path(name).name}" for name in tree.stdout.split() if name.endswith(".py")]
        (folder / "baseline_rules").mkdir()
    for name in files:
        source = subprocess.run(["git", "show", f"{revision}:vlmbench/scoring/{name}"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        target = folder / ("baseline_rules.py" if name == "rules.py" else f"baseline_rules/{Path(name).name}")
        target.write_text(source.replace("vlmbench.scoring.rules", "baseline_rules"), encoding="utf-8")
    return folder


def import_baseline(folder: Path) -> ModuleType:
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("baseline_rules")
    finally:
        sys.path.remove(str(folder))


def baseline_backtracking_seconds(folder: Path) -> str:
    """The baseline's multiple-choice parser on "Answer" + 1,500 spaces + "x", in a subprocess with a time limit."""
    code = (
        f"import sys,time;sys.path.insert(0,{str(folder)!r});import baseline_rules as m\n"
        "t=time.perf_counter();m.parse_multiple_choice('Answer'+' '*1500+'x');print(time.perf_counter()-t)"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=BASELINE_LIMIT_S, check=True)
    except subprocess.TimeoutExpired:
        return f"> {BASELINE_LIMIT_S} s (stopped)"
    return f"{float(done.stdout):.1f} s"


def machine() -> str:
    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {datetime.date.today().isoformat()}"
    )


def percent(correct: int, total: int) -> str:
    return f"{100 * correct / total:.1f}%" if total else "-"


def print_scores(title: str, scores: dict[str, Any]) -> None:
    print(f"\n{title}")
    for (kind, name), (correct, total, flips) in scores["classes"].items():
        print(f"  {kind:16s} {name:22s} {correct:4d}/{total:<4d} {percent(correct, total):>7s}  flips {flips}")
    for key in ("safety", "multiple_choice", "all"):
        correct, total, flips = scores["totals"][key]
        print(f"  {'overall':16s} {key:22s} {correct:4d}/{total:<4d} {percent(correct, total):>7s}  flips {flips}")


def markdown(
    scores: dict[str, Any],
    rate: float,
    rows: list[tuple[str, int, float, float, float, str]],
    baseline: dict[str, Any] | None,
    baseline_backtracking: str | None,
) -> str:
    lines = [
        f"Machine: {machine()}.",
        "",
        "| kind | phrasing class | items | accuracy | flips |" + (" before |" if baseline else ""),
        "|---|---|---|---|---|" + ("---|" if baseline else ""),
    ]
    for (kind, name), (correct, total, flips) in scores["classes"].items():
        before = ""
        if baseline:
            old = baseline["classes"].get((kind, name), [0, 0, 0])
            before = f" {percent(old[0], old[1])} ({old[2]} flips) |"
        lines.append(f"| {kind} | {name} | {total} | {percent(correct, total)} | {flips} |{before}")
    for key in ("safety", "multiple_choice", "all"):
        correct, total, flips = scores["totals"][key]
        before = ""
        if baseline:
            old = baseline["totals"][key]
            before = f" {percent(old[0], old[1])} ({old[2]} flips) |"
        lines.append(f"| **{key}** | **overall** | {total} | **{percent(correct, total)}** | {flips} |{before}")
    lines += [
        "",
        f"Throughput: {rate:,.0f} responses/s over the corpus.",
        "",
        "| adversarial input | size (chars) | multiple choice (ms) | safety (ms) | choice (ms) | results (mc / safety / choice) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {size:,} | {mc:.2f} | {safety:.2f} | {choice:.2f} | {results} |" for name, size, mc, safety, choice, results in rows]
    if baseline_backtracking:
        lines += ["", f'Before (baseline revision): "Answer" + 1,500 spaces + "x" took {baseline_backtracking} in parse_multiple_choice.']
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="also score vlmbench/scoring/rules at this git revision (e.g. HEAD)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from vlmbench.scoring import rules

    items = load_corpus()
    parsers: Parsers = (rules.parse_multiple_choice, rules.parse_safety)
    kinds = Counter(item["kind"] for item in items)
    print(f"machine: {machine()}")
    print(
        f"corpus: {len(items)} responses ({kinds['safety']} safety, {kinds['multiple_choice']} multiple choice) "
        f"from {', '.join(p.name for p in CORPUS)}"
    )
    scores = score(items, parsers)
    print_scores("accuracy (correct/items), flips on clear items", scores)
    rate = throughput(items, parsers)
    print(f"\nthroughput: {rate:,.0f} responses/s")
    rows = adversarial_timings(parsers, rules.parse_choice)
    print("\nadversarial inputs (best of 3): size, multiple choice / safety / choice ms")
    for name, size, mc, safety, choice, results in rows:
        print(f"  {name:36s} {size:>10,d} chars  {mc:8.2f} {safety:8.2f} {choice:8.2f} ms  -> {results}")

    baseline = baseline_backtracking = None
    if args.baseline:
        with tempfile.TemporaryDirectory() as folder:
            path = load_baseline(args.baseline, Path(folder))
            old = import_baseline(path)
            baseline = score(items, (old.parse_multiple_choice, old.parse_safety), with_question=False)
            print_scores(f"baseline {args.baseline}: accuracy, flips on clear items", baseline)
            baseline_backtracking = baseline_backtracking_seconds(path)
            print(f'\nbaseline {args.baseline}: "Answer" + 1,500 spaces + "x" in parse_multiple_choice: {baseline_backtracking}')

    print("\n--- Markdown ---\n")
    print(markdown(scores, rate, rows, baseline, baseline_backtracking))


if __name__ == "__main__":
    main()
