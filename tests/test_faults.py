"""Faulty input stays harmless: bad images, missing columns, damaged or full stores, concurrent runs on one store.

Everything is real: image files on disk, SQLite files corrupted byte by byte, a file-size limit
(RLIMIT_FSIZE) as a full disk, and several ``vlmbench run`` processes against the fault server,
which counts every request it receives.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from conftest import cli, hub_run, require_modules, run_dir, vlmbench
from vlmbench.backend import Response
from vlmbench.cli import main
from vlmbench.errors import UserError
from vlmbench.store import ResponseStore
from vlmbench.testing.fault_server import FaultServer

require_modules("openai")

CONCURRENCY = 4
CONCEPTS = [("Swastika", "Hate"), ("Gun violence", "Violence"), ("Knife attacks", "Violence"), ("sexual harassment", "Harassment")]


# --- helpers --------------------------------------------------------------------------------


def png(width: int, height: int, noise: bool = False) -> bytes:
    """A PNG image; with ``noise``, random pixels (so that half of the file is half of the data)."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)) if noise else Image.new("RGB", (width, height), (200, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b"")


def png_with_rows_missing() -> bytes:
    """A PNG whose chunks are whole (checksums right, IEND last) but whose pixel data holds half of its rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80" * 48 for _ in range(8))  # 8 of 16 rows of 16 RGB pixels
    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def webp_with_damaged_exif() -> bytes:
    """A WebP file whose EXIF block is no TIFF data (Pillow raises SyntaxError reading it)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 200, 30)).save(buffer, format="WEBP", exif=b"garbage-not-tiff")
    return buffer.getvalue()


# name -> (encoded bytes, what the sample's error must say)
BAD = {
    "empty": (b"", "empty (0 bytes)"),
    "truncated": (png(64, 64, noise=True)[:6000], "truncated"),
    "garbage": (b"this is not an image\n" * 20, "not an image"),
    "bomb": (bomb(20_000, 20_000), "decompression bomb"),
    "large": (bomb(10_000, 10_000), "decompression bomb"),  # Pillow only warns at this size; vlmbench refuses it
    "damaged-exif": (webp_with_damaged_exif(), "damaged EXIF"),  # was a traceback that ended the run
    "rows-missing": (png_with_rows_missing(), "PNG pixel data ends early"),  # was sent as stored and its answer scored
}
GOOD = 3


def rows() -> list[tuple[str, bytes, str, str]]:
    """(name, image bytes, concept, category): the good images first, then one of each bad kind."""
    images = [(f"good{i}", png(16 + i, 16), *CONCEPTS[i % 4]) for i in range(GOOD)]
    return images + [(name, data, *CONCEPTS[i % 4]) for i, (name, (data, _)) in enumerate(BAD.items())]


def image_folder(folder: Path) -> Path:
    """An image folder (files plus metadata.jsonl), as ``datasets`` loads it."""
    folder.mkdir(parents=True)
    lines = []
    for name, data, concept, category in rows():
        (folder / f"{name}.png").write_bytes(data)
        lines.append(json.dumps({"file_name": f"{name}.png", "unsafe_concept": concept, "category": category}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def embedded(folder: Path, kind: str) -> Path:
    """The same rows with the image bytes inside the data: parquet files or a save_to_disk folder."""
    import datasets

    table = rows()
    data = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": data, "path": None} for _, data, _, _ in table],
            "unsafe_concept": [concept for _, _, concept, _ in table],
            "category": [category for _, _, _, category in table],
        },
        features=datasets.Features({"image": datasets.Image(), "unsafe_concept": datasets.Value("string"), "category": datasets.Value("string")}),
    )
    if kind == "parquet":
        (folder / "data").mkdir(parents=True)
        data.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    else:
        data.save_to_disk(str(folder))
    return folder


def records(output: Path, task: str) -> list[dict[str, Any]]:
    lines = (run_dir(output) / "samples" / f"{task}.jsonl").read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda r: r["index"])


# Bad only in the pixel data: found by a backend that decodes or sends the stored bytes, not by a baseline (which
# never looks at pixels).
PIXELS_ONLY = {"rows-missing"}


