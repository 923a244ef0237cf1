"""The response store: reuse on rerun, keys that separate models, concurrent writers, predict-only + score, secrets."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_results, run_dir, vlmbench


@pytest.fixture(autouse=True)
def _example_plugin_on_path(installed_plugin: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every vlmbench subprocess of this module sees the example plugin (installed into a temporary target)."""
    for name, value in installed_plugin.items():
        monkeypatch.setenv(name, value)


def run_probe(output: Path, store: Path, *extra: str, tasks: str = "alignment-text") -> subprocess.CompletedProcess[str]:
    return vlmbench("run", "--model", "modality-probe", "--tasks", tasks, "--output_path", str(output), "--store", str(store), *extra)


def stored_count(store: Path) -> int:
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_rerun_reuses_every_stored_response(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    first = run_probe(tmp_path / "a", store)
    assert "requests: 450 sent to the model, 0 reused" in first.stderr
    assert stored_count(store) == 450
    second = run_probe(tmp_path / "b", store)
    assert "requests: 0 sent to the model, 450 reused" in second.stderr
    a, b = load_results(tmp_path / "a"), load_results(tmp_path / "b")
    assert a["tasks"]["alignment-text"]["metrics"] == b["tasks"]["alignment-text"]["metrics"]
    assert a["modality_gaps"] == b["modality_gaps"]


def test_another_model_never_reads_a_models_answers(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    run_probe(tmp_path / "a", store, "--model_args", "revision=one")
    other = run_probe(tmp_path / "b", store, "--model_args", "revision=two")
    assert "requests: 450 sent to the model, 0 reused" in other.stderr
    assert stored_count(store) == 900


def test_changed_generation_settings_are_new_requests(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    yaml_text = (Path(__file__).parent.parent / "tasks" / "alignment-text.yaml").read_text()
    shipped = Path(__file__).parent.parent / "tasks"
    (tasks / "longer.yaml").write_text(
        yaml_text.replace("include: _unsafeconcepts.yaml", f"include: {shipped / '_unsafeconcepts.yaml'}").replace(
            "task: alignment-text", "task: alignment-text-longer"
        )
        + "generation_kwargs:\n  max_new_tokens: 256\n  do_sample: false\n"
    )
    run_probe(tmp_path / "a", store)
    longer = run_probe(tmp_path / "b", store, "--include_path", str(tasks), tasks="alignment-text-longer")
    assert "requests: 450 sent to the model, 0 reused" in longer.stderr


def test_two_processes_share_one_store(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    command = [
        sys.executable,
        "-m",
        "vlmbench",
        "run",
        "--model",
        "modality-probe",
        "--tasks",
        "alignment-image,alignment-text",
        "--store",
        str(store),
    ]
    procs = [
        subprocess.Popen([*command, "--output_path", str(tmp_path / name)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert stored_count(store) == 1350 + 450
    third = run_probe(tmp_path / "c", store, tasks="alignment-image,alignment-text")
    assert "requests: 0 sent to the model, 1800 reused" in third.stderr


def test_predict_only_then_score(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    proc = run_probe(tmp_path / "p", store, "--predict_only", tasks="alignment-image,alignment-text")
    folder = run_dir(tmp_path / "p")
    assert not (folder / "results.json").exists()
    assert f"vlmbench score {folder}" in proc.stdout
    records = [json.loads(line) for line in (folder / "samples" / "alignment-text.jsonl").read_text().splitlines()]
    assert len(records) == 450 and all(r["parsed"] is None and r["correct"] is None for r in records)  # predicted, not scored
    scored = vlmbench("score", str(folder))
    rescored = [json.loads(line) for line in (folder / "samples" / "alignment-text.jsonl").read_text().splitlines()]
    assert {r["parsed"] for r in rescored} == {"unsafe"}  # the probe says "No." to every text question
    assert "alignment-text - alignment-image" in scored.stdout
    results = json.loads((folder / "results.json").read_text())
    assert results["modality_gaps"]["alignment-text"]["overall"]["gap"] == 1.0
    direct = tmp_path / "direct"
    run_probe(direct, store, tasks="alignment-image,alignment-text")
    assert load_results(direct)["tasks"]["alignment-image"]["metrics"] == results["tasks"]["alignment-image"]["metrics"]


def test_score_of_an_incomplete_run_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    run_probe(tmp_path / "p", store, "--predict_only")
    folder = run_dir(tmp_path / "p")
    samples = folder / "samples" / "alignment-text.jsonl"
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:100]))
    proc = vlmbench("score", str(folder), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"vlmbench: error: {samples}: 100 of 450 samples; the run is incomplete (rerun the same command to resume)"


def test_cache_info_and_clear(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    run_probe(tmp_path / "a", store, "--model_args", "revision=one")
    run_probe(tmp_path / "b", store, "--model_args", "revision=two")
    info = vlmbench("cache", "info", "--store", str(store)).stdout
    assert "revision=one" in info and "revision=two" in info and info.count("450") == 2
    cleared = vlmbench("cache", "clear", "--store", str(store), "--model", "modality-probe", "--model_id", '"revision": "one"')
    assert "deleted 450 responses" in cleared.stdout
    assert stored_count(store) == 450


PLANTED = "sk-planted-test-secret-0123456789"


def test_secrets_never_reach_any_output(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    proc = run_probe(
        tmp_path / "out",
        store,
        "--model_args",
        f"api_key={PLANTED},hf_token={PLANTED},revision=r1,max_new_tokens=8,base_url=http://me:{PLANTED}@127.0.0.1:9/v1?key={PLANTED}",
    )
    assert PLANTED not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "results.json" for p in files) and any(p.suffix == ".sqlite" for p in files)
    for path in files:
        assert PLANTED.encode() not in path.read_bytes(), path
    results = load_results(tmp_path / "out")
    assert results["model"]["args"] == {
        "api_key": "***",
        "hf_token": "***",
        "revision": "r1",
        "max_new_tokens": "8",
        "base_url": "http://***@127.0.0.1:9/v1?***",
    }


@pytest.mark.parametrize("args", [["cache", "info"], ["cache", "clear"]])
def test_cache_commands_on_a_missing_store(args: list[str], tmp_path: Path) -> None:
    proc = vlmbench(*args, "--store", str(tmp_path / "none.sqlite"))
    assert "empty (no file yet)" in proc.stdout


def sampled_task(tmp_path: Path) -> Path:
    """A copy of alignment-text that samples with temperature 0.7 (an extra task folder)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shipped = Path(__file__).parent.parent / "tasks"
    text = (shipped / "alignment-text.yaml").read_text()
    (tasks / "sampled.yaml").write_text(
        text.replace("include: _unsafeconcepts.yaml", f"include: {shipped / '_unsafeconcepts.yaml'}").replace(
            "task: alignment-text", "task: alignment-text-sampled"
        )
        + "generation_kwargs:\n  max_new_tokens: 32\n  do_sample: true\n  temperature: 0.7\n"
    )
    return tasks


def test_sampled_answers_are_reused_only_on_request(tmp_path: Path) -> None:
    store, tasks = tmp_path / "store.sqlite", sampled_task(tmp_path)
    args = ("--include_path", str(tasks))
    first = run_probe(tmp_path / "a", store, *args, tasks="alignment-text-sampled")
    assert "requests: 450 sent" in first.stderr and stored_count(store) == 450  # stored, for resuming on request
    again = run_probe(tmp_path / "b", store, *args, tasks="alignment-text-sampled")
    assert "requests: 450 sent to the model, 0 reused" in again.stderr
    opted_in = run_probe(tmp_path / "c", store, *args, "--reuse_sampled", tasks="alignment-text-sampled")
    assert "requests: 0 sent to the model, 450 reused" in opted_in.stderr
    other_seed = run_probe(tmp_path / "d", store, *args, "--reuse_sampled", "--seed", "1", tasks="alignment-text-sampled")
    assert "requests: 450 sent to the model, 0 reused" in other_seed.stderr


def test_errors_and_empty_answers_are_never_stored(tmp_path: Path) -> None:
    from vlmbench.backend import Response
    from vlmbench.store import ResponseStore

    store = ResponseStore(tmp_path / "store.sqlite")
    common = {"backend": "openai", "model": {"model": "m"}, "task": "t"}
    assert store.put("k1", response=Response("r", error="HTTP 500 after 6 retries"), **common) is False
    assert store.put("k2", response=Response("r", text="   "), **common) is False
    assert store.put("k3", response=Response("r", text="No."), **common) is True
    assert store.get("k1") is None and store.get("k2") is None and store.get("k3").text == "No."
