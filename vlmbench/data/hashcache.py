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
being hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMAT = 1
_HEX = re.compile(r"[0-9a-f]{64}")
_ROW = re.compile(r"[0-9]{1,12}")


def file_identity(name: str) -> str | None:
    """What identifies one file as it is now: device, inode, absolute path, size, modification and change
    times; None when it cannot be read."""
    try:
        stat = os.stat(name)
    except OSError:
        return None
    return f"{stat.st_dev}:{stat.st_ino}:{os.path.abspath(name)}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"


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


class ImageHashes:
    """The kept hashes of one image column of one dataset: ``identity`` is :func:`files_identity` of
    ``cache_files`` when the data was loaded. ``rows``: the hashes of images held in the dataset's files;
    ``files``: those of images held in files it names, each with the file's :func:`file_identity`."""

    def __init__(self, folder: Path, identity: str, column: str, cache_files: Iterable[str] = (), fingerprint: str = "") -> None:
        self.path = folder / f"{identity[:32]}-{hashlib.sha256(column.encode()).hexdigest()[:12]}.json"
        self.identity = identity
        self.column = column
        self._files = (tuple(cache_files), fingerprint)
        self.rows, self.files = self._read()
        self._saved = (len(self.rows), len(self.files))

    def _read(self) -> tuple[dict[int, str], dict[int, tuple[str, str]]]:
        try:
            document: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # unreadable, not JSON, or nested past the parser's limit
            return {}, {}
        if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("identity") != self.identity:
            return {}, {}
        if document.get("column") != self.column or not isinstance(document.get("rows"), dict):
            return {}, {}
        rows: dict[int, str] = {}
        for row, digest in document["rows"].items():
            if not (isinstance(row, str) and _ROW.fullmatch(row) and isinstance(digest, str) and _HEX.fullmatch(digest)):
                return {}, {}  # not written by this module: hash everything again
            rows[int(row)] = digest
        files: dict[int, tuple[str, str]] = {}
        named = document.get("files", {})  # absent from files written before images in named files were kept
        if not isinstance(named, dict):
            return rows, {}
        for row, kept in named.items():
            if not (isinstance(row, str) and _ROW.fullmatch(row) and isinstance(kept, list) and len(kept) == 2):
                return rows, {}
            file, digest = kept
            if not (isinstance(file, str) and isinstance(digest, str) and _HEX.fullmatch(digest)):
                return rows, {}
            files[int(row)] = (file, digest)
        return rows, files

    def of_file(self, row: int, path: str) -> str | None:
        """The kept hash of ``row``'s image file ``path``, while that file is still the one hashed."""
        kept = self.files.get(row)
        return kept[1] if kept is not None and kept[0] == file_identity(path) else None

    def keep_file(self, row: int, path: str, identity: str | None, digest: str) -> None:
        """Keep the hash of ``row``'s image file, if the file is still ``identity`` (its identity before it was read)."""
        if identity is not None and file_identity(path) == identity:
            self.files[row] = (identity, digest)

    def save(self) -> None:
        """Write the hashes (atomically) when some were added since the file was read; never fails a run."""
        if (len(self.rows), len(self.files)) == self._saved:
            return
        if self._files[0] and files_identity(*self._files) != self.identity:
            return  # the files changed since the data was loaded: these hashes may be of other bytes
        document = {
            "format": FORMAT,
            "identity": self.identity,
            "column": self.column,
            "rows": {str(k): v for k, v in sorted(self.rows.items())},
            "files": {str(k): list(v) for k, v in sorted(self.files.items())},
        }
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, scratch = tempfile.mkstemp(prefix=".hashes-", dir=self.path.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(document, file, separators=(",", ":"))
                os.replace(scratch, self.path)
                self._saved = (len(self.rows), len(self.files))
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(scratch)
