"""Run folders come from elsewhere too (a colleague's, a download): `vlmbench score` and `vlmbench view`
read them as data. A damaged or crafted run.json or samples file is one line naming the field, exit 2,
and nothing outside the run folder is ever read as its samples or written."""

from __future__ import annotations

import hashlib
import json
import os
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
