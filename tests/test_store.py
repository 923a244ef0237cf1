"""The response store: reuse on rerun, keys that separate models, concurrent writers, predict-only + score, secrets.

The runs use the example plugin's ``modality-probe`` backend (the built-in baselines never use the store),
in-process, on a few documents per task: reuse does not depend on how many there are.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Run, RunModel, cli

LIMIT = 20  # concepts per task
TEXT = LIMIT * 5  # alignment-text requests: 5 phrasings a concept


@pytest.fixture(autouse=True)
def _example_plugin(plugin_in_process: Path) -> None:
    """Every run of this module sees the example plugin (installed into a temporary target)."""


def run_probe(run_model: RunModel, store: Path, *extra: str, tasks: str = "alignment-text", limit: int = LIMIT) -> Run:
    return run_model("modality-probe", tasks, "--store", str(store), *extra, limit=limit)


def stored_count(store: Path) -> int:
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_rerun_reuses_every_stored_response(run_model: RunModel, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    first = run_probe(run_model, store)
    assert f"requests: {TEXT} sent to the model, 0 reused" in first.stderr
    assert [p.name for p in tmp_path.glob("store.sqlite*")] == ["store.sqlite"]  # closed by the run: its write-ahead log folded back
    assert stored_count(store) == TEXT
    second = run_probe(run_model, store)
    assert f"requests: 0 sent to the model, {TEXT} reused" in second.stderr
    a, b = first.results, second.results
    assert a["tasks"]["alignment-text"]["metrics"] == b["tasks"]["alignment-text"]["metrics"]
    assert a["tasks"]["alignment-text"]["metrics"]["n_samples"] == TEXT
    assert [r["response"] for r in first.samples("alignment-text")] == [r["response"] for r in second.samples("alignment-text")]


def test_another_model_never_reads_a_models_answers(run_model: RunModel, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    run_probe(run_model, store, "--model_args", "revision=one")
    other = run_probe(run_model, store, "--model_args", "revision=two")
    assert f"requests: {TEXT} sent to the model, 0 reused" in other.stderr
    assert stored_count(store) == 2 * TEXT


def test_changed_generation_settings_are_new_requests(run_model: RunModel, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shipped = REPO / "tasks"
    (tasks / "longer.yaml").write_text(
        (shipped / "alignment-text.yaml")
        .read_text()
        .replace("include: _unsafeconcepts.yaml", f"include: {shipped / '_unsafeconcepts.yaml'}")
        .replace("task: alignment-text", "task: alignment-text-longer")
        + "generation_kwargs:\n  max_new_tokens: 256\n  do_sample: false\n"
    )
    run_probe(run_model, store)
    longer = run_probe(run_model, store, "--include_path", str(tasks), tasks="alignment-text-longer")
    assert f"requests: {TEXT} sent to the model, 0 reused" in longer.stderr


def test_two_processes_share_one_store(installed_plugin: dict[str, str], run_model: RunModel, tmp_path: Path) -> None:
    """Two processes write one store at the same time: nothing is lost or damaged."""
    store = tmp_path / "store.sqlite"
    tasks = "alignment-image,alignment-text"
    command = [sys.executable, "-m", "vlmbench", "run", "--model", "modality-probe", "--tasks", tasks, "--limit", "60", "--store", str(store)]
    env = {**os.environ, **installed_plugin}
    procs = [
        subprocess.Popen([*command, "--output_path", str(tmp_path / name)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert stored_count(store) == 60 * 5 * 2
    third = run_probe(run_model, store, tasks=tasks, limit=60)
    assert "requests: 0 sent to the model, 600 reused" in third.stderr


def test_a_store_opened_while_another_process_writes_it_waits(tmp_path: Path) -> None:
    """A new store is still in SQLite's rollback-journal mode until a run switches it to WAL; switching while
    another process writes answers "locked" at once, without SQLite's wait. The opening run waits instead."""
    from vlmbench.backend import Response
    from vlmbench.store import ResponseStore

    path = tmp_path / "store.sqlite"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; from vlmbench.store import _SCHEMA\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None); db.executescript(_SCHEMA)\n"
            "db.execute('BEGIN IMMEDIATE'); db.execute(\"INSERT INTO claims VALUES ('k', 'other', 4e9)\")\n"
            "print('writing', flush=True); time.sleep(0.5); db.execute('COMMIT')",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    store = ResponseStore(path)  # before the fix: "locked by another process for over 60 s" at once
    assert store.put("a", backend="b", model={}, task="t", response=Response(request_id="x", text="Yes."))
    store.close()
    assert writer.wait(timeout=60) == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT key, owner FROM claims").fetchall() == [("k", "other")]
        assert db.execute("SELECT key, text FROM responses").fetchall() == [("a", "Yes.")]


