"""Run folders come from elsewhere too (a colleague's, a download): `vlmbench score` and `vlmbench view`
read them as data. A damaged or crafted run.json or samples file is one line naming the field, exit 2,
and nothing outside the run folder is ever read as its samples or written."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import RunModel, cli

TASK = "perception-image"


@pytest.fixture
def folder(run_model: RunModel, tmp_path: Path) -> Path:
    """A copy of a finished two-task run, to damage."""
    run = run_model("random", f"{TASK},alignment-text", limit=3)
    copy = tmp_path / "copy"
    shutil.copytree(run.run_dir, copy)
    return copy


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    change(manifest)
    (folder / "run.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_samples_file_outside_the_run_folder_is_never_read_or_rewritten(folder: Path, tmp_path: Path) -> None:
    victim = tmp_path / "elsewhere" / "victim.jsonl"
    victim.parent.mkdir()
    shutil.copy(folder / "samples" / f"{TASK}.jsonl", victim)
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    for pointed in (str(victim), f"../../elsewhere/{victim.name}", "samples/../run.json"):
        edit_manifest(folder, lambda m, pointed=pointed: m["tasks"][TASK].update(samples_file=pointed))
        proc = cli("score", str(folder), check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert f"samples_file '{pointed}' is not a file in the run folder's samples/" in proc.stderr
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == before


DAMAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "config null": (lambda m: m.update(config=None), "field 'config' is missing or not an object"),
    "no model": (lambda m: m.pop("model"), "field 'model' is missing or not an object"),
    "a task entry that is a list": (lambda m: m["tasks"].update({TASK: [1, 2]}), f"field 'tasks.{TASK}' is not an object"),
    "samples_file a number": (lambda m: m["tasks"][TASK].update(samples_file=5), f"field 'tasks.{TASK}.samples_file' is missing or not text"),
    "n_samples as text": (lambda m: m["tasks"][TASK].update(n_samples="3"), f"field 'tasks.{TASK}.n_samples' is missing or not an integer"),
    "n_samples true": (lambda m: m["tasks"][TASK].update(n_samples=True), f"field 'tasks.{TASK}.n_samples' is missing or not an integer"),
    "judge_args a list": (lambda m: m["config"].update(judge_args=["a"]), "field 'config.judge_args' is not an object"),
    "seed as text": (lambda m: m["config"].update(seed="abc"), "field 'config.seed' is not an integer"),
    "metrics not a list": (lambda m: m["tasks"][TASK].update(metric_list="accuracy"), f"field 'tasks.{TASK}.metric_list' is missing or not a list"),
    "a task name with escapes": (
        lambda m: m["tasks"].update({"x\x1b[31m": [0]}),
        "field 'tasks.x\ufffd[31m' is not an object",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_manifest_is_one_line_naming_the_field(folder: Path, damage: str) -> None:
    change, message = DAMAGES[damage]
    edit_manifest(folder, change)
    samples = {p.name: p.read_bytes() for p in (folder / "samples").iterdir()}
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and "the run folder is damaged" in proc.stderr and "\x1b" not in proc.stderr
    assert {p.name: p.read_bytes() for p in (folder / "samples").iterdir()} == samples  # refused before any file is rewritten


def test_json_nested_too_deeply_is_one_line_for_score_and_view(folder: Path) -> None:
    samples = folder / "samples" / f"{TASK}.jsonl"
    lines = samples.read_text(encoding="utf-8").splitlines(keepends=True)
    samples.write_text(lines[0] + "[" * 100_000 + "]" * 100_000 + "\n" + "".join(lines[1:]), encoding="utf-8")
    proc = cli("score", str(folder), check=False)
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == f"vlmbench: error: {samples}: line 2 is nested too deeply to be a sample record; the file is damaged"
    )
    (folder / "run.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    for command in (("score", str(folder)), ("view", str(folder), "--out", str(folder / "page"))):
        proc = cli(*command, check=False)
        assert proc.returncode == 2 and "run.json: nested too deeply to be a run manifest" in proc.stderr, proc.stderr


def test_a_number_too_long_to_read_is_one_line_for_score_and_view(folder: Path) -> None:
    """Python refuses to read an integer of more than 4,300 digits (a ValueError that is no JSONDecodeError)."""
    samples = folder / "samples" / f"{TASK}.jsonl"
    lines = samples.read_text(encoding="utf-8").splitlines(keepends=True)
    samples.write_text(lines[0] + '{"index": ' + "9" * 5000 + "}\n" + "".join(lines[1:]), encoding="utf-8")
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"vlmbench: error: {samples}: line 2 holds a number too long to read; the file is damaged"
    manifest = folder / "run.json"  # json.dumps cannot write such a number either: the text is edited
    manifest.write_text('{"x": ' + "9" * 5000 + ", " + manifest.read_text(encoding="utf-8")[1:], encoding="utf-8")
    for command in (("score", str(folder)), ("view", str(folder), "--out", str(folder / "page"))):
        proc = cli(*command, check=False)
        assert proc.returncode == 2 and "run.json: holds a number too long to read; the run folder is damaged" in proc.stderr, proc.stderr


def test_a_fifo_in_a_run_folder_is_refused_without_waiting(folder: Path) -> None:
    samples = folder / "samples" / f"{TASK}.jsonl"
    samples.unlink()
    os.mkfifo(samples)
    proc = cli("score", str(folder), check=False)
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == f"vlmbench: error: {samples}: is a named pipe (FIFO), not a regular file; the run folder is damaged"
    )
    manifest = folder / "run.json"
    manifest.unlink()
    os.mkfifo(manifest)
    for command in (("score", str(folder)), ("view", str(folder), "--out", str(folder / "page"))):
        proc = cli(*command, check=False)
        assert proc.returncode == 2 and f"{manifest}: is a named pipe (FIFO), not a regular file; the run folder is damaged" in proc.stderr, (
            proc.stderr
        )


def test_score_replaces_links_planted_in_a_run_folder_never_writes_through_them(folder: Path, tmp_path: Path) -> None:
    (folder / "results.json").unlink()
    victims = {name: tmp_path / name.replace("/", "-") for name in ("results.json", "results.json.tmp", f"samples/{TASK}.jsonl.tmp")}
    for name, victim in victims.items():  # the name written, and the scratch names written before
        victim.write_text("precious\n")
        (folder / name).symlink_to(victim)
    assert cli("score", str(folder)).returncode == 0
    assert all(victim.read_text() == "precious\n" for victim in victims.values())
    assert not (folder / "results.json").is_symlink() and json.loads((folder / "results.json").read_text())["tasks"][TASK]


def test_a_repeated_sample_index_is_damage_not_a_second_vote(folder: Path) -> None:
    samples = folder / "samples" / f"{TASK}.jsonl"
    lines = samples.read_text(encoding="utf-8").splitlines(keepends=True)
    first = json.loads(lines[0])
    copied = json.loads(lines[1])
    copied.update(index=first["index"])
    samples.write_text(lines[0] + json.dumps(copied) + "\n" + "".join(lines[2:]), encoding="utf-8")
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"vlmbench: error: {samples}: line 2 repeats sample index 0; the file is damaged"


def test_task_names_from_a_run_folder_are_printed_as_inert_text(folder: Path) -> None:
    edit_manifest(folder, lambda m: m["tasks"].update({"x\x1b[2Jred\u202e": m["tasks"].pop(TASK)}))
    proc = cli("score", str(folder))
    assert proc.returncode == 0 and "\x1b" not in proc.stdout and "\u202e" not in proc.stdout
    assert "x\ufffd[2Jred\ufffd" in proc.stdout  # each unprintable character one replacement character


def test_a_stored_text_longer_than_its_generation_could_produce_is_no_answer(tmp_path: Path) -> None:
    """The live bound on a reply's length holds for a stored one too: a store may come from elsewhere."""
    import sqlite3

    from vlmbench import EvalConfig, evaluate
    from vlmbench.testing.fault_server import FaultServer

    with FaultServer() as server:
        args = {"base_url": server.base_url, "model": "tiny"}

        def run(name: str) -> Any:
            return evaluate(
                EvalConfig(model="openai", model_args=args, tasks="alignment-text", limit=1, store=tmp_path / "s.sqlite", output_path=tmp_path / name)
            )

        first = run("first")
        db = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
        (long_key,) = db.execute("SELECT key FROM responses ORDER BY key LIMIT 1").fetchone()
        db.execute("UPDATE responses SET text = ? WHERE key = ?", ("unsafe " * 30_000, long_key))
        db.close()
        again = run("again")
    assert first.requests_sent == 5 and again.requests_sent == 0 and server.stats()["requests"] == 5
    records = {r["key"]: r for r in (json.loads(line) for line in (again.run_dir / "samples" / "alignment-text.jsonl").read_text().splitlines())}
    damaged = records.pop(long_key)
    assert damaged["response"] is None and damaged["error"].startswith("stored answer of 210000 characters, more than max_new_tokens=")
    assert "vlmbench cache clear --model openai" in damaged["error"] and {r["error"] for r in records.values()} == {None}
    assert again.results is not None and again.results["tasks"]["alignment-text"]["metrics"]["n_errors"] == 1


