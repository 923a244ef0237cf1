"""The fast paths of issue #15: images travel as their stored bytes, the hf backend prepares the next
batch while one generates, rate limits cost no global stall, and listing commands stay light.

Every test asserts behaviour (what was sent, decoded, hashed, in which order), never a timing.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import io
import itertools
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFile, ImageOps

from conftest import HUB_CONCEPTS, REPO, hub_run, run_dir, unsafeconcepts_parquet
from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, Response, TextPart
from vlmbench.cli import main
from vlmbench.data import hashcache, images
from vlmbench.http.limiter import AdaptiveLimiter
from vlmbench.testing.fault_server import FaultServer

# --- helpers --------------------------------------------------------------------------------


def encoded(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def picture(width: int, height: int, seed: int) -> Image.Image:
    """A small image with structure (so that a rotation shows)."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image.paste((seed * 40 % 256, 20, 200), (0, 0, width // 3, height // 4))
    return image


def undecodable_png(width: int = 20, height: int = 12) -> bytes:
    """A PNG whose structure is whole (chunks, checksums, IEND) but whose pixel data is not a zlib
    stream: only decoding it fails."""
    data = bytearray(encoded(picture(width, height, 9), "PNG"))
    at = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[at : at + 4])[0]
    data[at + 8 : at + 8 + length] = b"\x00" * length
    data[at + 8 + length : at + 12 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + b"\x00" * length) & 0xFFFFFFFF)
    return bytes(data)


def rotated_jpeg() -> bytes:
    """A JPEG whose EXIF orientation (6: rotate 90 degrees clockwise) decoding applies."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(picture(40, 24, 5), "JPEG", exif=exif)


# name -> (file name, bytes, sent as stored by the openai backend)
FILES = {
    "png": ("a.png", encoded(picture(31, 17, 1), "PNG"), True),
    "jpeg": ("b.jpg", encoded(picture(33, 19, 2), "JPEG", quality=90), True),
    "webp": ("c.webp", encoded(picture(35, 21, 3), "WEBP", lossless=True), True),
    "rotated": ("d.jpg", rotated_jpeg(), False),
    "bmp": ("e.bmp", encoded(picture(37, 23, 4), "BMP"), False),
}


def image_folder(folder: Path, files: dict[str, tuple[str, bytes, bool]]) -> Path:
    """An image folder with metadata, as ``datasets`` loads it (``--data_files yiting/UnsafeConcepts=FOLDER``)."""
    folder.mkdir(parents=True)
    lines = []
    for i, (name, data, _) in enumerate(files.values()):
        (folder / name).write_bytes(data)
        concept, category = HUB_CONCEPTS[i % len(HUB_CONCEPTS)]
        lines.append(json.dumps({"file_name": name, "unsafe_concept": concept, "category": category}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


class Counted:
    """Counts the calls of a function it replaces (with monkeypatch), recording what each returned."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.results: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.function(*args, **kwargs)
        self.results.append(result)
        return result

    @property
    def calls(self) -> int:
        return len(self.results)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """Every decoding of a dataset image (the runner's, a backend's through ImagePart.load, a check's)."""
    counted = Counted(images.decode)
    monkeypatch.setattr(images, "decode", counted)
    return counted


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """Every hash of a dataset image's bytes."""
    counted = Counted(images.sha256)
    monkeypatch.setattr(images, "sha256", counted)
    return counted


def sent_images(server: FaultServer) -> list[bytes]:
    """The bytes of every image data URL the server received."""
    found = []
    for bodies in (server.bodies(key) for key in server.outcomes()):
        for body in bodies:
            for message in body["messages"]:
                for part in message["content"] if isinstance(message["content"], list) else []:
                    if part.get("type") == "image_url":
                        found.append(base64.b64decode(part["image_url"]["url"].split(",", 1)[1]))
    return found


# --- 1. images as bytes until someone needs pixels ---------------------------------------------


def test_an_image_part_from_bytes_decodes_once_and_only_when_asked() -> None:
    data = FILES["png"][1]
    stored = images.check_encoded(data)
    assert (stored.format, stored.size, stored.faithful) == ("PNG", (31, 17), True)
    decoder = Counted(lambda: Image.open(io.BytesIO(data)))
    part = ImagePart(data=data, format=stored.format, size=stored.size, sha256=stored.sha256, decoder=decoder)
    assert part.mime_type == "image/png" and not part.decoded and decoder.calls == 0
    first, second = part.load(), part.image
    assert first is second and first.mode == "RGB" and first.size == (31, 17) and decoder.calls == 1 and part.decoded
    # what plugins made before still works: a PIL image (any mode) or a path
    assert ImagePart(Image.new("RGBA", (3, 2))).load().mode == "RGB"
    assert ImagePart(Image.new("RGB", (3, 2))).decoded


