"""Shared fixtures: offline environment, a session-wide data cache, and ways to call the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Any accidental hub call fails fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VLMBENCH_SHARED", REPO.parent / "shared"))
PLUGIN = REPO / "tests" / "plugin_example"


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated-data cache for the whole session (built-in sets are generated once)."""
    path = tmp_path_factory.mktemp("vlmbench-cache")
    os.environ["VLMBENCH_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """The study's reference files beside the project; the test skips when they are absent."""
    path = SHARED / "reference" / "unsafeconcepts"
    if not (path / "metadata.jsonl").is_file():
        pytest.skip(f"reference data not found at {path}")
    return path


def vlmbench(*args: str, check: bool = True, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vlmbench ARGS`` in a subprocess (the real CLI, entry points included)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vlmbench", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vlmbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_dir(output: Path) -> Path:
    """The single run folder a `vlmbench run --output_path output` created."""
    runs = sorted(p.parent for p in output.glob("*/*/run.json"))
    assert len(runs) == 1, runs
    return runs[0]


def load_results(output: Path) -> dict[str, Any]:
    """The results.json of the single run under ``output``."""
    return json.loads((run_dir(output) / "results.json").read_text())


def read_samples(output: Path, task: str) -> list[dict[str, Any]]:
    """The per-sample records of ``task`` in the single run under ``output``."""
    lines = (run_dir(output) / "samples" / f"{task}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def install_into_target(source: Path, target: Path) -> None:
    """pip-install a package folder into ``target`` (never the live environment), building from a
    copy so that no build/ or egg-info folder is left in the source tree."""
    copy = target.parent / f"{source.name}-src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "-q",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(copy),
        ],
        check=True,
        capture_output=True,
        cwd=copy,
    )


def with_path(*folders: Path) -> dict[str, str]:
    """Environment for a subprocess that also imports from ``folders`` (plugins installed into a target)."""
    extra = os.pathsep.join(str(f) for f in folders)
    return {"PYTHONPATH": extra + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}


@pytest.fixture(scope="session")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example third-party plugin (tests/plugin_example), installed into a temporary target.

    Returns the environment that makes a ``vlmbench`` subprocess see it; the user's environment is
    never touched."""
    target = tmp_path_factory.mktemp("plugin") / "site"
    install_into_target(PLUGIN, target)
    return with_path(target)