def test_a_dataset_reads_image_files_only_from_its_own_copy(tmp_path: Path) -> None:
    """A dataset names its image files (``{"bytes": None, "path": ...}``): only files of its own copy are read,
    hashed or sent; any other file, by absolute path, by ``..`` or through a link out of the copy, is that row's error."""
    import io

    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from conftest import hub_run, run_dir

    def png(colour: tuple[int, int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), colour).save(buffer, "PNG")
        return buffer.getvalue()

    secret = tmp_path / "private" / "photo.png"
    secret.parent.mkdir()
    secret.write_bytes(png((255, 0, 0)))
    copy = tmp_path / "copy"
    (copy / "images").mkdir(parents=True)
    (copy / "images" / "inside.png").write_bytes(png((0, 200, 0)))
    (copy / "images" / "link.png").symlink_to(secret)
    named = [str(copy / "images" / "inside.png"), str(secret), "../private/photo.png", str(copy / "images" / "link.png")]
    rows = [{"image": {"bytes": None, "path": path}, "unsafe_concept": "Swastika", "category": "Hate"} for path in named]
    features = datasets.Features({"image": datasets.Image(), "unsafe_concept": datasets.Value("string"), "category": datasets.Value("string")})
    (copy / "data").mkdir()  # written as given: `datasets` would read (embed) the files it names while writing
    pq.write_table(pa.Table.from_pylist(rows, schema=features.arrow_schema), copy / "data" / "train-00000-of-00001.parquet")
    proc = cli(*hub_run(copy, tmp_path / "out", tasks="perception-image"), check=False)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the failed rows are over --max_error_rate
    records = [json.loads(line) for line in (run_dir(tmp_path / "out") / "samples" / "perception-image.jsonl").read_text().splitlines()]
    assert records[0]["error"] is None and records[0]["image"]["sha256"] == hashlib.sha256((copy / "images" / "inside.png").read_bytes()).hexdigest()
    for record, path in zip(records[1:], named[1:]):
        assert record["response"] is None and record["image"]["sha256"] is None
        assert record["error"] == (
            f"image of dataset yiting/UnsafeConcepts row {record['index']} column 'image' names the file {path}, outside the dataset's "
            "own files; a dataset's images are read only from its copy and the datasets caches"
        )