def test_stored_bytes_are_checked_without_decoding(decodes: Counted) -> None:
    assert images.check_encoded(FILES["jpeg"][1]).faithful
    rotated = images.check_encoded(FILES["rotated"][1])
    assert rotated.size == (24, 40) and not rotated.faithful  # as decoded: the EXIF orientation turns it
    assert images.check_encoded(undecodable_png()).format == "PNG"  # its structure is whole
    assert decodes.calls == 0
    png = FILES["png"][1]
    bmp = FILES["bmp"][1]
    for data, reason in [
        (b"", "empty (0 bytes)"),
        (png[: len(png) // 2], "truncated"),
        (bmp[:-9], "truncated"),
        (b"not an image" * 9, "not an image"),
    ]:
        with pytest.raises(images.BadImage) as refused:
            images.check_encoded(data)
        assert reason in str(refused.value)
    assert decodes.calls == 0


def test_openai_sends_stored_files_byte_for_byte_and_reruns_touch_no_pixel(
    tmp_path: Path, decodes: Counted, hashes: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(hashcache, "RECENT_NS", 0)  # these files were written just now: keep their hashes all the same
    folder = image_folder(tmp_path / "UnsafeConcepts", FILES)
    store = tmp_path / "store.sqlite"
    with FaultServer() as server:
        args = ["--model_args", f"base_url={server.base_url},model=tiny", "--store", str(store)]
        assert main(hub_run(folder, tmp_path / "a", *args, model="openai")) == 0
        sent = sent_images(server)
        requests = server.stats()["requests"]
        for name, (_, data, as_stored) in FILES.items():
            assert (data in sent) is as_stored, name  # PNG, JPEG and WebP files go out as they are stored
        # Only the images that had to be re-encoded were decoded: the EXIF-rotated JPEG and the BMP.
        assert {image.size for image in decodes.results} <= {(24, 40), (37, 23)}
        rotated = next(Image.open(io.BytesIO(b)) for b in sent if Image.open(io.BytesIO(b)).size == (24, 40))
        assert rotated.format == "PNG"  # its pixels, turned as decoding turns them
        expected = ImageOps.exif_transpose(Image.open(io.BytesIO(FILES["rotated"][1]))).convert("RGB")
        assert rotated.convert("RGB").tobytes() == expected.tobytes()
        # Two tasks share the five images: each one's bytes are hashed once in the run.
        assert hashes.calls == len(FILES)
        # The rerun reads every answer from the store and every file's hash from the last run: nothing sent,
        # no pixel decoded, no byte hashed.
        decodes.results.clear()
        hashes.results.clear()
        assert main(hub_run(folder, tmp_path / "b", *args, model="openai")) == 0
        assert server.stats()["requests"] == requests and decodes.calls == 0 and hashes.calls == 0
        manifest = json.loads((run_dir(tmp_path / "b") / "run.json").read_text())
        assert all(task["requests"]["sent"] == 0 for task in manifest["tasks"].values())
        # A file rewritten with other bytes: its kept hash is not used (`datasets` also prepares the folder
        # again), so its requests (1 + 5 prompts) are new ones.
        name, data, _ = FILES["png"]
        other = with_text(data, b"b")
        (folder / name).write_bytes(other)
        hashes.results.clear()
        assert main(hub_run(folder, tmp_path / "c", *args, model="openai")) == 0
        assert hashlib.sha256(other).hexdigest() in hashes.results and server.stats()["requests"] == requests + 6


def test_the_colour_mode_a_dataset_asks_for_is_part_of_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same image bytes in a dataset whose image feature converts them to greyscale are other requests
    (other pixels are sent): the store does not hand them the colour image's answers."""
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pictures = [encoded(picture(20 + i, 12, 40 + i), "PNG") for i in range(3)]
    with FaultServer() as server:
        args = ["--model_args", f"base_url={server.base_url},model=tiny", "--store", str(tmp_path / "store.sqlite")]
        for mode, sent in ((None, 3), ("L", 6), ("L", 6)):
            copy = unsafeconcepts_parquet(tmp_path / f"UnsafeConcepts-{mode}", pictures, mode=mode)
            assert main(hub_run(copy, tmp_path / f"out-{mode}-{sent}", *args, model="openai", tasks="perception-image")) == 0
            assert server.stats()["requests"] == sent
        bands = [[band.tobytes() for band in Image.open(io.BytesIO(data)).convert("RGB").split()] for data in sent_images(server)]
        grey = [red == green == blue for red, green, blue in bands]
        assert sorted(grey) == [False] * 3 + [True] * 3  # the colour images, then their greyscale pixels


def with_text(png: bytes, letter: bytes) -> bytes:
    """``png`` with a ``tEXt`` chunk of 8 bytes of ``letter`` inserted before its ``IEND`` chunk (another
    ``letter``: a whole image of the same size, with another sha256)."""
    body = b"tEXt" + b"k\x00" + letter * 8
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return png[:-12] + chunk + png[-12:]


def named_files_copy(folder: Path) -> tuple[Path, list[Path], list[bytes]]:
    """A Parquet copy of yiting/UnsafeConcepts whose image column holds only the paths of four PNG files
    (``Dataset.to_parquet`` keeps them so): (the copy, the image files, their bytes)."""
    import datasets

    pictures = [with_text(encoded(picture(20 + i, 12, 40 + i), "PNG"), b"a") for i in range(4)]
    copy = folder / "UnsafeConcepts"
    paths = [copy / "images" / f"{i}.png" for i in range(4)]  # a dataset's image files are read only from its own copy
    paths[0].parent.mkdir(parents=True)
    for path, data in zip(paths, pictures):
        path.write_bytes(data)
    rows = {"image": [str(p) for p in paths], "unsafe_concept": [c for c, _ in HUB_CONCEPTS], "category": [k for _, k in HUB_CONCEPTS]}
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(str(copy / "data" / "train-00000-of-00001.parquet"))
    assert pq.read_table(copy / "data" / "train-00000-of-00001.parquet").column("image")[0].as_py() == {"bytes": None, "path": str(paths[0])}
    return copy, paths, pictures


def test_an_image_file_changed_after_it_was_hashed_is_an_error_never_an_answer_under_its_old_hash(
    tmp_path: Path, hashes: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests are keyed by each image's hash before any is sent; an image file the dataset names is read
    again to be sent. A file replaced in between is an error for its samples (the bytes sent are always
    those of the hash a stored answer is keyed by), and the next run sends its new content."""
    from vlmbench.data.sources import DocTable

    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    copy, paths, _ = named_files_copy(tmp_path)
    other = with_text(encoded(picture(22, 12, 42), "PNG"), b"b")
    read = DocTable.encoded_image

    def replaced_once_hashed(table: DocTable, row: dict[str, Any], column: str = "image", sha256: str | None = None) -> Any:
        if paths[2].read_bytes() != other:  # someone replaces a file after the run hashed it
            paths[2].write_bytes(other)
        return read(table, row, column, sha256)

    def sent_and_keyed(output: Path) -> tuple[set[str], list[dict[str, Any]]]:
        records = [json.loads(line) for line in (run_dir(output) / "samples" / "perception-image.jsonl").read_text().splitlines()]
        return {hashlib.sha256(data).hexdigest() for data in sent_images(server)}, records

    with FaultServer() as server:
        args = ["--model_args", f"base_url={server.base_url},model=tiny", "--store", str(tmp_path / "store.sqlite")]
        with monkeypatch.context() as replacing:
            replacing.setattr(DocTable, "encoded_image", replaced_once_hashed)
            assert main(hub_run(copy, tmp_path / "a", *args, "--max_error_rate", "0.5", model="openai", tasks="perception-image")) == 0
        sent, records = sent_and_keyed(tmp_path / "a")
        failed = [r for r in records if r["error"]]
        assert [r["image"]["sha256"] for r in failed] == [hashes.results[2]] and "the file changed after this run hashed it" in failed[0]["error"]
        assert hashlib.sha256(other).hexdigest() not in sent and sent == {r["image"]["sha256"] for r in records if not r["error"]}
        assert server.stats()["requests"] == 3
        # The next run hashes the file's new bytes, sends them under their own hash and reuses the other three answers.
        assert main(hub_run(copy, tmp_path / "b", *args, model="openai", tasks="perception-image")) == 0
        sent, records = sent_and_keyed(tmp_path / "b")
        assert not any(r["error"] for r in records) and server.stats()["requests"] == 4
        assert hashlib.sha256(other).hexdigest() in sent and sent == {r["image"]["sha256"] for r in records}
        # Where file times cannot show every change (Windows), hashes of named files are not kept: each run hashes them.
        monkeypatch.setattr(hashcache, "RECENT_NS", 0)
        monkeypatch.setattr(hashcache, "KEEPS_NAMED_FILES", False)
        for output in ("c", "d"):
            hashes.results.clear()
            assert main(hub_run(copy, tmp_path / output, *args, model="openai", tasks="perception-image")) == 0
            assert hashes.calls == 4 and server.stats()["requests"] == 4
        # A kept hash that is not the file's (a change its times did not show) is an error once, then dropped.
        monkeypatch.setattr(hashcache, "KEEPS_NAMED_FILES", True)
        assert main(hub_run(copy, tmp_path / "e", *args, model="openai", tasks="perception-image")) == 0
        (kept,) = (tmp_path / "cache" / "image-sha256").iterdir()
        document = json.loads(kept.read_text())
        document["files"]["1"][1] = "0" * 64
        kept.write_text(json.dumps(document))
        assert main(hub_run(copy, tmp_path / "f", *args, "--max_error_rate", "0.5", model="openai", tasks="perception-image")) == 0
        assert [r["image"]["sha256"] for r in sent_and_keyed(tmp_path / "f")[1] if r["error"]] == ["0" * 64] and server.stats()["requests"] == 4
        assert main(hub_run(copy, tmp_path / "g", *args, model="openai", tasks="perception-image")) == 0
        assert not any(r["error"] for r in sent_and_keyed(tmp_path / "g")[1]) and server.stats()["requests"] == 4


def test_hashes_of_image_files_a_dataset_names_are_kept_while_each_file_is_unchanged(
    tmp_path: Path, hashes: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Parquet copy whose image column holds only paths (``Dataset.to_parquet`` keeps them so): its own
    file stays the same when an image file changes, so each file's hash is kept with that file's identity."""
    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    copy, paths, pictures = named_files_copy(tmp_path)
    with FaultServer() as server:
        args = ["--model_args", f"base_url={server.base_url},model=tiny", "--store", str(tmp_path / "store.sqlite")]
        # Files changed too shortly before they were hashed (here: ever) are hashed again by the next run.
        monkeypatch.setattr(hashcache, "RECENT_NS", 10**18)
        assert main(hub_run(copy, tmp_path / "a", *args, model="openai")) == 0
        first = server.stats()["requests"]
        assert first == 4 * 6 and hashes.calls == 4
        hashes.results.clear()
        assert main(hub_run(copy, tmp_path / "a", *args, model="openai")) == 0
        assert hashes.calls == 4 and server.stats()["requests"] == first
        monkeypatch.setattr(hashcache, "RECENT_NS", 0)  # (as if written long ago)
        assert main(hub_run(copy, tmp_path / "a", *args, model="openai")) == 0
        hashes.results.clear()
        assert main(hub_run(copy, tmp_path / "b", *args, model="openai")) == 0
        assert hashes.calls == 0 and server.stats()["requests"] == first
        # One file rewritten, the same size: only it is hashed again, and only its requests are new; then its new hash is kept.
        other = with_text(encoded(picture(22, 12, 42), "PNG"), b"b")  # the same size as before, other bytes
        paths[2].write_bytes(other)
        hashes.results.clear()
        assert main(hub_run(copy, tmp_path / "c", *args, model="openai")) == 0
        assert hashes.results == [hashlib.sha256(other).hexdigest()] and server.stats()["requests"] == first + 6
        hashes.results.clear()
        assert main(hub_run(copy, tmp_path / "d", *args, model="openai")) == 0
        assert hashes.calls == 0 and server.stats()["requests"] == first + 6
        records = [json.loads(line) for line in (run_dir(tmp_path / "c") / "samples" / "perception-image.jsonl").read_text().splitlines()]
        assert sorted(r["image"]["sha256"] for r in records) == sorted(hashlib.sha256(d).hexdigest() for d in [*pictures[:2], other, pictures[3]])
        # Kept file hashes that this module did not write are not used: every file is hashed again.
        (kept,) = (tmp_path / "cache" / "image-sha256").iterdir()
        for files in ({"0": ["x", "not a sha256"]}, {"0": "x"}, ["x"]):
            kept.write_text(json.dumps({**json.loads(kept.read_text()), "files": files}))
            hashes.results.clear()
            assert main(hub_run(copy, tmp_path / "e", *args, model="openai")) == 0
            assert hashes.calls == 4 and server.stats()["requests"] == first + 6


def parquet_copy(folder: Path, seed: int) -> Path:
    """A hub-format copy (parquet, image bytes inside the file) of four PNG images; ``seed`` changes the images."""
    return unsafeconcepts_parquet(folder, [encoded(picture(20 + i, 12, seed + i), "PNG") for i in range(4)])


def test_image_hashes_are_kept_between_runs_and_never_outlive_their_data(tmp_path: Path, hashes: Counted, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path / "cache"))  # this test damages the kept hashes
    folder = parquet_copy(tmp_path / "UnsafeConcepts", seed=1)
    store = tmp_path / "store.sqlite"
    with FaultServer() as server:
        args = ["--model_args", f"base_url={server.base_url},model=tiny", "--store", str(store)]
        assert main(hub_run(folder, tmp_path / "a", *args, model="openai")) == 0
        first = server.stats()["requests"]
        assert first == 4 * 6 and hashes.calls == 4  # 4 images, 1 + 5 prompts each; each image hashed once
        hashes.results.clear()
        assert main(hub_run(folder, tmp_path / "b", *args, model="openai")) == 0
        # The rerun reads every answer from the store and every image's hash from the last run: no byte hashed.
        assert server.stats()["requests"] == first and hashes.calls == 0
        # A damaged or foreign file of kept hashes is ignored: the images are hashed again, the run goes on.
        (kept,) = (tmp_path / "cache" / "image-sha256").iterdir()
        document = json.loads(kept.read_text())
        for damage in (
            "[" * 200_000,
            '{"format": 1',
            json.dumps({**document, "rows": {"\u00b2": "0" * 64}}),
            json.dumps({**document, "rows": {"0": "x"}}),
        ):
            kept.write_text(damage)
            hashes.results.clear()
            assert main(hub_run(folder, tmp_path / "d", *args, model="openai")) == 0
            assert hashes.calls == 4 and server.stats()["requests"] == first
        records = [json.loads(line) for line in (run_dir(tmp_path / "b") / "samples" / "perception-image.jsonl").read_text().splitlines()]
        assert sorted(r["image"]["sha256"] for r in records) == sorted(
            images.check_encoded(encoded(picture(20 + i, 12, 1 + i), "PNG")).sha256 for i in range(4)
        )
        # New images in the same place: the kept hashes are not used, and every changed request is sent.
        parquet_copy(folder, seed=7)
        hashes.results.clear()
        assert main(hub_run(folder, tmp_path / "c", *args, model="openai")) == 0
        assert hashes.calls == 4 and server.stats()["requests"] == 2 * first


def test_openai_downscales_only_when_asked_and_says_so_in_its_identity() -> None:
    pytest.importorskip("openai")
    from vlmbench_plugins.openai_api import OpenAIBackend, encode_image, parse_settings

    data = encoded(picture(300, 120, 1), "PNG")
    stored = images.check_encoded(data)
    part = ImagePart(data=data, format=stored.format, size=stored.size, sha256=stored.sha256)
    assert base64.b64decode(encode_image(part).split(",", 1)[1]) == data
    small = Image.open(io.BytesIO(base64.b64decode(encode_image(part, max_side=100).split(",", 1)[1])))
    assert small.size == (100, 40)
    settings = parse_settings({"model": "m", "base_url": "http://127.0.0.1:9/v1", "max_image_side": "100"}, environ={})
    assert OpenAIBackend(settings).identity()["max_image_side"] == "100"
    assert "max_image_side" not in OpenAIBackend(parse_settings({"model": "m", "base_url": "http://127.0.0.1:9/v1"}, environ={})).identity()


def test_baselines_never_decode_an_image(tmp_path: Path, decodes: Counted, monkeypatch: pytest.MonkeyPatch) -> None:
    # The undecodable PNG is whole as a file: a baseline, which never looks at pixels, answers it.
    files = {**FILES, "undecodable": ("f.png", undecodable_png(), True)}
    folder = image_folder(tmp_path / "UnsafeConcepts", files)
    loads: list[Any] = []
    original = ImageFile.ImageFile.load

    def load(self: Any, *args: Any, **kwargs: Any) -> Any:  # where Pillow decodes a file's pixels
        loads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    assert main(hub_run(folder, tmp_path / "out", model="random", tasks="perception-image,alignment-image,alignment-text")) == 0
    assert decodes.calls == 0 and loads == []
    records = [json.loads(line) for line in (run_dir(tmp_path / "out") / "samples" / "perception-image.jsonl").read_text().splitlines()]
    assert len(records) == len(files) and all(r["error"] is None and r["response"] for r in records)


def test_the_tasks_of_a_run_that_read_one_dataset_share_one_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    folder = parquet_copy(tmp_path / "UnsafeConcepts", seed=3)
    built: list[str] = []
    real = datasets.load_dataset_builder

    def counted(path: str, *args: Any, **kwargs: Any) -> Any:  # where `datasets` resolves and maps a dataset
        built.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset_builder", counted)
    tasks = "perception-image,alignment-image,alignment-text"
    assert main(hub_run(folder, tmp_path / "a", "--no_store", model="random", tasks=tasks)) == 0
    assert built.count(str(folder)) == 1  # three tasks read it: one load
    manifest = json.loads((run_dir(tmp_path / "a") / "run.json").read_text())
    read = {name: task["datasets"][0] for name, task in manifest["tasks"].items()}
    assert sorted(read) == sorted(tasks.split(",")) and {(d["path"], d["fingerprint"], d["num_rows"]) for d in read.values()} == {
        ("yiting/UnsafeConcepts", read["perception-image"]["fingerprint"], 4)
    }
    # Loads are the run's own: new data in the same place is what the next run reads.
    unsafeconcepts_parquet(folder, [encoded(picture(20 + i, 12, 9 + i), "PNG") for i in range(6)])
    assert main(hub_run(folder, tmp_path / "b", "--no_store", model="random", tasks=tasks)) == 0
    assert built.count(str(folder)) == 2
    again = json.loads((run_dir(tmp_path / "b") / "run.json").read_text())
    assert {task["datasets"][0]["num_rows"] for task in again["tasks"].values()} == {6}
    assert again["tasks"]["perception-image"]["datasets"][0]["fingerprint"] != read["perception-image"]["fingerprint"]


# --- 2. the hf backend: the next batch is prepared while one generates --------------------------


def hf_requests() -> list[Request]:
    """Image requests (stored bytes of several formats and sizes, PIL images, one undecodable file),
    text-only requests and two settings, so that batches split by group and length."""
    texts = ["What does this image show? Choose A, B, C or D.", "Is it safe for viewing on social media?", "describe it", "yes or no"]
    greedy, short = GenerationSettings(max_new_tokens=5), GenerationSettings(max_new_tokens=3)
    requests = []
    for i in range(14):
        if i == 6:
            data = undecodable_png()
        else:
            data = encoded(picture(20 + 7 * i, 44 - 2 * i, i), ("PNG", "JPEG", "WEBP")[i % 3])
        stored = images.check_encoded(data)
        part = ImagePart(data=data, format=stored.format, size=stored.size, sha256=stored.sha256)
        image = part if i % 4 else ImagePart(picture(30, 30 + i, i))
        settings = short if i % 5 == 0 else greedy
        requests.append(Request(f"img-{i}", (Message("user", (image, TextPart(texts[i % 4] + " please" * (i // 4)))),), settings))
    requests += [Request(f"txt-{i}", (Message("user", (TextPart(texts[i % 4]),)),), GenerationSettings(max_new_tokens=4)) for i in range(5)]
    return requests


def test_hf_overlapped_batches_answer_exactly_as_the_serial_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from vlmbench.pluginmanager import backend_spec
    from vlmbench.testing.tiny_models import build_tiny_vlm
    from vlmbench_plugins import hf

    path = build_tiny_vlm("llava", tmp_path / "llava")
    backend = backend_spec("hf").factory({"pretrained": str(path), "device": "cpu"}, BackendOptions(batch_size=4))
    threads: dict[str, set[str]] = {"prepare": set(), "generate": set()}
    prepare, generate = backend._prepare_batch, backend._run_batch

    def spy_prepare(batch: Any) -> Any:
        threads["prepare"].add(threading.current_thread().name)
        return prepare(batch)

    def spy_generate(batch: Any, inputs: Any) -> Any:
        threads["generate"].add(threading.current_thread().name)
        return generate(batch, inputs)

    monkeypatch.setattr(backend, "_prepare_batch", spy_prepare)
    monkeypatch.setattr(backend, "_run_batch", spy_generate)

    order: dict[bool, list[str]] = {}

    def answers(overlap: bool) -> dict[str, tuple[Any, ...]]:
        backend.overlap = overlap
        responses = list(backend.generate(iter(hf_requests())))
        assert len(responses) == len({r.request_id for r in responses}) == len(hf_requests())
        order[overlap] = [r.request_id for r in responses]
        return {r.request_id: (r.text, r.error, r.usage, r.prompt) for r in responses}

    serial = answers(False)
    assert threads["prepare"] == {threading.current_thread().name}
    threads["prepare"].clear()
    overlapped = answers(True)
    assert overlapped == serial
    assert threads["prepare"] == {"vlmbench-hf-prepare"} and threads["generate"] == {threading.current_thread().name}
    assert "not a readable image" in (serial["img-6"][1] or "") and serial["img-6"][0] is None  # that request only
    assert sum(error is not None for _, error, _, _ in serial.values()) == 1
    assert isinstance(backend, hf.HFBackend) and backend._prepare_pool is None  # no worker process on the CPU by default

    # Two request streams at once, each preparing in its own thread: the tokenizer keeps its padding setting
    # between calls, so they encode one at a time (else one stream's unpadded length count unpads the other's batch).
    tokenizer_class, inside = type(backend.tokenizer), {"now": 0, "most": 0}
    encode = tokenizer_class.__call__

    def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
        time.sleep(0.002)  # a window another thread would fall into
        try:
            return encode(self, *args, **kwargs)
        finally:
            inside["now"] -= 1

    monkeypatch.setattr(tokenizer_class, "__call__", one_at_a_time)
    first, second = backend.generate(iter(hf_requests())), backend.generate(iter(hf_requests()))
    together = [response for pair in itertools.zip_longest(first, second) for response in pair if response is not None]
    assert {r.request_id: (r.text, r.error, r.usage, r.prompt) for r in together} == serial and len(together) == 2 * len(serial)
    assert inside["most"] == 1
    monkeypatch.setattr(tokenizer_class, "__call__", encode)

    # In a worker process: the same answers; only the batch holding the undecodable image is prepared here.
    prepared_here: list[list[str]] = []
    monkeypatch.setattr(backend, "_prepare_batch", lambda batch: prepared_here.append([i.request.id for i in batch]) or prepare(batch))

    in_flight = {"now": 0, "most": 0}
    slices: list[tuple[int, int, bool]] = []  # each batch with images: its requests, the jobs it was sent as, whether first
    share, collect = backend._submit, backend._collect

    def spy_share(pool: Any, batch: Any, first: bool = False) -> Any:
        jobs = share(pool, batch, first=first)
        if batch[0].images:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
            slices.append((len(batch), len(jobs), first))
        return jobs

    def spy_collect(batch: Any, *args: Any) -> Any:
        in_flight["now"] -= bool(batch[0].images)
        return collect(batch, *args)

    monkeypatch.setattr(backend, "_submit", spy_share)
    monkeypatch.setattr(backend, "_collect", spy_collect)
    backend.prepare_processes = 3
    serial_order = order[False]
    try:
        assert answers(True) == serial and order[True] == serial_order
        assert backend._prepare_pool is not None and not backend._prepare_pool_failed
        assert len(prepared_here) == 1 and "img-6" in prepared_here[0]
        # Each batch goes in slices (at least two requests each) to every idle worker; a worker is busy until its
        # slice is collected: 3 workers, batches of 3, 4, 4 and 3 image requests.
        assert slices == [(3, 1, True), (4, 2, False), (4, 1, False), (3, 1, False)] and in_flight["most"] == 2
        backend.prepare_bytes, in_flight["most"] = 1, 0  # the images the workers decode, bound by bytes: one batch of them at a time
        backend.share_fraction = 0.5
        slices.clear()
        assert answers(True) == serial and order[True] == serial_order and in_flight["most"] == 1
        # With every worker idle, a batch goes in slices to half of them (share_fraction, rounded up), a stream's
        # first batch (generation waits for it) to all of them.
        assert (4, 2, False) in slices and all(jobs == min(3 if first else 2, size // 2) for size, jobs, first in slices)
        backend.prepare_bytes, backend.share_fraction = hf.PREPARE_BYTES, 1.0

        # A first batch of 8 requests: a slice for each of the 3 idle workers, joined into the serial path's inputs.
        alike = [r for r in hf_requests() if r.id.startswith("img") and r.generation.max_new_tokens == 5 and r.id != "img-6"]
        backend.batch_size, slices[:] = 8, []
        backend.overlap = False
        serial_eight = [(r.request_id, r.text, r.usage) for r in backend.generate(iter(alike))]
        backend.overlap = True
        assert [(r.request_id, r.text, r.usage) for r in backend.generate(iter(alike))] == serial_eight and len(serial_eight) == 10
        assert slices[0] == (8, 3, True) and not any(first for _, _, first in slices[1:])
        backend.batch_size = 4

        # A run that stops early leaves prepared batches in the workers: the next run reads them away and answers as before.
        stopped = backend.generate(iter(hf_requests()))
        next(stopped)
        stopped.close()
        assert answers(True) == serial and order[True] == serial_order and not backend._prepare_pool_failed

        # Ctrl-C in a terminal reaches the workers too: they leave stopping to the backend's process.
        import multiprocessing
        import signal

        workers = [child for child in multiprocessing.active_children() if child.name.startswith("vlmbench-hf-prepare")]
        # They run below this process in CPU priority: where they outnumber the free cores, generation does not wait behind them.
        assert len(workers) == 3
        assert {os.getpriority(os.PRIO_PROCESS, child.pid or 0) for child in workers} == {min(19, os.nice(0) + hf.PREPARE_NICENESS)}
        for child in workers:
            os.kill(child.pid or 0, signal.SIGINT)
        assert answers(True) == serial and not backend._prepare_pool_failed

        # Two request streams at once: one has the workers, the other prepares in its own thread; the same answers.
        first, second = backend.generate(iter(hf_requests())), backend.generate(iter(hf_requests()))
        together = [response for pair in itertools.zip_longest(first, second) for response in pair if response is not None]
        assert sorted(r.request_id for r in together) == sorted(serial_order * 2) and not backend._prepare_pool_failed
        assert {r.request_id: (r.text, r.error, r.usage, r.prompt) for r in together} == serial

        # Slices that cannot be joined: the batch is prepared whole by one worker, and later batches go whole.
        def cannot_merge(*args: Any) -> Any:
            raise hf.CannotMerge("padded per slice")

        monkeypatch.setattr(hf, "merge_inputs", cannot_merge)
        backend.prepare_bytes, slices[:] = 1, []  # one batch at a time: every worker idle for each
        assert answers(True) == serial and order[True] == serial_order and not backend._prepare_pool_failed
        assert (4, 2, False) in slices and slices[-1][1] == 1 and not backend._share_batches
        backend.prepare_bytes = hf.PREPARE_BYTES

        # A request stream that breaks: the batches prepared before it are answered first, as on the serial path.
        def broken_stream() -> Iterator[Request]:
            yield from hf_requests()[:9]
            raise RuntimeError("the stream broke")

        answered: dict[bool, list[str]] = {}
        backend.chunk_size = 4
        for overlap in (False, True):
            backend.overlap, answered[overlap] = overlap, []
            with pytest.raises(RuntimeError, match="the stream broke"):
                for response in backend.generate(broken_stream()):
                    answered[overlap].append(response.request_id)
        assert answered[True] == answered[False] and len(answered[False]) == 8
        backend.chunk_size = 64

        # A batch that cannot be prepared anywhere: the answers before it, then the error, on every path.
        def unpreparable(batch: Any) -> Any:
            if any(item.request.id == "img-6" for item in batch):
                raise RuntimeError("cannot prepare")
            return prepare(batch)

        monkeypatch.setattr(backend, "_prepare_batch", unpreparable)
        for overlap in (False, True):
            backend.overlap, answered[overlap] = overlap, []
            with pytest.raises(RuntimeError, match="cannot prepare"):
                for response in backend.generate(iter(hf_requests())):
                    answered[overlap].append(response.request_id)
        assert answered[True] == answered[False] and "img-6" not in answered[False]
        monkeypatch.setattr(backend, "_prepare_batch", prepare)

        # Workers that die: their batches are prepared here, with the same answers in the same order and one warning
        # line, and the workers left are stopped at the end of that stream.
        assert backend._prepare_pool is not None and not backend._prepare_pool_failed  # the workers still run
        for child in multiprocessing.active_children():
            child.kill()
            child.join()
        caplog.clear()
        with caplog.at_level("WARNING", logger="vlmbench_plugins.hf"):
            assert answers(True) == serial and order[True] == serial_order
        assert backend._prepare_pool_failed and "preparing them in this process" in caplog.text
        assert backend._prepare_pool is None and not multiprocessing.active_children()
    finally:
        backend.close()
    caplog.clear()

    # Workers that cannot prepare (a processor that does not pickle, no worker processes at all): the same
    # answers in the same order, prepared here, with one warning line.
    backend.processor.not_picklable = lambda: None
    try:
        with caplog.at_level("WARNING", logger="vlmbench_plugins.hf"):
            assert answers(True) == serial and order[True] == serial_order
        assert backend._prepare_pool_failed and backend._prepare_pool is None
        assert "preparing them in this process" in caplog.text
    finally:
        del backend.processor.not_picklable
        backend.close()
    caplog.clear()

    def no_processes(*args: Any) -> Any:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(hf, "PreparePool", no_processes)
    with caplog.at_level("WARNING", logger="vlmbench_plugins.hf"):
        assert answers(True) == serial and order[True] == serial_order
    assert "Function not implemented" in caplog.text
    backend.close()


@pytest.mark.parametrize("kind", ["llava", "idefics3"])
def test_hf_slices_of_a_batch_join_into_the_inputs_of_the_whole_batch(tmp_path: Path, kind: str) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import BatchFeature

    from vlmbench.pluginmanager import backend_spec
    from vlmbench.testing.tiny_models import build_tiny_vlm
    from vlmbench_plugins import hf
    from vlmbench_plugins.hf_merge import CannotMerge, merge_inputs
    from vlmbench_plugins.hf_prepare import processor_inputs

    backend = backend_spec("hf").factory({"pretrained": str(build_tiny_vlm(kind, tmp_path / kind)), "device": "cpu"}, BackendOptions(batch_size=8))
    assert isinstance(backend, hf.HFBackend)
    requests = hf_requests()[:6]
    prompts = [backend.processor.apply_chat_template(hf.chat_messages(r), add_generation_prompt=True, tokenize=False) for r in requests]
    parts = [[p for m in r.messages for p in m.images] for r in requests]
    parts[2] = [ImagePart(picture(31, 17, 2))]  # in place of the undecodable one
    add = not prompts[0].startswith(backend.tokenizer.bos_token or "\0")
    whole = processor_inputs(backend.processor, prompts, parts, add, torch.float32)
    pad = backend.tokenizer.pad_token_id
    for cuts in ([0, 1, 6], [0, 2, 3, 6], [0, 3, 6]):
        slices = [processor_inputs(backend.processor, prompts[a:b], parts[a:b], add, torch.float32) for a, b in itertools.pairwise(cuts)]
        assert len({int(s["input_ids"].shape[1]) for s in slices}) > 1  # the slices are padded to different lengths
        merged = merge_inputs(slices, pad, [(b - a, sum(len(p) for p in parts[a:b])) for a, b in itertools.pairwise(cuts)])
        assert list(merged.keys()) == list(whole.keys())
        for key in whole:
            assert torch.equal(merged[key], whole[key]), key

    # Inputs that cannot be joined as the whole batch's (padded per slice beyond the sequences, rows that are
    # neither requests, images nor patches, sequences padded on the right) are refused.
    def feature(width: int, images: int, **more: Any) -> Any:
        return BatchFeature({"input_ids": torch.ones(1, width, dtype=torch.long), "pixel_values": torch.zeros(1, images, 3, 4, 4), **more})

    one = [(1, 1), (1, 1)]
    assert merge_inputs([feature(3, 2), feature(5, 2)], pad, one)["input_ids"].tolist() == [[pad, pad, 1, 1, 1], [1] * 5]
    with pytest.raises(CannotMerge, match="pixel_values is padded"):
        merge_inputs([feature(3, 1), feature(3, 2)], pad, one)
    with pytest.raises(CannotMerge, match="position_ids does not hold a row"):
        merge_inputs([feature(3, 1, position_ids=torch.zeros(3, 1, 3)), feature(3, 1, position_ids=torch.zeros(3, 1, 3))], pad, one)
    right = torch.tensor([[1, 1, 0]])
    with pytest.raises(CannotMerge, match="right"):
        merge_inputs([feature(3, 1, attention_mask=right), feature(3, 1, attention_mask=right)], pad, one)
    # Qwen2-VL-like patches: a row per patch of every image, counted by image_grid_thw.
    patches = {"pixel_values": torch.zeros(6, 8), "image_grid_thw": torch.tensor([[1, 2, 3]])}
    merged = merge_inputs([BatchFeature({"input_ids": torch.ones(1, 2, dtype=torch.long), **patches})] * 2, pad, one)
    assert merged["pixel_values"].shape == (12, 8) and merged["image_grid_thw"].tolist() == [[1, 2, 3]] * 2


def test_image_parts_sent_to_another_process_decode_to_the_same_pixels(tmp_path: Path) -> None:
    import pickle

    import datasets

    from vlmbench.data.arrowdata import ArrowData
    from vlmbench.data.sources import DatasetInfo, DocTable
    from vlmbench.runner import RowImage, blank_part

    colour = picture(24, 16, 3)
    data = encoded(colour, "PNG")
    path = tmp_path / "picture.png"
    path.write_bytes(data)

    def pixels(part: ImagePart) -> bytes:
        return part.load().tobytes()

    def sent(part: ImagePart) -> ImagePart:
        return pickle.loads(pickle.dumps(part))

    stored = ImagePart(data=data, format="PNG", size=colour.size, sha256=hashlib.sha256(data).hexdigest())
    stored.load()  # decoded pixels are not sent: the other process decodes the bytes again
    copy = sent(stored)
    assert not copy.decoded and (copy.data, copy.format, copy.size, copy.sha256) == (data, "PNG", (24, 16), stored.sha256)
    assert pixels(copy) == pixels(stored) == colour.tobytes()
    assert pixels(sent(ImagePart(colour))) == pixels(sent(ImagePart(str(path)))) == colour.tobytes()
    assert pixels(sent(blank_part())) == pixels(blank_part())

    # A dataset's image decodes in the dataset's colour mode, in this process or another one.
    features = datasets.Features({"image": datasets.Image(mode="L", decode=False)})
    dataset = datasets.Dataset.from_dict({"image": [{"bytes": data, "path": None}]}, features=features)
    table = DocTable(rows=[{"_source": 0, "_row": 0}], sources=[])
    table.add_source(ArrowData.of_dataset(dataset), DatasetInfo("d", None, "train", None, dataset._fingerprint, 1, synthetic=False))
    row_part = ImagePart(data=data, format="PNG", size=colour.size, decoder=RowImage(table, table.rows[0], "image", data))
    grey = colour.convert("L").convert("RGB").tobytes()
    assert pixels(row_part) == grey != colour.tobytes()
    assert pixels(sent(row_part)) == grey


def test_hf_worker_processes_only_where_the_main_script_is_guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from vlmbench_plugins import hf, hf_prepare

    scripts = {
        "guarded.py": 'import vlmbench\n\nif __name__ == "__main__":\n    vlmbench.evaluate()\n',
        "reversed.py": "if '__main__' == __name__: pass\n",
        "unguarded.py": "import vlmbench\nvlmbench.evaluate()  # runs again in every spawned process\n",
        "guard and work.py": 'import vlmbench\nresults = vlmbench.evaluate()\nif __name__ == "__main__":\n    print(results)\n',
        "guard in a comment.py": "import vlmbench\nvlmbench.evaluate()  # unlike if __name__ == '__main__' scripts\n",
        "work in a default.py": 'def f(x=print("work")):\n    pass\n\nif __name__ == "__main__":\n    f()\n',
    }
    verdicts = {}
    for name, code in scripts.items():
        (tmp_path / name).write_text(code)
        main_module = types.ModuleType("__main__")
        main_module.__file__ = str(tmp_path / name)
        monkeypatch.setitem(sys.modules, "__main__", main_module)
        verdicts[name] = hf_prepare.main_module_is_guarded()
    main_module = types.ModuleType("__main__")
    main_module.__file__ = str(REPO / "vlmbench" / "__main__.py")  # python -m vlmbench
    monkeypatch.setitem(sys.modules, "__main__", main_module)
    verdicts["python -m vlmbench"] = hf_prepare.main_module_is_guarded()
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # python -c, or interactive
    verdicts["no file"] = hf_prepare.main_module_is_guarded()
    assert verdicts == {
        "guarded.py": True,
        "reversed.py": True,
        "unguarded.py": False,
        "guard and work.py": False,
        "guard in a comment.py": False,
        "work in a default.py": False,
        "python -m vlmbench": True,
        "no file": True,
    }
    assert hf.default_prepare_processes("cuda") == min(4, hf_prepare.usable_cores() // 4)
    assert hf_prepare.usable_cores(local_processes=2) == max(1, hf_prepare.usable_cores() // 2)


def test_hf_chunks_are_bounded_by_bytes_but_hold_at_least_one_batch() -> None:
    pytest.importorskip("torch")
    from vlmbench_plugins import hf

    backend = object.__new__(hf.HFBackend)
    backend.batch_size, backend.chunk_size = 4, 256
    backend.chunk_bytes = 3 * 100 * 100 * 3  # three decoded 100x100 images
    part = ImagePart(data=b"x", format="PNG", size=(100, 100))

    def stream(n: int, shared: bool = False) -> Iterator[Request]:
        for i in range(n):
            image = part if shared else ImagePart(data=b"x", format="PNG", size=(100, 100))
            yield Request(f"r{i}", (Message("user", (image, TextPart("q"))),))

    def chunks(requests: Iterator[Request]) -> list[list[str]]:
        """The request ids of each chunk, as the backend's batching reads them."""
        held_over: collections.deque[Request] = collections.deque()
        ordered = hf._held_over_first(held_over, requests)
        return [[r.id for r in chunk] for chunk in iter(lambda: backend._next_chunk(ordered, held_over), [])]

    assert [len(chunk) for chunk in chunks(stream(20))] == [4, 4, 4, 4, 4]  # the batch is the floor
    backend.batch_size = 2
    # Three images' worth stops a chunk, cut back to the whole batch; the third request opens the next chunk.
    assert chunks(stream(7)) == [["r0", "r1"], ["r2", "r3"], ["r4", "r5"], ["r6"]]
    assert [len(chunk) for chunk in chunks(stream(300, shared=True))] == [256, 44]  # one shared image counts once
    assert hf.pixel_bytes(ImagePart(Image.new("RGB", (5, 4)))) == 60


# --- 3. rate limits without stalls ---------------------------------------------------------------


def test_a_server_at_capacity_costs_no_global_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai")
    from vlmbench.pluginmanager import backend_spec

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    capacity, asked, n, retry_after = 4, 16, 80, 2.0
    with FaultServer(latency=0.1, capacity=capacity, retry_after=f"{retry_after:g}") as server:
        backend = backend_spec("openai").factory({"base_url": server.base_url, "model": "tiny", "num_concurrent": str(asked)}, BackendOptions())
        try:
            requests = [Request(f"r{i}", (Message("user", (TextPart(f"question {i}"),)),), GenerationSettings(max_new_tokens=4)) for i in range(n)]
            responses = list(backend.generate(requests))
            limiter = backend.limiter
        finally:
            backend.close()
        events, outcomes = server.events(), server.outcomes()
    assert len(responses) == n and all(r.text == "Yes." for r in responses)
    assert server.resent_after_success() == {} and server.max_serving <= capacity
    refused = [e for e in events if e.outcome == "429"]
    assert refused and all(e.at_capacity for e in refused)
    assert max(v.count("429") for v in outcomes.values()) <= 2  # no more retries per answer than before
    assert len(refused) <= asked - capacity + 4  # the first burst, then a few careful probes
    assert limiter.pauses == 0 and capacity - 1 <= limiter.limit <= capacity + 1
    # Only the refused requests wait their Retry-After; the others go on. In the first half of the
    # first refused request's wait, the server keeps taking new requests (the old limiter paused
    # every request for the whole Retry-After: none arrived in that window).
    first = refused[0]
    assert first.finished is not None
    fresh = [e for e in events if outcomes[e.key] == ["200"] and first.finished < e.arrived < first.finished + retry_after / 2]
    assert len(fresh) >= 2 * capacity


def drive(limiter: AdaptiveLimiter, steps: Callable[[AdaptiveLimiter], Any]) -> Any:
    async def run() -> Any:
        return await steps(limiter)

    return asyncio.run(run())


def test_the_limiter_settles_at_the_capacity_and_probes_above_it_ever_more_rarely() -> None:
    async def steps(limiter: AdaptiveLimiter) -> list[int]:
        tickets = [await limiter.acquire() for _ in range(32)]
        for ticket in tickets[8:]:  # the server took 8 of the burst and refused the rest at once
            limiter.release(ticket, rate_limited=True, wait=1.0)
        assert (limiter.limit, limiter.ceiling, limiter.pauses) == (8, 9, 0)
        held, probes = tickets[:8], []
        for step in range(400):  # each success frees a slot and the next request takes it
            limiter.release(held.pop(0), ok=True)
            while limiter.in_flight < limiter.limit:
                ticket = await limiter.acquire()
                if ticket.level > 8:  # a probe: the server refuses it
                    probes.append(step)
                    limiter.release(ticket, rate_limited=True, wait=1.0)
                    continue
                held.append(ticket)
        assert limiter.limit == 8 and limiter.lowest == 8
        return probes

    probes = drive(AdaptiveLimiter(32), steps)
    gaps = [b - a for a, b in itertools.pairwise([0, *probes])]
    assert 2 <= len(probes) <= 4 and all(later > earlier for earlier, later in itertools.pairwise(gaps))


def test_the_limiter_pauses_only_when_a_lone_request_is_refused() -> None:
    async def steps(limiter: AdaptiveLimiter) -> None:
        loop = asyncio.get_running_loop()
        ticket = await limiter.acquire()
        limiter.release(ticket, rate_limited=True, wait=30.0)  # refused alone: the server takes none now
        assert limiter.pauses == 1 and limiter.resume_at >= loop.time() + 29
        waiting = asyncio.ensure_future(limiter.acquire())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()  # new requests wait as long as the server asked
        waiting.cancel()

    drive(AdaptiveLimiter(4), steps)


# --- 4. start-up -----------------------------------------------------------------------------------

HEAVY = {"torch", "transformers", "datasets", "openai", "httpx", "PIL", "numpy", "pyarrow", "pandas", "scipy", "asyncio", "multiprocessing"}


@pytest.mark.parametrize("command", [["--help"], ["ls", "models"]])
def test_help_and_listing_models_import_nothing_heavy(command: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "vlmbench", *command], capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not {name.split(".")[0] for name in imported} & HEAVY
    assert "vlmbench.scoring.rules" not in imported  # its patterns are compiled when something is scored
    assert "pickle" not in imported  # the hf workers' pipes pickle; listing the backend does not
    # A backend's module is imported when the backend is built, a command's flags when it is the one run.
    assert not imported & {"vlmbench.http", "vlmbench_plugins.openai_api", "vlmbench_plugins.hf", "vlmbench_plugins.baselines", "hashlib"}
    assert not imported & {"vlmbench_plugins.align.command", "vlmbench_plugins.align.trainers"}
    if command == ["--help"]:
        assert "tabulate" not in imported  # tables are printed by `ls`, not by the help
        assert "email.utils" not in imported  # only a Retry-After given as a date needs it (`ls` has it through tabulate)
        # No backend is listed, no log line is written, nothing is read as JSON: none of their modules is needed.
        assert not imported & {"vlmbench.backend", "vlmbench.scoring.base", "logging", "json", "datetime", "difflib"}


def test_response_is_unchanged_by_the_image_machinery() -> None:
    # Response and Request keep their plain-dataclass behaviour: equal requests with shared parts compare equal.
    part = ImagePart(data=FILES["png"][1], format="PNG", size=(31, 17))
    one = Request("r", (Message("user", (part, TextPart("q"))),))
    two = Request("r", (Message("user", (ImagePart(data=FILES["png"][1], format="PNG", size=(31, 17)), TextPart("q"))),))
    assert one == two and Response("r", text="x").text == "x"


# --- pages of memory-mapped data are let go once read -----------------------------------------


def mapped_rss(files: list[str]) -> int:
    """Resident bytes of this process's maps of ``files`` (from /proc/self/smaps)."""
    import os

    wanted, total, current = {os.path.realpath(f) for f in files}, 0, None
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            fields = line.split()
            if not fields[0].endswith(":"):  # a map's header line: its file is the sixth field
                current = fields[5] if len(fields) > 5 else None
            elif fields[0] == "Rss:" and current in wanted:
                total += int(fields[1]) * 1024
    return total


needs_smaps = pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")


@needs_smaps
def test_images_read_from_mapped_files_do_not_stay_resident(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from vlmbench.data import mapped
    from vlmbench.data.arrowdata import ArrowData
    from vlmbench.data.sources import DatasetInfo, DocTable

    mib = 1024 * 1024
    monkeypatch.setattr(mapped, "RELEASE_EVERY", 2 * mib)
    stored = [bytes([i]) * mib for i in range(12)]  # not images: the hash path reads any bytes
    features = datasets.Features({"image": datasets.Image(decode=False)})
    datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in stored]}, features=features).save_to_disk(str(tmp_path / "d"))
    dataset = datasets.load_from_disk(str(tmp_path / "d"))  # memory-mapped, as every dataset `datasets` loads
    files = [f["filename"] for f in dataset.cache_files]
    table = DocTable(rows=[{"_source": 0, "_row": i} for i in range(12)], sources=[])
    table.add_source(ArrowData.of_dataset(dataset), DatasetInfo("d", None, "train", None, dataset._fingerprint, 12, synthetic=False))
    most = 0
    for row in table.rows:
        assert table.image_sha256(row) == hashlib.sha256(stored[row["_row"]]).hexdigest()
        most = max(most, mapped_rss(files))
    assert 0 < most <= 3 * mib + 64 * 1024  # released every 2 MiB read: never the 12 MiB read in all
    assert mapped_rss(files) < 2 * mib
    # Released pages are read again from the file, unchanged.
    assert [dataset.cast_column("image", datasets.Image(decode=False))[i]["image"]["bytes"] for i in range(12)] == stored


@needs_smaps
def test_only_whole_pages_of_read_only_maps_of_the_named_files_are_released(tmp_path: Path) -> None:
    import mmap

    from vlmbench.data.mapped import read_only_maps, release_pages

    path = tmp_path / "data.bin"
    path.write_bytes(b"\x00" * 65536)
    anonymous = bytearray(b"kept" * 16384)
    with open(path, "r+b") as file:
        shared, private = mmap.mmap(file.fileno(), 0), mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        shared[:5], private[:5] = b"saved", b"local"  # written in memory only (not flushed)
        reader = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        assert reader[:5] == b"saved" and mapped_rss([str(path)]) > 0
        ((low, high),) = read_only_maps([str(path)])
        page = mmap.PAGESIZE
        assert release_pages([(low + 1, 2 * page)], [str(path)]) == page  # only the whole page inside the range
        everywhere = [(0, 1 << 47)]  # any address: only the read-only map of the named file may be advised
        assert release_pages(everywhere, [str(tmp_path / "other.bin")]) == 0
        assert release_pages(everywhere, [str(path)]) == high - low == 65536
        assert shared[:5] == b"saved" and private[:5] == b"local" and reader[:5] == b"saved"
        assert anonymous == bytearray(b"kept" * 16384)
        for view in (shared, private, reader):
            view.close()


def test_hub_data_is_the_data_and_cache_load_dataset_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parquet is read one row group at a time (no pre-buffering of whole files); the dataset, its fingerprint
    and its Arrow cache files stay exactly those of ``datasets.load_dataset``, so caches built before are reused."""
    import datasets

    builders: list[Any] = []
    real_builder = datasets.load_dataset_builder

    def keep_builder(*args: Any, **kwargs: Any) -> Any:  # the real builder, kept to look at its configuration
        builders.append(real_builder(*args, **kwargs))
        return builders[-1]

    monkeypatch.setattr(datasets, "load_dataset_builder", keep_builder)
    folder = parquet_copy(tmp_path / "UnsafeConcepts", seed=3)
    assert main(hub_run(folder, tmp_path / "out", tasks="perception-image")) == 0
    monkeypatch.undo()
    manifest = json.loads((run_dir(tmp_path / "out") / "run.json").read_text())
    (recorded,) = manifest["tasks"]["perception-image"]["datasets"]
    reference = datasets.load_dataset(str(folder), split="train")
    assert recorded["fingerprint"] == reference._fingerprint and recorded["num_rows"] == 4
    assert [b.config.fragment_scan_options.pre_buffer for b in builders] == [False]  # how the run read the files
    records = [json.loads(line) for line in (run_dir(tmp_path / "out") / "samples" / "perception-image.jsonl").read_text().splitlines()]
    expected = {hashlib.sha256(cell["bytes"]).hexdigest() for cell in reference.cast_column("image", datasets.Image(decode=False))["image"]}
    assert {r["image"]["sha256"] for r in records} == expected