def check_bad_rows(output: Path, task: str, prompts: int, folder: Path | None, pixels: bool = True) -> None:
    """Every bad image is its sample's error (naming the image and the reason); every good one an answer.
    ``pixels``: whether the backend looked at the pixel data (see :data:`PIXELS_ONLY`)."""
    found = records(output, task)
    assert len(found) == (GOOD + len(BAD)) * prompts
    for record in found:
        row = record["image"]["row"]
        name = list(BAD)[row - GOOD] if row >= GOOD else None
        if name is None or (name in PIXELS_ONLY and not pixels):
            assert record["error"] is None and record["response"], record
            continue
        assert record["response"] is None and record["parsed"] is None, record
        assert f"image of dataset yiting/UnsafeConcepts row {row} column 'image'" in record["error"]
        assert BAD[name][1] in record["error"], (name, record["error"])
        if folder is not None:
            assert str(folder / f"{name}.png") in record["error"]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("vlmbench: error:")]


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a failed command (and no traceback)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    return lines[0]


def openai_run(url: str, store: Path, output: Path, *extra: str, tasks: str = "alignment-text") -> list[str]:
    return [
        sys.executable,
        "-m",
        "vlmbench",
        "run",
        "--model",
        "openai",
        "--model_args",
        f"base_url={url},model=tiny,num_concurrent={CONCURRENCY}",
        "--tasks",
        tasks,
        "--store",
        str(store),
        "--output_path",
        str(output),
        *extra,
    ]


def count(store: Path, table: str = "responses") -> int:
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def counts_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("requests:"))


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(latency=0.02) as running:
        yield running


# --- 8. bad images ----------------------------------------------------------------------------


def test_bad_images_in_an_image_folder_are_sample_errors_and_a_rerun_gets_past_them(tmp_path: Path, server: FaultServer) -> None:
    folder = image_folder(tmp_path / "UnsafeConcepts")
    store = tmp_path / "store.sqlite"
    model = ["--model_args", f"base_url={server.base_url},model=tiny", "--store", str(store)]
    first = vlmbench(*hub_run(folder, tmp_path / "a", *model, model="openai"), check=False)
    assert first.returncode == 1 and "Traceback" not in first.stderr  # 7 of 10 images are bad: over --max_error_rate
    assert f"failed requests {100 * len(BAD) / (GOOD + len(BAD)):.1f}% exceed --max_error_rate" in first.stderr
    check_bad_rows(tmp_path / "a", "perception-image", 1, folder)
    check_bad_rows(tmp_path / "a", "alignment-image", 5, folder)
    assert server.stats()["requests"] == GOOD * 6  # a bad image is never sent
    assert count(store) == GOOD * 6  # ... and never stored
    # The rerun does not die at the same images: it reuses every answer and records the same errors. An image bad
    # only in its pixel data is found inside the backend, where its request is built: each run hands it over again,
    # and it never reaches the server.
    again = vlmbench(*hub_run(folder, tmp_path / "b", *model, "--max_error_rate", "1", model="openai"))
    assert counts_line(again.stderr) == f"requests: {len(PIXELS_ONLY) * 6} sent to the model, {GOOD * 6} reused from the response store"
    check_bad_rows(tmp_path / "b", "alignment-image", 5, folder)
    assert server.stats()["requests"] == GOOD * 6


