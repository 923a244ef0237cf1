"""Work split with a forked child (vlmbench.forked): the same results, in order, with errors and lost children handled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vlmbench.forked import map_in_two

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2, reason="forks only on Linux, two CPUs")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from vlmbench import collector
    from vlmbench.errors import UserError
    from vlmbench.forked import map_in_two

    collector.enable()  # as the vlmbench command's own process
    parent = os.getpid()
    case = sys.argv[1]

    def work(item):
        if case == "error" and item == 5 and os.getpid() != parent:
            raise UserError("samples file damaged: task 5")
        if case == "lost" and os.getpid() != parent:
            os._exit(3)  # the child dies without a word
        return {"item": item, "square": item * item, "by_child": os.getpid() != parent}

    try:
        out = map_in_two(list(range(8)), work, weight=lambda i: float(i + 1))
        print(json.dumps(out))
    except UserError as exc:
        print("UserError:", exc)
    """
)


def _run(case: str) -> str:
    return subprocess.run([sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, check=True, timeout=120).stdout


def test_a_child_does_about_half_and_the_results_come_back_in_order() -> None:
    out = json.loads(_run("ok"))
    assert [r["item"] for r in out] == list(range(8)) and [r["square"] for r in out] == [i * i for i in range(8)]
    by_child = [r["item"] for r in out if r["by_child"]]
    weights = {i: i + 1 for i in range(8)}
    assert by_child and len(by_child) < 8
    assert abs(sum(weights[i] for i in by_child) - 18) <= 2  # half of 36 by weight, greedily


def test_an_error_in_the_child_is_raised_by_the_parent() -> None:
    assert _run("error").strip() == "UserError: samples file damaged: task 5"


def test_a_child_that_dies_has_its_share_done_by_the_parent() -> None:
    out = json.loads(_run("lost"))
    assert [r["square"] for r in out] == [i * i for i in range(8)] and not any(r["by_child"] for r in out)


def test_outside_the_commands_own_process_the_work_stays_here() -> None:
    # A test process (or any program calling the library) never forks: the collector is not the command's.
    out = map_in_two(list(range(6)), lambda i: (i, os.getpid()), weight=lambda i: 1.0)
    assert out == [(i, os.getpid()) for i in range(6)]


def _comparable(run_dir: Path) -> tuple[dict, dict]:
    results = json.loads((run_dir / "results.json").read_text())
    for entry in results["tasks"].values():
        entry.pop("seconds", None)
    samples = {}
    for path in sorted((run_dir / "samples").glob("*.jsonl")):
        samples[path.name] = [
            {k: r[k] for k in ("id", "response", "parsed", "correct", "verdicts")} for r in map(json.loads, path.read_text().splitlines())
        ]
    return {"tasks": results["tasks"], "modality_gaps": results["modality_gaps"]}, samples


def test_the_command_scores_on_two_cores_with_the_numbers_of_a_serial_run(tmp_path: Path, data_cache: Path) -> None:
    """`vlmbench run` (its own process: tasks scored by two processes) writes the results and verdicts that the
    library (one process) writes for the same run."""
    from vlmbench import EvalConfig, evaluate

    args = ["--model", "random", "--tasks", "all", "--limit", "12", "--no_store"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "vlmbench", "run", *args, "--output_path", str(tmp_path / "command")]
    subprocess.run(command, capture_output=True, text=True, check=True, env=env, timeout=300)
    forked = _comparable(next((tmp_path / "command").glob("*/*")))
    serial = evaluate(EvalConfig(model="random", tasks="all", limit=12, use_store=False, output_path=tmp_path / "library"))
    assert len(forked[0]["tasks"]) >= 10
    assert forked == _comparable(serial.run_dir)