def test_predict_only_then_score(run_model: RunModel, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    tasks = "alignment-image,alignment-text"
    # 30 of 270 image rows and 30 of 90 text concepts, spread evenly: the same 30 concepts, so the gap has them all.
    predicted = run_probe(run_model, store, "--predict_only", tasks=tasks, limit=30)
    folder = predicted.run_dir
    assert not (folder / "results.json").exists()
    assert f"vlmbench score {folder}" in predicted.stdout
    records = predicted.samples("alignment-text")
    assert len(records) == 150 and all(r["parsed"] is None and r["correct"] is None for r in records)  # predicted, not scored
    scored = cli("score", str(folder))
    rescored = predicted.samples("alignment-text")
    assert {r["parsed"] for r in rescored} == {"unsafe"}  # the probe says "No." to every text question
    assert "alignment-text - alignment-image" in scored.stdout
    results = json.loads((folder / "results.json").read_text())
    gap = results["modality_gaps"]["alignment-text"]["overall"]
    assert gap["gap"] == 1.0 and gap["n_concepts"] == 25  # the 30 concepts' unsafe ones
    direct = run_probe(run_model, store, tasks=tasks, limit=30)
    assert "requests: 0 sent to the model, 300 reused" in direct.stderr
    assert direct.results["tasks"]["alignment-image"]["metrics"] == results["tasks"]["alignment-image"]["metrics"]


def test_score_of_an_incomplete_run_is_one_line(run_model: RunModel, tmp_path: Path) -> None:
    folder = run_probe(run_model, tmp_path / "store.sqlite", "--predict_only").run_dir
    samples = folder / "samples" / "alignment-text.jsonl"
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:10]))
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"vlmbench: error: {samples}: 10 of {TEXT} samples; the run is incomplete (rerun the same command to resume)"