@pytest.mark.parametrize("kind", ["parquet", "save_to_disk"])
def test_bad_image_bytes_inside_the_data_are_sample_errors(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = embedded(tmp_path / "UnsafeConcepts", kind)
    assert main(hub_run(data, tmp_path / "out", "--max_error_rate", "0.7")) == 0
    check_bad_rows(tmp_path / "out", "perception-image", 1, None, pixels=False)
    check_bad_rows(tmp_path / "out", "alignment-image", 5, None, pixels=False)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "DecompressionBombWarning" not in err


@pytest.mark.parametrize(
    ("columns", "task", "missing"),
    [
        ({"picture", "unsafe_concept", "category"}, "perception-image", "image"),
        ({"image", "category"}, "alignment-text", "concept"),
        ({"image", "unsafe_concept"}, "alignment-image", "category"),
    ],
)
def test_a_missing_column_is_one_line_up_front(
    columns: set[str], task: str, missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datasets

    values = {"image": [Image.new("RGB", (8, 8))] * 2, "unsafe_concept": ["Swastika", "Gun violence"], "category": ["Hate", "Violence"]}
    values["picture"] = values["image"]
    datasets.Dataset.from_dict({k: v for k, v in values.items() if k in columns}).save_to_disk(str(tmp_path / "copy"))
    assert main(hub_run(tmp_path / "copy", tmp_path / "out", tasks=f"perception-text,{task}")) == 2
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err
    assert f"dataset yiting/UnsafeConcepts (loaded from {tmp_path / 'copy'}) has no column '{missing}'" in lines[0]
    assert "its columns: " in lines[0]
    assert not list((tmp_path / "out").glob("*/*/samples/*.jsonl"))  # up front: before any task ran


# --- 8. the store: damaged, unwritable folder, full disk ----------------------------------------


def corrupt_a_page_in_the_middle(store: Path) -> int:
    """Overwrite one leaf page of the responses table, in the middle of the file; returns its rows."""
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db.execute("PRAGMA page_size").fetchone()[0]
        leaves = [p for (p,) in db.execute("SELECT pageno FROM dbstat WHERE name = 'responses' AND pagetype = 'leaf' ORDER BY pageno")]
        page = leaves[len(leaves) // 2]
        on_page = db.execute("SELECT ncell FROM dbstat WHERE pageno = ?", (page,)).fetchone()[0]
    db.close()
    with open(store, "r+b") as file:
        file.seek((page - 1) * size)
        file.write(b"\xff" * size)
    return int(on_page)


def test_a_damaged_store_is_one_line_and_salvage_keeps_what_is_readable(tmp_path: Path, server: FaultServer) -> None:
    store = tmp_path / "store.sqlite"
    limit = ("--limit", "30")  # 150 answers: enough pages for one in the middle to be lost
    # In-process (the same code as the command; no process boundary is tested here).
    cli(*openai_run(server.base_url, store, tmp_path / "a", *limit)[3:])
    total = count(store)
    assert total == 150
    lost = corrupt_a_page_in_the_middle(store)
    assert 0 < lost < total
    damaged = store.read_bytes()
    server.reset()
    line = one_line_error(cli(*openai_run(server.base_url, store, tmp_path / "b", *limit)[3:], check=False))
    assert f"response store {store} is damaged" in line and f"vlmbench cache salvage {store}" in line
    assert server.stats()["requests"] == 0  # found before anything was sent
    assert one_line_error(cli("cache", "info", "--store", str(store), check=False)) == line
    # --out leaves the damaged file alone; in place, it is kept beside the new store.
    elsewhere = cli("cache", "salvage", str(store), "--out", str(tmp_path / "copy.sqlite"))
    assert f"salvaged {total - lost} responses into {tmp_path / 'copy.sqlite'}" in elsewhere.stdout
    assert store.read_bytes() == damaged
    salvaged = cli("cache", "salvage", str(store))
    assert f"salvaged {total - lost} responses into {store}, 1 damaged part(s) skipped" in salvaged.stdout
    assert (tmp_path / "store.sqlite.damaged").read_bytes() == damaged
    assert count(store) == total - lost
    rerun = cli(*openai_run(server.base_url, store, tmp_path / "c", *limit)[3:])
    assert counts_line(rerun.stderr) == f"requests: {lost} sent to the model, {total - lost} reused from the response store"


def test_a_store_that_is_no_database_or_has_no_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    (tmp_path / "torn.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 1000)  # a SQLite file, damaged from its first page
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    cases = {
        tmp_path / "notes.txt": "is not a response store (no SQLite database: it does not start with 'SQLite format 3'); pass --store",
        tmp_path / "torn.sqlite": "is damaged (file is not a database); copy its readable responses into a new store with: vlmbench cache salvage",
        blocker / "sub" / "store.sqlite": f"cannot create its folder {blocker / 'sub'} (Not a directory); pass --store",
        tmp_path: "is a folder; pass --store a file path",
    }
    for path, expected in cases.items():
        with pytest.raises(UserError) as raised:
            ResponseStore(path)
        assert expected in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("text", ['{"important": 1}\n', "{}", "x"])
def test_a_file_that_is_no_sqlite_database_is_no_store_and_salvage_leaves_it_alone(text: str, tmp_path: Path, server: FaultServer) -> None:
    """A JSON file named as the store: SQLite calls it damaged ("file is not a database"), which sent the user to
    salvage, which renamed it to results.json.damaged and put an empty store in its place."""
    folder = tmp_path / "salv"
    folder.mkdir()
    path = folder / "results.json"
    path.write_text(text)
    before = path.read_bytes()
    refused = f"{path} is not a response store (no SQLite database: it does not start with 'SQLite format 3')"
    salvaged = cli("cache", "salvage", str(path), check=False)
    assert (salvaged.returncode, salvaged.stdout, salvaged.stderr) == (
        2,
        "",
        f"vlmbench: error: cache salvage: {refused}; nothing was changed; pass the path of a damaged response store\n",
    )
    salvaged = cli("cache", "salvage", str(path), "--out", str(folder / "new.sqlite"), check=False)
    assert salvaged.returncode == 2 and salvaged.stderr.startswith(f"vlmbench: error: cache salvage: {refused}; nothing was changed")
    for args in (
        ("cache", "info", "--store", str(path)),
        ("cache", "clear", "--store", str(path)),
        openai_run(server.base_url, path, tmp_path / "o")[3:],
    ):
        proc = cli(*args, check=False)
        assert (proc.returncode, proc.stderr) == (2, f"vlmbench: error: {refused}; pass --store a response store or a new file path\n"), args
    assert server.stats()["requests"] == 0
    assert path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["results.json"]  # nothing renamed, made or beside it
    assert not (tmp_path / "o").exists()


def test_salvaging_a_store_that_is_not_damaged_keeps_it_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = ResponseStore(path, provenance={"python": "3.11"})
    for i in range(3):
        assert put(store, key(i))
    store.close()
    before = path.read_bytes()
    for _ in range(2):  # again: still nothing to do, and no earlier salvage in the way
        proc = cli("cache", "salvage", str(path))
        assert proc.stdout == f"nothing to salvage: {path} is not damaged (all 3 responses read as stored); it is kept as it is\n"
        assert path.read_bytes() == before and not (tmp_path / "store.sqlite.damaged").exists()
    empty = tmp_path / "empty.sqlite"  # an empty file is a new store
    empty.touch()
    proc = cli("cache", "salvage", str(empty))
    assert proc.stdout == f"nothing to salvage: {empty} is not damaged (all 0 responses read as stored); it is kept as it is\n"
    assert empty.read_bytes() == b"" and not (tmp_path / "empty.sqlite.damaged").exists()
    copied = cli("cache", "salvage", str(path), "--out", str(tmp_path / "copy.sqlite"))  # a copy elsewhere is still made
    assert copied.stdout == f"salvaged 3 responses into {tmp_path / 'copy.sqlite'}; {path} is unchanged\n" and count(tmp_path / "copy.sqlite") == 3
    # Another program's database is no store either: salvage neither moves it nor writes a store beside it.
    other = tmp_path / "places.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE bookmarks (url TEXT)")
        db.commit()
    before = other.read_bytes()
    proc = cli("cache", "salvage", str(other), check=False)
    assert (proc.returncode, proc.stderr) == (
        2,
        f"vlmbench: error: cache salvage: {other} is not a response store (another program's database: tables bookmarks); nothing was "
        "changed; pass the path of a damaged response store\n",
    )
    assert other.read_bytes() == before and not (tmp_path / "places.sqlite.damaged").exists()


def test_a_store_whose_index_disagrees_with_its_rows_is_salvaged(tmp_path: Path) -> None:
    """An index entry pointing at the wrong row passes the quick check a store makes when it opens, but a run's look-up
    through it fails as "damaged": salvage said "nothing to salvage", and the user went round in a loop."""
    path = tmp_path / "store.sqlite"
    store = ResponseStore(path)
    for i in range(3):
        assert put(store, key(i))
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'responses'").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    page = (root - 1) * page_size
    at = data.index(key(1).encode(), page, page + page_size) + 64  # the row id stored after the key in the index entry
    data[at] += 40
    path.write_bytes(bytes(data))
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok" and db.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    proc = cli("cache", "salvage", str(path))
    assert proc.stdout.startswith(f"salvaged 3 responses into {path}") and count(path) == 3


def with_file_size_limit(command: list[str], limit: int) -> list[str]:
    """``command`` (a ``python -m vlmbench`` line) in a Python that first limits the size of any file it writes
    (RLIMIT_FSIZE): a write past ``limit`` bytes fails with EFBIG, as on a full disk (Python ignores SIGXFSZ).
    Set in the child itself: ``preexec_fn`` is unsafe while the fault server's threads run."""
    assert command[1:3] == ["-m", "vlmbench"]
    setup = f"import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); sys.argv = ['vlmbench', *sys.argv[1:]]"
    return [command[0], "-c", f"{setup}; runpy.run_module('vlmbench', run_name='__main__')", *command[3:]]


def test_a_full_disk_stops_the_run_and_keeps_every_stored_answer(tmp_path: Path, server: FaultServer) -> None:
    store = tmp_path / "store.sqlite"
    cli(*openai_run(server.base_url, store, tmp_path / "a", "--limit", "10")[3:])  # in-process: only the limited run needs its own process
    before = count(store)
    assert before == 50
    server.reset()
    # A file may not grow past 300 kB: the store's write-ahead log reaches it after a few answers.
    proc = subprocess.run(
        with_file_size_limit(openai_run(server.base_url, store, tmp_path / "b", "--limit", "40"), 300_000), capture_output=True, text=True
    )
    line = one_line_error(proc)
    assert f"response store {store}: cannot " in line  # the write that hits the limit: an answer, or a claim on the next request
    assert "every response stored before is kept" in line and "rerun the same command" in line
    stored = count(store)  # the file is intact
    assert stored > before
    sent = server.stats()["requests"]
    # lost: the answer whose write failed and the others sent before it was stored: the backend sends at most
    # 2 x CONCURRENCY ahead of the answers the run has taken; nothing more was sent
    assert sent - (stored - before) <= 2 * CONCURRENCY, f"sent {sent}, stored {stored - before} of them; {proc.stderr}"
    server.reset()
    rerun = cli(*openai_run(server.base_url, store, tmp_path / "c", "--limit", "40")[3:])
    assert counts_line(rerun.stderr) == f"requests: {200 - stored} sent to the model, {stored} reused from the response store"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_under_the_samples_file_is_one_line() -> None:
    from vlmbench.runner import _SamplesWriter

    with pytest.raises(UserError) as raised, open("/dev/full", "w", encoding="utf-8") as out:  # leaving the file raises nothing more
        _SamplesWriter(out, None).add({"id": "x"})  # type: ignore[typeddict-item]
    assert str(raised.value).startswith("cannot write /dev/full (No space left on device); free disk space")


# --- 9. concurrent runs share one store ---------------------------------------------------------


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def put(store: ResponseStore, k: str, text: str | None = "Yes.", error: str | None = None) -> bool:
    return store.put(k, backend="openai", model={"model": "tiny"}, task="t", response=Response("r", text=text, error=error))


def test_a_crafted_claim_never_makes_a_run_wait_for_ever(tmp_path: Path) -> None:
    """A store may come from elsewhere: a claim whose owner is not text, names process 0 of this host (which
    would signal this process's own group), or expires further ahead than any heartbeat sets (or not at all)
    holds nothing; another host's claim that a heartbeat could have set still does."""
    import socket
    import sqlite3
    import time

    store = ResponseStore(tmp_path / "s.sqlite")
    assert store.claim(key(0)).outcome == "claimed"  # the tables exist
    here = socket.gethostname()
    rows = {
        1: (b"otherhost:1:ab", time.time() + 30),
        2: (f"{here}:0:ab", 1e18),
        3: (f"{here}:0:ab", time.time() + 30),
        4: ("otherhost:1:ab", 1e18),
        5: ("otherhost:1:ab", "tomorrow"),
        6: ("otherhost:1:ab", time.time() + 30),  # a live claim of another host: busy
        7: (f"{here}:\u00b2:ab", time.time() + 30),  # a digit str.isdigit takes and int refuses: no process id, trust the expiry
        8: (f"{here}:{'9' * 5000}:ab", time.time() + 30),  # more digits than int reads
        9: (f"{here}:4294967296:ab", time.time() + 30),  # past any process id (os.kill raised OverflowError): nobody
    }
    db = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    for number, (owner, expires) in rows.items():
        db.execute("INSERT INTO claims (key, owner, expires) VALUES (?, ?, ?)", (key(number), owner, expires))
    db.close()
    outcomes = {number: store.claim(key(number)).outcome for number in rows}
    assert outcomes == {1: "claimed", 2: "claimed", 3: "claimed", 4: "claimed", 5: "claimed", 6: "busy", 7: "busy", 8: "busy", 9: "claimed"}
    store.close()


def test_cache_info_reads_a_crafted_store_as_data(tmp_path: Path) -> None:
    """Identities that are not objects, times no calendar holds and escape sequences in what a store names:
    `vlmbench cache info` still lists every entry, each cell inert text."""
    import sqlite3

    store = ResponseStore(tmp_path / "s.sqlite")
    for i in range(6):
        assert put(store, key(i))
    store.close()
    db = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    crafted = [
        ("openai", "[1, 2]", "abc"),
        ("openai", "7", 1e300),
        ("openai", r'{"model": "x\u001b[2J\u202e", "args": {"k": "\u001b]0;title\u0007"}}', -1e18),  # escaped in the JSON text
        ("ba\x1b[31mckend", '{"model": "m"}', 1.0),
        ("openai", "not json", "yesterday"),
        ("openai", '{"model": {"deep": [[[["x"]]]]}}', float("inf")),
    ]
    for i, (backend, model, created) in enumerate(crafted):
        db.execute("UPDATE responses SET backend = ?, model = ?, created = ? WHERE key = ?", (backend, model, created, key(i)))
    db.close()
    proc = cli("cache", "info", "--store", str(tmp_path / "s.sqlite"))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout and "\x07" not in proc.stdout
    rows = proc.stdout.splitlines()[3:]
    assert len(rows) == 6 and sum(row.split()[-1] == "-" for row in rows) >= 4  # times no calendar holds are "-"
    assert any("ba\ufffd[31mckend" in row for row in rows) and any("x\ufffd[2J\ufffd" in row for row in rows)


def test_a_store_with_a_view_or_of_another_program_is_refused_untouched(tmp_path: Path) -> None:
    """A SQLite file from elsewhere: a view where a store has a table (a recursive one never ends: salvage read
    its rows until memory ran out, a run's claims waited on it for ever), or another program's database (`cache
    info` gave it the store's tables and WAL mode). Salvage reads the tables and leaves views out."""
    store = ResponseStore(tmp_path / "s.sqlite")
    assert put(store, key(1))
    store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)) as db:
        db.execute("DROP TABLE provenance")
        endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
        db.execute(f"CREATE VIEW provenance AS {endless} SELECT printf('%016x', x) AS digest, '{{}}' AS provenance FROM c")
    other = tmp_path / "places.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE bookmarks (url TEXT)")
        db.commit()
    before = other.read_bytes()
    for path, expected in (
        (tmp_path / "s.sqlite", "holds 'view provenance', which a response store never has"),
        (other, "is another program's database (tables: bookmarks)"),
    ):
        proc = cli("cache", "info", "--store", str(path), check=False)
        assert (proc.returncode, proc.stderr) == (
            2,
            f"vlmbench: error: response store {path} {expected}; pass --store a response store or a new file path\n",
        )
    assert other.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("places")) == ["places.sqlite"]
    salvaged = cli("cache", "salvage", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "new.sqlite"))
    assert salvaged.stdout.startswith(f"salvaged 1 responses into {tmp_path / 'new.sqlite'};")
    # A view of the user's own under another name is harmless; a trigger on a store table is not.
    with contextlib.closing(sqlite3.connect(tmp_path / "new.sqlite", isolation_level=None)) as db:
        db.execute("CREATE VIEW by_backend AS SELECT backend, count(*) AS n FROM responses GROUP BY backend")
    info = cli("cache", "info", "--store", str(tmp_path / "new.sqlite"), check=False)
    assert info.returncode == 0 and info.stdout.startswith(f"response store: {tmp_path / 'new.sqlite'} ("), info.stderr
    with contextlib.closing(sqlite3.connect(tmp_path / "new.sqlite", isolation_level=None)) as db:
        db.execute(f"CREATE TRIGGER slow AFTER INSERT ON claims BEGIN {endless} SELECT count(*) FROM c; END")
    proc = cli("cache", "info", "--store", str(tmp_path / "new.sqlite"), check=False)
    assert proc.returncode == 2 and "holds 'trigger slow', which a response store never has" in proc.stderr