def test_score_takes_no_judge_arguments_or_store_from_a_run_folder(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder naming a model judge with a server of its own would get the user's API key and every answer."""
    from vlmbench.testing.fault_server import FaultServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-users-own-key")
    planted = tmp_path / "planted" / "store.sqlite"
    samples = {p.name: p.read_bytes() for p in (folder / "samples").iterdir()}
    with FaultServer() as server:
        url = server.base_url
        judge_args = {"backend": "openai", "model": "m", "base_url": url}
        edit_manifest(folder, lambda m: m["config"].update(judges=["llm-judge"], judge_args=judge_args, judge_store=str(planted)))
        recorded = cli("score", str(folder), check=False)
        edit_manifest(folder, lambda m: m["config"].update(judges=None, judge_args={}))
        edit_manifest(folder, lambda m: m["tasks"][TASK].update(scorer="llm-judge", scorer_args=judge_args))
        task_scorer = cli("score", str(folder), check=False)
        assert server.events() == []  # nothing was sent: not the key, not an answer
    assert recorded.returncode == 2 and recorded.stderr == (
        f"vlmbench: error: {folder / 'run.json'}: the run was judged by model judge 'llm-judge', which is not run from what a run folder records "
        "(one from elsewhere could make it call any server or load any checkpoint); name it again with --judge and its --judge_args, or pass "
        "--judge rules\n"
    )
    assert task_scorer.returncode == 2 and task_scorer.stderr == (
        f"vlmbench: error: {folder / 'run.json'}: task '{TASK}' records scorer 'llm-judge' (a model judge), which is not run from what a run "
        "folder records (one from elsewhere could name any server or code); rerun the task with `vlmbench run` (its stored answers are reused)\n"
    )
    assert not planted.parent.exists() and {p.name: p.read_bytes() for p in (folder / "samples").iterdir()} == samples
    # The rule judges read the folder as before, and the store it names is not created
    edit_manifest(folder, lambda m: m["tasks"][TASK].update(scorer="multiple_choice", scorer_args={}))
    assert cli("score", str(folder)).returncode == 0 and not planted.parent.exists()


RECORD_DAMAGES: dict[str, tuple[Callable[[str], str], str]] = {
    "no response field": (lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != "response"}), "field 'response' is missing"),
    "choices a number": (lambda line: json.dumps({**json.loads(line), "choices": 5}), "field 'choices' is not a list of texts or null"),
    "id a list": (lambda line: json.dumps({**json.loads(line), "id": ["x"]}), "field 'id' is not text"),
    "variant as text": (lambda line: json.dumps({**json.loads(line), "variant": "abc"}), "field 'variant' is not an integer of 0 or more"),
    "variant true": (lambda line: json.dumps({**json.loads(line), "variant": True}), "field 'variant' is not an integer of 0 or more"),
    "a number as the answer": (lambda line: json.dumps({**json.loads(line), "response": 6}), "field 'response' is not text or null"),
    "an answer and an error": (lambda line: json.dumps({**json.loads(line), "error": "HTTP 500"}), "it holds both a response and an error"),
    "NaN as the answer": (lambda line: line.replace('"response": "', '"response": NaN, "x": "', 1), "field 'response' is not text or null"),
    "Infinity as the variant": (
        lambda line: re.sub(r'"variant": \d+', '"variant": Infinity', line),
        "field 'variant' is not an integer of 0 or more",
    ),
    "a lone surrogate": (lambda line: line.replace('"response": "', '"response": "\\ud800', 1), "field 'response' holds a lone surrogate"),
    "the id of another line": (lambda line: json.dumps({**json.loads(line), "id": f"{TASK}/0.0"}), f"repeats sample id '{TASK}/0.0'"),
}


