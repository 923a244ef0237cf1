"""Response-store benchmark: per-response overhead, and a full re-run served from the store.

    python bench/bench_store.py

1. Store overhead: N responses written one transaction each (as a run writes them), then read back.
2. Re-run: `vlmbench run --model openai --tasks all` against a local OpenAI-compatible server
   (tests/fault_server.py, zero latency), first with an empty store, then again: the second run must
   send 0 requests. Wall time is for the whole command, interpreter start-up included.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from vlmbench.backend import Response  # noqa: E402
from vlmbench.store import ResponseStore  # noqa: E402
from vlmbench.testing.fault_server import FaultServer  # noqa: E402


def store_overhead(folder: Path, count: int = 5000) -> tuple[float, float]:
    """Mean milliseconds per durable put and per get."""
    store = ResponseStore(folder / "overhead.sqlite")
    model = {"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "bench"}
    started = time.perf_counter()
    for i in range(count):
        store.put(
            f"key-{i}",
            backend="openai",
            model=model,
            task="bench",
            response=Response(request_id=str(i), text=f"answer {i}", usage={"prompt_tokens": 10, "completion_tokens": 2}),
        )
    put_ms = (time.perf_counter() - started) * 1000 / count
    started = time.perf_counter()
    for i in range(count):
        assert store.get(f"key-{i}") is not None
    get_ms = (time.perf_counter() - started) * 1000 / count
    store.close()
    return put_ms, get_ms


def timed_run(url: str, folder: Path) -> tuple[float, str]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VLMBENCH_CACHE_DIR": str(folder.parent / "cache"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "vlmbench",
        "run",
        "--model",
        "openai",
        "--model_args",
        f"base_url={url},model=bench",
        "--tasks",
        "all",
        "--store",
        str(folder / "store.sqlite"),
        "--output_path",
        str(folder / "results"),
    ]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return elapsed, re.search(r"requests: .*", proc.stderr).group(0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        put_ms, get_ms = store_overhead(folder)
        with FaultServer(latency=0.0) as server:
            timed_run(server.base_url, folder / "warm")  # generates the built-in data once, outside the timings
            first, first_counts = timed_run(server.base_url, folder / "timed")
            sent_before = server.stats()["requests"]
            rerun, rerun_counts = timed_run(server.base_url, folder / "timed")
            sent_by_rerun = server.stats()["requests"] - sent_before
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"store put (one durable transaction each): {put_ms:.3f} ms/response; get: {get_ms:.3f} ms/response")
    print(f"first run, --tasks all, empty store: {first:.2f} s ({first_counts})")
    print(f"re-run from the store:               {rerun:.2f} s ({rerun_counts}); requests the server saw: {sent_by_rerun}")


if __name__ == "__main__":
    main()