def test_cache_commands_show_a_store_path_from_the_environment_inert(tmp_path: Path) -> None:
    """$VLMBENCH_STORE and $VLMBENCH_CACHE_DIR may hold an escape sequence or a byte that is no UTF-8 (a lone
    surrogate to Python, which a UTF-8 terminal's strict encoding cannot print: a traceback)."""
    store = ResponseStore(tmp_path / "s.sqlite")
    assert put(store, key(1))
    store.close()
    odd = tmp_path / "a\x1b[2J\udcffb.sqlite"
    odd.write_bytes((tmp_path / "s.sqlite").read_bytes())
    runs = [({"VLMBENCH_STORE": str(odd)}, args) for args in (("info",), ("salvage", "--out", str(tmp_path / "new.sqlite")), ("clear",))]
    for env, args in [*runs, ({"VLMBENCH_STORE": "", "VLMBENCH_CACHE_DIR": str(tmp_path / "c\x1b]0;x\x07")}, ("info",))]:
        proc = cli("cache", *args, env=env)
        assert proc.stdout.encode("utf-8") and "\x1b" not in proc.stdout and "\x07" not in proc.stdout, proc.stdout
        assert "a\ufffd[2J\ufffdb.sqlite" in proc.stdout or "c\ufffd]0;x\ufffd" in proc.stdout, proc.stdout


