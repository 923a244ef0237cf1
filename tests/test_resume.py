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

from conftest import load_results
from vlmbench.testing.fault_server import FaultServer

CONCURRENCY = 4


def command(url: str, tmp_path: Path, output: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vlmbench",
        "run",
        "--model",
        "openai",
        "--model_args",
        f"base_url={url},model=counting,num_concurrent={CONCURRENCY}",
        "--tasks",
        "alignment-text",
        "--store",
        str(tmp_path / "store.sqlite"),
        "--output_path",
        str(tmp_path / output),
    ]


def samples_written(output: Path) -> int:
    files = list(output.glob("*/*/samples/alignment-text.jsonl"))
    return len(files[0].read_text().splitlines()) if files else 0


def test_kill_9_mid_run_then_rerun_loses_nothing(tmp_path: Path) -> None:
    with FaultServer(latency=0.05) as server:
        run = subprocess.Popen(command(server.base_url, tmp_path, "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while samples_written(tmp_path / "killed") < 120:
            assert run.poll() is None, run.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        seen_before_kill = {event.key for event in server.events()}
        with sqlite3.connect(tmp_path / "store.sqlite") as db:
            stored_at_kill = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert 120 <= stored_at_kill < 450

        rerun = subprocess.run(command(server.base_url, tmp_path, "rerun"), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        # Every response stored before the kill is reused; only the rest is asked for.
        assert f"requests: {450 - stored_at_kill} sent to the model, {stored_at_kill} reused" in rerun.stderr
        outcomes = server.outcomes()
        resent = {key for key, seen in outcomes.items() if len(seen) > 1}
        # Only requests in flight at the kill (sent, answer not yet stored) went out twice.
        assert resent <= seen_before_kill
        assert len(resent) == len(seen_before_kill) - stored_at_kill <= CONCURRENCY
        assert len(outcomes) == 450 and all(seen[-1] == "200" for seen in outcomes.values())

        uninterrupted = subprocess.run(command(server.base_url, tmp_path, "again"), capture_output=True, text=True, timeout=300)
        assert "requests: 0 sent to the model, 450 reused" in uninterrupted.stderr
    resumed, reference = load_results(tmp_path / "rerun"), load_results(tmp_path / "again")
    for key in ("tasks", "modality_gaps"):
        a, b = resumed[key], reference[key]
        if key == "tasks":
            a = {t: {k: v for k, v in e.items() if k not in ("seconds", "requests", "usage")} for t, e in a.items()}
            b = {t: {k: v for k, v in e.items() if k not in ("seconds", "requests", "usage")} for t, e in b.items()}
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
