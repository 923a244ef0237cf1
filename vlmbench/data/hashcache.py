"""The sha256 of each stored image, kept between runs.

A response store keys each request by the hashes of its images, so every run hashes the encoded bytes
of every image it sends (about 1.3 GB at the study's full size). A dataset's Arrow cache files never
change once written (``datasets`` writes new files, under a new fingerprint, for changed data), so the
hashes of one image column are kept in a small JSON file named after those files (device, inode, path,
size, modification and change times) and the dataset's fingerprint: the next run over the same files
reads them instead of hashing the bytes again. The files are identified when the data is loaded, and
the hashes are written only if the files are still those then. Any change to the files (a rewrite, a
replacement, even one that keeps size and modification time: the change time and inode differ), a file
that cannot be read, or a value that is not a sha256 means the images are hashed again.

Some datasets hold only the paths of their images (an image folder such as MOSSBench's, on the Hub or
copied locally): the bytes are in files that may change while the dataset's own files do not. Each such
image's hash is kept with that file's identity (the same device, inode, path, size and times), is read
only while the file is still the one hashed, and is kept only when the file did not change while it was
being hashed. What this trusts is the file's metadata: a change that leaves every one of those fields as it
was (bytes written through a memory map of the file, which the kernel has not yet written back, change no
time) is not seen. On Windows, where a file's change time is its creation time, so that an edit of the
same size with its modification time put back would go unseen, hashes of named files are not kept. The
bytes read from such a file to be sent are hashed again and checked against the hash their requests are
keyed by (``DocTable.encoded_image``): other bytes are an error for that sample, and its kept hash is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vlmbench.safefiles import read_regular_file, replace_file

FORMAT = 1
MAX_KEPT_BYTES = 512 * 1024 * 1024
"""The largest kept-hash file read (about 80 bytes an image: several million images)."""
_HEX = re.compile(r"[0-9a-f]{64}")
_ROW = re.compile(r"[0-9]{1,12}")


KEEPS_NAMED_FILES = os.name != "nt"
"""Whether hashes of image files a dataset names are kept: not on Windows (see the module's docstring)."""

RECENT_NS = 2_000_000_000
"""An image file changed less than this long before it was hashed is hashed again by the next run. File
times come from a coarse clock (a kernel tick; 2 s on FAT), so a second change of the same size within the
same tick would leave the file's identity as it was; a file this old can no longer change unseen."""


def _identity(name: str, stat: os.stat_result) -> str:
    return f"{stat.st_dev}:{stat.st_ino}:{os.path.abspath(name)}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"


def file_identity(name: str) -> str | None:
    """What identifies one file as it is now: device, inode, absolute path, size, modification and change
    times; None when it cannot be read (or its name cannot be a file's: a NUL, a lone surrogate)."""
    try:
        return _identity(name, os.stat(name))
    except (OSError, ValueError):
        return None


def read_json(path: Path, max_bytes: int) -> Any:
    """The JSON document of a regular file of at most ``max_bytes`` that this package wrote; None when it is
    missing, unreadable, not a regular file, too large, not UTF-8 or not JSON (never an error)."""
    try:
        return json.loads(read_regular_file(path, max_bytes, "kept file").decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # FileRefused, UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def files_identity(cache_files: Iterable[str], fingerprint: str) -> str | None:
    """What identifies a dataset's stored rows: its Arrow files (:func:`file_identity` of each) and
    fingerprint; None when a file cannot be read (then nothing is kept)."""
    parts = [f"fingerprint={fingerprint}"]
    for name in sorted(cache_files):
        identity = file_identity(name)
        if identity is None:
            return None
        parts.append(identity)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def settled(path: str, before: str | None) -> bool:
    """Whether a hash of ``path`` read when its identity was ``before`` may be kept: the file did not change
    while it was read, nor (:data:`RECENT_NS`) too shortly before, and file times can show every change
    (:data:`KEEPS_NAMED_FILES`)."""
    if not KEEPS_NAMED_FILES or before is None:
        return False
    try:
        stat = os.stat(path)
    except OSError:
        return False
    return _identity(path, stat) == before and time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) >= RECENT_NS


class FileHashes:
    """The sha256 of whole files (a local model's weights), kept between runs in one JSON file, each with its
    file's :func:`file_identity`: a file is read again only when it is new or its identity changed, and its
    hash is kept only once it has settled (:func:`settled`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = self._read()
        self._changed = False

    def _read(self) -> dict[str, tuple[str, str]]:
        document = read_json(self.path, MAX_KEPT_BYTES)
        if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(document.get("files"), dict):
            return {}
        entries: dict[str, tuple[str, str]] = {}
        for name, kept in document["files"].items():
            if not (isinstance(kept, list) and len(kept) == 2 and isinstance(kept[0], str) and isinstance(kept[1], str) and _HEX.fullmatch(kept[1])):
                return {}  # not written by this module: hash everything again
            entries[str(name)] = (kept[0], kept[1])
        return entries

    def sha256(self, path: str) -> str:
        """The sha256 of the file's bytes, kept or read now; ``OSError`` when it cannot be read."""
        name, before = os.path.abspath(path), file_identity(path)
        kept = self.entries.get(name)
        if before is not None and kept is not None and kept[0] == before:
            return kept[1]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if settled(path, before):
            self.entries[name] = (before, digest.hexdigest())  # type: ignore[assignment]  # settled() is False for None
            self._changed = True
        return digest.hexdigest()

    def save(self) -> None:
        """Write the hashes (atomically) when some were kept since the file was read; never fails a run."""
        if not self._changed:
            return
        document = {"format": FORMAT, "files": {name: list(kept) for name, kept in sorted(self.entries.items())}}
        self._changed = not _write_json(self.path, document)


class ImageHashes:
    """The kept hashes of one image column of one dataset: ``identity`` is :func:`files_identity` of
    ``cache_files`` when the data was loaded. ``rows``: the hashes of images held in the dataset's files;
    ``named_files``: those of images in files the dataset names, each with the file's :func:`file_identity`."""

    def __init__(self, folder: Path, identity: str, column: str, cache_files: Iterable[str] = (), fingerprint: str = "") -> None:
        self.path = folder / f"{identity[:32]}-{hashlib.sha256(column.encode()).hexdigest()[:12]}.json"
        self.identity = identity
        self.column = column
        self._dataset_files = (tuple(cache_files), fingerprint)
        self.rows, self.named_files = self._read()
        self._changed = False

    def _read(self) -> tuple[dict[int, str], dict[int, tuple[str, str]]]:
        document = read_json(self.path, MAX_KEPT_BYTES)
        if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("identity") != self.identity:
            return {}, {}
        if document.get("column") != self.column or not isinstance(document.get("rows"), dict):
            return {}, {}
        rows: dict[int, str] = {}
        for row, digest in document["rows"].items():
            if not (isinstance(row, str) and _ROW.fullmatch(row) and isinstance(digest, str) and _HEX.fullmatch(digest)):
                return {}, {}  # not written by this module: hash everything again
            rows[int(row)] = digest
        named: dict[int, tuple[str, str]] = {}
        entries = document.get("files", {})  # absent from files written before images in named files were kept
        if not isinstance(entries, dict):
            return rows, {}
        for row, kept in entries.items():
            if not (isinstance(row, str) and _ROW.fullmatch(row) and isinstance(kept, list) and len(kept) == 2):
                return rows, {}
            file, digest = kept
            if not (isinstance(file, str) and isinstance(digest, str) and _HEX.fullmatch(digest)):
                return rows, {}
            named[int(row)] = (file, digest)
        return rows, named

    def keep(self, row: int, digest: str) -> None:
        """Keep the hash of ``row``'s image, held in the dataset's own files."""
        self.rows[row] = digest
        self._changed = True

    def of_file(self, row: int, identity: str) -> str | None:
        """The kept hash of ``row``'s image file, if it was hashed when the file was ``identity`` (:func:`file_identity` now)."""
        kept = self.named_files.get(row)
        return kept[1] if kept is not None and kept[0] == identity else None

    def keep_file(self, row: int, path: str, before: str | None, digest: str) -> None:
        """Keep the hash of ``row``'s image file ``path``, read when its identity was ``before`` (see :func:`settled`)."""
        if settled(path, before):
            self.named_files[row] = (before, digest)  # type: ignore[assignment]  # settled() is False for None
            self._changed = True

    def forget_file(self, row: int) -> None:
        """Drop the kept hash of ``row``'s image file (its bytes were found to differ from it) and save at once."""
        if self.named_files.pop(row, None) is not None:
            self._changed = True
            self.save()

    def save(self) -> None:
        """Write the hashes (atomically) when some were kept since the file was read; never fails a run."""
        if not self._changed:
            return
        if self._dataset_files[0] and files_identity(*self._dataset_files) != self.identity:
            return  # the files changed since the data was loaded: these hashes may be of other bytes
        document = {
            "format": FORMAT,
            "identity": self.identity,
            "column": self.column,
            "rows": {str(k): v for k, v in sorted(self.rows.items())},
            "files": {str(k): list(v) for k, v in sorted(self.named_files.items())},
        }
        self._changed = not _write_json(self.path, document)


def _write_json(path: Path, document: dict[str, Any]) -> bool:
    """Write ``document`` to ``path`` atomically; False when it could not be written (never an error)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, json.dumps(document, separators=(",", ":")))
        return True
    return False