def test_a_store_path_that_is_no_regular_file_is_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.sqlite"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        proc = cli("cache", "info", "--store", str(path), check=False)
        assert proc.returncode == 2
        assert proc.stderr == f"vlmbench: error: response store {path} is not a regular file; pass --store a file path (a new one, or a store file)\n"


def test_claims_between_two_stores(tmp_path: Path) -> None:
    one, two = ResponseStore(tmp_path / "s.sqlite"), ResponseStore(tmp_path / "s.sqlite")
    assert one.claim(key(1)).outcome == "claimed"
    assert one.claim(key(1)).outcome == "claimed"  # its own claim
    assert two.claim(key(1)).outcome == "busy"
    assert put(one, key(1))
    found = two.claim(key(1))
    assert found.outcome == "stored" and found.response is not None and found.response.text == "Yes."
    # A failed request releases its claim: another run may try.
    assert one.claim(key(2)).outcome == "claimed"
    assert not put(one, key(2), text=None, error="HTTP 500")
    assert two.claim(key(2)).outcome == "claimed"
    two.release_all()
    assert count(tmp_path / "s.sqlite", "claims") == 0
    one.close()
    two.close()


def test_claims_of_dead_or_silent_owners_are_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = ResponseStore(path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host = os.uname().nodename
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO claims (key, owner, expires) VALUES (?, ?, ?)",
            [
                (key(1), f"{host}:{dead.stdout.strip()}:aa", time.time() + 600),  # a process of this host that is gone
                (key(2), "elsewhere:1:bb", time.time() - 1),  # another host that stopped extending its claim
                (key(3), "elsewhere:1:cc", time.time() + 600),  # another host, still extending
            ],
        )
    assert [store.claim(key(i)).outcome for i in (1, 2, 3)] == ["claimed", "claimed", "busy"]
    store.close()


