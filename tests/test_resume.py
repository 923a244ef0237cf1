"""Nothing paid for is lost: kill -9 a run mid-way, rerun the same command, and it finishes the job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli, load_results
from vlmbench.testing.fault_server import FaultServer

CONCURRENCY = 4
LIMIT = 40  # concepts: 200 requests (5 phrasings each), enough to kill the run a third of the way through
TOTAL = LIMIT * 5
KILL_AFTER = 60  # samples written


def flags(url: str, tmp_path: Path) -> list[str]:
    return [
        "--model",
        "openai",
        "--model_args",
        f"base_url={url},model=counting,num_concurrent={CONCURRENCY}",
        "--tasks",
        "alignment-text",
        "--limit",
        str(LIMIT),
        "--store",
        str(tmp_path / "store.sqlite"),
    ]


def samples_written(output: Path) -> int:
    files = list(output.glob("*/*/samples/alignment-text.jsonl"))
    return len(files[0].read_text().splitlines()) if files else 0


def test_kill_9_mid_run_then_rerun_loses_nothing(tmp_path: Path) -> None:
    with FaultServer(latency=0.03) as server:
        # The run that is killed is a real process; the reruns are the same command, in-process.
        killed = [sys.executable, "-m", "vlmbench", "run", *flags(server.base_url, tmp_path), "--output_path", str(tmp_path / "killed")]
        run = subprocess.Popen(killed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120  # a guard against hanging, not a timing assertion
        while samples_written(tmp_path / "killed") < KILL_AFTER:
            assert run.poll() is None, run.stderr.read().decode() if run.stderr else ""
            if time.monotonic() > deadline:
                run.kill()
                pytest.fail(f"the run wrote fewer than {KILL_AFTER} samples in 120 s")
            time.sleep(0.01)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        seen_before_kill = {event.key for event in server.events()}
        with sqlite3.connect(tmp_path / "store.sqlite") as db:
            stored_at_kill = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert KILL_AFTER <= stored_at_kill < TOTAL

        rerun = cli("run", *flags(server.base_url, tmp_path), "--output_path", str(tmp_path / "rerun"))
        # Every response stored before the kill is reused; only the rest is asked for.
        assert f"requests: {TOTAL - stored_at_kill} sent to the model, {stored_at_kill} reused" in rerun.stderr
        outcomes = server.outcomes()
        resent = {key for key, seen in outcomes.items() if len(seen) > 1}
        # Only requests in flight at the kill (sent, answer not yet stored) went out twice. The backend sends at
        # most twice the concurrency ahead of the answers the run has taken (see the openai backend's tests):
        # on a busy machine the run may lag behind the server's answers, never by more.
        assert resent <= seen_before_kill
        assert len(resent) == len(seen_before_kill) - stored_at_kill <= 2 * CONCURRENCY
        assert len(outcomes) == TOTAL and all(seen[-1] == "200" for seen in outcomes.values())

        uninterrupted = cli("run", *flags(server.base_url, tmp_path), "--output_path", str(tmp_path / "again"))
        assert f"requests: 0 sent to the model, {TOTAL} reused" in uninterrupted.stderr
    resumed, reference = load_results(tmp_path / "rerun"), load_results(tmp_path / "again")
    assert resumed["tasks"]["alignment-text"]["metrics"]["n_samples"] == TOTAL
    for key in ("tasks", "modality_gaps"):
        a, b = resumed[key], reference[key]
        if key == "tasks":
            counts = ("seconds", "requests", "usage", "reused_from")  # how the answers were had, not what they are
            a = {t: {k: v for k, v in e.items() if k not in counts} for t, e in a.items()}
            b = {t: {k: v for k, v in e.items() if k not in counts} for t, e in b.items()}
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