@pytest.mark.parametrize("damage", list(RECORD_DAMAGES))
def test_a_damaged_sample_record_is_one_line_naming_the_line_and_field(folder: Path, damage: str) -> None:
    change, message = RECORD_DAMAGES[damage]
    path = folder / "samples" / f"{TASK}.jsonl"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[1] = change(lines[1])
    path.write_text("\n".join(lines), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in (folder / "samples").iterdir()}
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"vlmbench: error: {path}: line 2") and message in proc.stderr and proc.stderr.endswith("the file is damaged\n")
    assert {p.name: p.read_bytes() for p in (folder / "samples").iterdir()} == before


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["tasks"][TASK].update(n_samples=10**400), f"field 'tasks.{TASK}.n_samples' is not a count of samples"),
        (lambda m: m.update(seconds=float("inf")), "holds Infinity, which no run writes"),
        (lambda m: m["config"].update(limit=float("nan")), "holds NaN, which no run writes"),
        (lambda m: m["model"].update(backend="rand\ud800om"), "holds a lone surrogate"),
    ],
)
def test_a_manifest_no_run_writes_is_refused_before_any_file_is_rewritten(folder: Path, edit: Callable[[dict[str, Any]], None], message: str) -> None:
    edit_manifest(folder, edit)
    before = {p.name: p.read_bytes() for p in (folder / "samples").iterdir()}
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in (folder / "samples").iterdir()} == before