def test_a_live_runs_claims_are_kept_alive_by_its_heartbeat(tmp_path: Path) -> None:
    owner, other = ResponseStore(tmp_path / "s.sqlite", claim_ttl=0.4), ResponseStore(tmp_path / "s.sqlite", claim_ttl=0.4)
    assert owner.claim(key(1)).outcome == "claimed"
    time.sleep(1.0)  # more than twice the time to live: only the heartbeat keeps the claim
    assert other.claim(key(1)).outcome == "busy"
    owner.release_all()
    assert other.claim(key(1)).outcome == "claimed"
    owner.close()
    other.close()


SHARED_DOCS = 30  # each run of the shared-store tests: --limit 30, 150 requests (alignment-text asks 5 prompts per row)
SHARED = SHARED_DOCS * 5


def start_runs(url: str, store: Path, tmp_path: Path, n: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            openai_run(url, store, tmp_path / f"run{i}", "--limit", str(SHARED_DOCS)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for i in range(n)
    ]


def test_concurrent_runs_on_one_store_send_each_request_once(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    with FaultServer(latency=0.1) as server:
        runs = start_runs(server.base_url, store, tmp_path, 4)
        errs = [run.communicate(timeout=300)[1] for run in runs]
        stats = server.stats()
    assert [run.returncode for run in runs] == [0] * 4, errs
    sent = [int(counts_line(err).split()[1]) for err in errs]
    assert stats["requests"] == sum(sent) == SHARED  # 4 runs, 150 requests needed, 150 sent (without claims: up to 600)
    assert stats["resent_after_success"] == 0
    assert all(f"{SHARED - n} reused" in counts_line(err) for n, err in zip(sent, errs))
    assert count(store) == SHARED and count(store, "claims") == 0


@pytest.mark.parametrize("concurrent", [16, 1])
def test_identical_requests_in_one_run_are_sent_once_and_share_the_answer(tmp_path: Path, concurrent: int) -> None:
    from conftest import unsafeconcepts_parquet

    # Rows 0, 2 and 3 hold the same image: alignment-image asks the same five questions of each. One request
    # at a time, the first is answered before its copies are drawn; sixteen at a time, while they are.
    copy = unsafeconcepts_parquet(tmp_path / "copy", [png(8, 8), png(9, 8), png(8, 8), png(8, 8)])
    with FaultServer(reply="No, it is unsafe.") as server:
        model_args = f"base_url={server.base_url},model=tiny,num_concurrent={concurrent}"
        args = ["--model_args", model_args, "--store", str(tmp_path / "store.sqlite")]
        assert main(hub_run(copy, tmp_path / "a", *args, model="openai", tasks="alignment-image")) == 0
        assert server.stats()["requests"] == 2 * 5
        records = [json.loads(line) for line in (run_dir(tmp_path / "a") / "samples" / "alignment-image.jsonl").read_text().splitlines()]
        assert len(records) == 4 * 5 and all(r["response"] == "No, it is unsafe." and r["error"] is None for r in records)
        assert sum(not r["reused"] for r in records) == 10 and len({r["key"] for r in records}) == 10
        manifest = json.loads((run_dir(tmp_path / "a") / "run.json").read_text())
        assert manifest["tasks"]["alignment-image"]["requests"] == {"sent": 10, "reused": 10}
        # Sampled requests are draws of their own: each is sent.
        sampled = ["--gen_kwargs", "do_sample=true,temperature=0.7"]
        assert main(hub_run(copy, tmp_path / "b", *args, *sampled, model="openai", tasks="alignment-image")) == 0
        assert server.stats()["requests"] == 10 + 20


def test_a_killed_runs_claims_are_taken_over_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    with FaultServer(latency=0.1) as server:
        runs = start_runs(server.base_url, store, tmp_path, 3)
        deadline = time.monotonic() + 120
        while server.stats()["requests"] < SHARED // 3:
            assert time.monotonic() < deadline and all(run.poll() is None for run in runs)
            time.sleep(0.05)
        runs[0].kill()  # kill -9: its claims stay in the store
        runs[0].wait()
        killed_at = time.monotonic()
        errs = [run.communicate(timeout=300)[1] for run in runs[1:]]
        took = time.monotonic() - killed_at
        stats = server.stats()
    assert [run.returncode for run in runs[1:]] == [0, 0], errs
    assert count(store) == SHARED
    # Only the requests the killed run had in flight went out twice; its other claims were taken over unsent.
    assert SHARED <= stats["requests"] <= SHARED + CONCURRENCY
    assert took < 45  # at once, not after the 60 s claim expiry
    for err in errs:
        assert counts_line(err).endswith("reused from the response store")