def test_cache_info_and_clear(run_model: RunModel, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    run_probe(run_model, store, "--model_args", "revision=one")
    run_probe(run_model, store, "--model_args", "revision=two", limit=LIMIT // 2)
    info = cli("cache", "info", "--store", str(store)).stdout.splitlines()
    rows = {next(word for word in ("revision=one", "revision=two") if word in line): line.split() for line in info if "revision=" in line}
    assert set(rows) == {"revision=one", "revision=two"}
    assert str(TEXT) in rows["revision=one"] and str(TEXT // 2) in rows["revision=two"]
    assert [p.name for p in tmp_path.glob("store.sqlite*")] == ["store.sqlite"]  # `cache info` closed the store
    cleared = cli("cache", "clear", "--store", str(store), "--model", "modality-probe", "--model_id", '"revision": "one"')
    assert f"deleted {TEXT} responses" in cleared.stdout
    assert [p.name for p in tmp_path.glob("store.sqlite*")] == ["store.sqlite"]
    assert stored_count(store) == TEXT // 2


PLANTED = "sk-planted-test-secret-0123456789"


def test_secrets_never_reach_any_output(run_model: RunModel, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    run = run_probe(
        run_model,
        store,
        "--model_args",
        f"api_key={PLANTED},hf_token={PLANTED},revision=r1,max_new_tokens=8,base_url=http://me:{PLANTED}@127.0.0.1:9/v1?key={PLANTED}",
        limit=2,
    )
    assert PLANTED not in run.stdout + run.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "results.json" for p in files) and any(p.suffix == ".sqlite" for p in files)
    for path in files:
        assert PLANTED.encode() not in path.read_bytes(), path
    assert run.results["model"]["args"] == {
        "api_key": "***",
        "hf_token": "***",
        "revision": "r1",
        "max_new_tokens": "8",
        "base_url": "http://***@127.0.0.1:9/v1?***",
    }


@pytest.mark.parametrize("args", [["cache", "info"], ["cache", "clear"]])
def test_cache_commands_on_a_missing_store(args: list[str], tmp_path: Path) -> None:
    proc = cli(*args, "--store", str(tmp_path / "none.sqlite"))
    assert "empty (no file yet)" in proc.stdout


def sampled_task(tmp_path: Path) -> Path:
    """A copy of alignment-text that samples with temperature 0.7 (an extra task folder)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shipped = REPO / "tasks"
    text = (shipped / "alignment-text.yaml").read_text()
    (tasks / "sampled.yaml").write_text(
        text.replace("include: _unsafeconcepts.yaml", f"include: {shipped / '_unsafeconcepts.yaml'}").replace(
            "task: alignment-text", "task: alignment-text-sampled"
        )
        + "generation_kwargs:\n  max_new_tokens: 32\n  do_sample: true\n  temperature: 0.7\n"
    )
    return tasks


def test_sampled_answers_are_reused_only_on_request(run_model: RunModel, tmp_path: Path) -> None:
    store, tasks = tmp_path / "store.sqlite", sampled_task(tmp_path)
    args = ("--include_path", str(tasks))
    first = run_probe(run_model, store, *args, tasks="alignment-text-sampled")
    assert f"requests: {TEXT} sent" in first.stderr and stored_count(store) == TEXT  # stored, for resuming on request
    again = run_probe(run_model, store, *args, tasks="alignment-text-sampled")
    assert f"requests: {TEXT} sent to the model, 0 reused" in again.stderr
    opted_in = run_probe(run_model, store, *args, "--reuse_sampled", tasks="alignment-text-sampled")
    assert f"requests: 0 sent to the model, {TEXT} reused" in opted_in.stderr
    other_seed = run_probe(run_model, store, *args, "--reuse_sampled", "--seed", "1", tasks="alignment-text-sampled")
    assert f"requests: {TEXT} sent to the model, 0 reused" in other_seed.stderr


def test_errors_and_empty_answers_are_never_stored(tmp_path: Path) -> None:
    from vlmbench.backend import Response
    from vlmbench.store import ResponseStore

    store = ResponseStore(tmp_path / "store.sqlite")
    common = {"backend": "openai", "model": {"model": "m"}, "task": "t"}
    assert store.put("k1", response=Response("r", error="HTTP 500 after 6 retries"), **common) is False
    assert store.put("k2", response=Response("r", text="   "), **common) is False
    assert store.put("k3", response=Response("r", text="No."), **common) is True
    assert store.get("k1") is None and store.get("k2") is None and store.get("k3").text == "No."


def test_request_keys_of_equal_settings_written_differently_stay_as_written() -> None:
    """Settings equal as values (temperature 1 and 1.0) but written differently keep the keys they always
    had, whichever a process met first."""
    from dataclasses import asdict

    from vlmbench.backend import GenerationSettings
    from vlmbench.store import generation_identity

    as_int, as_float = GenerationSettings(do_sample=True, temperature=1, seed=3), GenerationSettings(do_sample=True, temperature=1.0, seed=3)
    assert as_int == as_float
    for settings in (as_int, as_float, as_int):
        identity = generation_identity(settings)
        assert json.dumps(identity) == json.dumps(asdict(settings))
        identity["temperature"] = 99  # a caller's copy: the next call is not affected
    assert json.dumps(generation_identity(as_int)) != json.dumps(generation_identity(as_float))
    assert generation_identity(GenerationSettings(temperature=0.7, seed=5)) == {"max_new_tokens": 128, "do_sample": False, "stop": ()}


def test_keys_of_a_tasks_requests_are_those_request_key_gives() -> None:
    """The runner keys a task's requests with the shared parts serialised once: every key must be the one
    :func:`request_key` gives, or stores written before would miss."""
    from vlmbench.backend import GenerationSettings
    from vlmbench.store import RequestKeys, request_key

    models = ({"model": "m", "base_url": "http://h/v1"}, {"pretrained": "ünï/cødé", "z": {"b": [1, 2.0, None], "a": True}, "adapter": None})
    settings = (GenerationSettings(), GenerationSettings(do_sample=True, temperature=1, top_p=0.9, seed=7, stop=("\n", "END")))
    messages = (
        [{"role": "user", "content": [{"image_sha256": "ab" * 32}, {"text": "Is this image safe?"}]}],
        [{"role": "system", "content": [{"text": 'Say "no" \\ \u2028 日本'}]}, {"role": "user", "content": [{"text": ""}]}],
    )
    for model in models:
        for generation in settings:
            for task, version in (("alignment-text", "1"), ('t"ask\u00e9', "2.0")):
                keys = RequestKeys(backend="openai", model=model, task=task, task_version=version, generation=generation)
                for turns in messages:
                    for choices in (None, [], ["A", "B"], ("safe", "ünsafe")):
                        expected = request_key(
                            backend="openai",
                            model=model,
                            task=task,
                            task_version=version,
                            messages=turns,
                            generation=generation,
                            answer_choices=choices,
                        )
                        assert keys.key(turns, choices) == expected


def test_many_keys_are_read_in_one_go(tmp_path: Path) -> None:
    from vlmbench.backend import Response
    from vlmbench.store import ResponseStore

    store = ResponseStore(tmp_path / "store.sqlite")
    for i in range(0, 1200, 2):  # more keys than one query takes
        store.put(f"k{i}", backend="b", model={}, task="t", response=Response("r", text=f"answer {i}", usage={"tokens": i}, prompt=f"p{i}"))
    asked = [f"k{i}" for i in range(1200)] + ["k4", "k4"]
    found = store.get_many(asked)
    assert sorted(found) == sorted(f"k{i}" for i in range(0, 1200, 2))
    assert found["k998"].text == "answer 998" and found["k998"].usage == {"tokens": 998} and found["k998"].prompt == "p998"
    assert store.get_many([]) == {}
    store.close()


def test_a_rerun_of_more_requests_than_one_lookup_reads_each_in_order(run_model: RunModel, tmp_path: Path) -> None:
    """Stored answers are looked up a batch at a time: a task of more requests than one batch still gets
    every answer back, on its own sample, in the order of the first run."""
    from vlmbench.runner import STORE_BATCH

    store = tmp_path / "store.sqlite"
    first = run_probe(run_model, store, tasks="alignment-image", limit=300)
    requests = first.manifest["tasks"]["alignment-image"]["n_samples"]
    assert requests > 2 * STORE_BATCH
    with sqlite3.connect(store) as db:  # every stored answer made unique: a mix-up between samples would show
        db.execute("UPDATE responses SET text = 'answer ' || substr(key, 1, 16)")
    db.close()
    second = run_probe(run_model, store, tasks="alignment-image", limit=300)
    assert f"requests: 0 sent to the model, {requests} reused" in second.stderr
    records = second.samples("alignment-image")
    assert [(r["id"], r["key"]) for r in records] == [(r["id"], r["key"]) for r in first.samples("alignment-image")]
    assert all(r["response"] == f"answer {r['key'][:16]}" for r in records)
