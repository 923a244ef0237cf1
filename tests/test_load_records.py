"""A local copy's load is remembered: a re-run reads its Arrow files without ``datasets``, while the copy
and those files are unchanged, and reads the same rows as ``datasets`` does."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from conftest import cli, hub_run, read_samples, unsafeconcepts_parquet
from vlmbench.data import loadrecords
from vlmbench.data.arrowdata import ArrowData
from vlmbench.data.loadrecords import LoadRecords, copy_identity, load_key

TASKS = ("perception-image", "alignment-image")


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16 + seed, 12), (seed * 40 % 256, 20, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def answered(output: Path, *tasks: str) -> dict[str, list[Any]]:
    """What each task's samples hold that the data decides: documents, prompts, image hashes, answers."""
    return {
        task: [(r["doc"], r["prompt"], (r.get("image") or {}).get("sha256"), r.get("response")) for r in read_samples(output, task)]
        for task in tasks or TASKS
    }


def datasets_recorded(output: Path) -> list[Any]:
    results = json.loads(next(output.glob("*/*/results.json")).read_text())
    return [(d["fingerprint"], d["num_rows"]) for d in results["tasks"]["perception-image"]["datasets"]]


@pytest.fixture
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies written by the test count as settled at once (a real copy is older than the clock's tick)."""
    monkeypatch.setattr(loadrecords, "RECENT_NS", 0)


def test_a_rerun_reads_a_local_copy_without_datasets_and_gets_the_same_rows(tmp_path: Path, settled_at_once: None) -> None:
    copy = unsafeconcepts_parquet(tmp_path / "copy", [png(i) for i in range(6)])
    env = {"VLMBENCH_CACHE_DIR": str(tmp_path / "cache")}
    cli(*hub_run(copy, tmp_path / "first", "--no_store", tasks="perception-image"), env=env)
    assert len(list((tmp_path / "cache" / "loads").glob("*.json"))) == 1

    script = (
        "import sys; from vlmbench.cli import main; code = main(sys.argv[1:]); print('datasets imported:', 'datasets' in sys.modules); sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *hub_run(copy, tmp_path / "second", "--no_store", tasks="perception-image")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "datasets imported: False" in proc.stdout
    assert answered(tmp_path / "second", "perception-image") == answered(tmp_path / "first", "perception-image")
    assert len(answered(tmp_path / "first", "perception-image")["perception-image"]) == 6
    assert datasets_recorded(tmp_path / "second") == datasets_recorded(tmp_path / "first")


def test_a_changed_copy_or_cache_is_loaded_again(tmp_path: Path, settled_at_once: None) -> None:
    copy = unsafeconcepts_parquet(tmp_path / "copy", [png(i) for i in range(6)])
    env = {"VLMBENCH_CACHE_DIR": str(tmp_path / "cache")}
    cli(*hub_run(copy, tmp_path / "a", "--no_store"), env=env)
    (record,) = (tmp_path / "cache" / "loads").glob("*.json")

    # Other rows in the same file: datasets reads it again.
    unsafeconcepts_parquet(copy, [png(i) for i in range(10, 15)])
    cli(*hub_run(copy, tmp_path / "b", "--no_store"), env=env)
    assert len(answered(tmp_path / "b")["perception-image"]) == 5
    assert answered(tmp_path / "b")["perception-image"][0][2] != answered(tmp_path / "a")["perception-image"][0][2]

    # The Arrow files it remembered are gone (a cleaned cache): datasets builds them again.
    for name, _ in json.loads(record.read_text())["files"]:
        shutil.rmtree(Path(name).parent, ignore_errors=True)
    cli(*hub_run(copy, tmp_path / "c", "--no_store"), env=env)
    assert answered(tmp_path / "c") == answered(tmp_path / "b")

    # A record it did not write is ignored: damaged, lying about the features, the files or the row count,
    # naming a file no file can be, or not a regular file at all.
    kept = json.loads(record.read_text())
    features = kept["features"]
    damaged = [
        "{",
        "[]",
        json.dumps({**kept, "num_rows": "5"}),
        json.dumps({**kept, "features": {**features, "category": {"_type": "Image"}}}),
        json.dumps({**kept, "features": {**features, "image": {"_type": "Value", "dtype": "string"}}}),
        json.dumps({**kept, "features": {**features, "image": {"_type": "Image", "mode": "L"}}}),
        json.dumps({**kept, "files": kept["files"] * 2, "num_rows": 2 * kept["num_rows"]}),
        json.dumps({**kept, "files": [["/tmp/a\u0000b", "x"]]}),
        json.dumps({**kept, "files": [["/tmp/\ud800", "x"]]}),
        None,  # a FIFO in the record's place
    ]
    for number, text in enumerate(damaged):
        record.unlink(missing_ok=True)
        if text is None:
            os.mkfifo(record)
        else:
            record.write_text(text)
        cli(*hub_run(copy, tmp_path / f"d{number}", "--no_store"), env=env)
        assert answered(tmp_path / f"d{number}") == answered(tmp_path / "b"), text


def test_a_folder_named_like_a_data_file_is_a_folder(tmp_path: Path) -> None:
    copy = unsafeconcepts_parquet(tmp_path / "UnsafeConcepts.parquet", [png(i) for i in range(3)])  # as Spark and Dask name them
    cli(*hub_run(copy, tmp_path / "a", "--no_store", tasks="perception-image"), env={"VLMBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert len(answered(tmp_path / "a", "perception-image")["perception-image"]) == 3


def test_a_copy_written_just_now_is_not_remembered(tmp_path: Path) -> None:
    copy = unsafeconcepts_parquet(tmp_path / "copy", [png(i) for i in range(3)])
    cli(*hub_run(copy, tmp_path / "a", "--no_store"), env={"VLMBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert not list((tmp_path / "cache" / "loads").glob("*.json"))  # a change within the clock's tick could go unseen


def test_data_that_datasets_decodes_is_never_remembered(tmp_path: Path, settled_at_once: None) -> None:
    import datasets

    folder = tmp_path / "saved"
    features = datasets.Features({"concept": datasets.Value("string"), "extra": datasets.Json()})
    datasets.Dataset.from_dict({"concept": ["a", "b"], "extra": [{"x": 1}, [2]]}, features=features).save_to_disk(str(folder))
    loaded = ArrowData.of_dataset(datasets.load_from_disk(str(folder)))
    assert loaded.rows(["extra"]) == [{"extra": {"x": 1}}, {"extra": [2]}]  # decoded by datasets, not raw JSON text
    records = LoadRecords(tmp_path / "loads")
    key = load_key("load_from_disk", folder, None, "train")
    records.keep(key, folder, copy_identity(folder), time.time_ns(), loaded)
    assert not list((tmp_path / "loads").glob("*.json")) and records.open(key, folder) is None

    plain = tmp_path / "plain"
    datasets.Dataset.from_dict({"concept": ["a", "b"], "n": [[1], [2, 3]]}).save_to_disk(str(plain))
    loaded = ArrowData.of_dataset(datasets.load_from_disk(str(plain)))
    key = load_key("load_from_disk", plain, None, "train")
    records.keep(key, plain, copy_identity(plain), time.time_ns(), loaded)
    reopened = records.open(key, plain)
    assert reopened is not None and reopened.dataset is None
    assert reopened.rows(["concept", "n"]) == loaded.rows(["concept", "n"]) == [{"concept": "a", "n": [1]}, {"concept": "b", "n": [2, 3]}]
    assert (reopened.fingerprint, reopened.features) == (loaded.fingerprint, loaded.features)