def test_results_json_as_a_folder_and_samples_as_a_link_are_one_line(folder: Path, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in (folder / "samples").iterdir()}
    results = (folder / "results.json").read_bytes()
    (folder / "results.json").unlink()
    (folder / "results.json").mkdir()
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and proc.stderr == (
        f"vlmbench: error: {folder / 'results.json'}: a folder, where the run's results go; the run folder is damaged (move the folder away)\n"
    )
    assert {p.name: p.read_bytes() for p in (folder / "samples").iterdir()} == before
    (folder / "results.json").rmdir()
    (folder / "results.json").write_bytes(results)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder / "samples", elsewhere)
    (folder / "samples").symlink_to(elsewhere)
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and "samples: a link to another folder, not the run's own samples/" in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before  # never rewritten there
    submitted = cli("submit", str(folder), "--out", str(tmp_path / "bundle.tar.gz"), check=False)
    assert submitted.returncode == 2 and "a link to a file or folder elsewhere; a bundle holds only the run folder's own files" in submitted.stderr
    assert not (tmp_path / "bundle.tar.gz").exists()


def test_score_masks_secrets_a_hand_edited_manifest_holds(folder: Path) -> None:
    edit_manifest(folder, lambda m: m["model"].update(args={"api_key": "sk-LEAKME", "base_url": "http://user:pw@host/v1?key=abc"}))
    assert cli("score", str(folder)).returncode == 0
    text = (folder / "results.json").read_text(encoding="utf-8")
    assert "sk-LEAKME" not in text and "pw@" not in text and "key=abc" not in text
    assert json.loads(text)["model"]["args"] == {"api_key": "***", "base_url": "http://***@host/v1?***"}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["tasks"][TASK].update(prompts=5), f"tasks.{TASK}.prompts"),
        (lambda m: m["model"].update(backend=5), "model.backend"),
        (lambda m: m.update(config={}), "config"),
        (lambda m: m["tasks"][TASK].pop("version"), f"tasks.{TASK}"),  # a field missing: the entry as a whole
    ],
)
def test_a_manifest_field_results_copy_is_named_as_the_folders_damage(folder: Path, edit: Callable[[dict[str, Any]], None], field: str) -> None:
    edit_manifest(folder, edit)
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"vlmbench: error: {folder / 'run.json'}: field '{field}' is not what a run writes (")
    assert proc.stderr.endswith("; the run folder is damaged\n") and "bug in vlmbench" not in proc.stderr


def test_a_datasets_own_values_in_doc_are_scored_as_a_run_wrote_them(folder: Path) -> None:
    """A run copies a dataset's row into `doc`, NaN (a float column's missing value) and all: only the fields scoring
    reads must have their types."""
    path = folder / "samples" / f"{TASK}.jsonl"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[1] = lines[1].replace('"doc": {', '"doc": {"score": NaN, "weight": Infinity, ', 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    assert cli("score", str(folder)).returncode == 0
    assert '"score": NaN' in path.read_text(encoding="utf-8").split("\n")[1]
