"""Loads of local data remembered between runs, so that a re-run opens the Arrow files without ``datasets``.

Importing ``datasets`` and letting it resolve a local copy's files into its Arrow cache takes about
1.2 s of a run over the study's datasets, and gives the same Arrow files every time the copy has not
changed. After ``datasets`` has loaded a local dataset (a folder or file given as a task's data or with
``--data_files``, or the built-in generated sets), a small JSON record keeps what it gave: the Arrow files
(each with its :func:`~vlmbench.data.hashcache.file_identity`), the features, the fingerprint and the row
count, under the identity of every file of the local copy. A later load of the same copy, split and
configuration, with the same ``datasets`` version and cache settings, opens those Arrow files directly
(:meth:`~vlmbench.data.arrowdata.ArrowData.from_files`) while every file of the copy and every Arrow file
is still the one recorded; any difference, an unreadable record or a file that cannot be opened means
``datasets`` loads it again (and the record is written anew).

What is never recorded:
- data from the Hub: only the Hub can say whether its files changed, so ``datasets`` asks it every time;
- data whose features ``datasets`` decodes when reading rows (``Json``, audio...): see
  :meth:`~vlmbench.data.arrowdata.ArrowData.plain`;
- data held in memory, without Arrow files;
- a copy with a file that changed while it was loaded, or too shortly before (see
  :func:`~vlmbench.data.hashcache.settled`), or on Windows, where a file's times cannot show every change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from vlmbench.cache import cache_dir
from vlmbench.data.arrowdata import ArrowData, file_features
from vlmbench.data.hashcache import KEEPS_NAMED_FILES, RECENT_NS, _identity, _write_json, file_identity, read_json

FORMAT = 1
_COPY = re.compile(r"[0-9a-f]{64}@[0-9]{1,20}")
MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_FILES = 100_000
"""A local copy with more files than this is not recorded (listing it would cost more than loading it)."""
CACHE_SETTINGS = ("HF_DATASETS_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HF_DATASETS_IN_MEMORY_MAX_SIZE")


def load_key(loader: str, path: Path, name: str | None, split: str) -> dict[str, Any]:
    """What decides the result of one load: the loader, the local copy, configuration and split, the
    ``datasets`` version and the environment settings it reads."""
    return {
        "format": FORMAT,
        "loader": loader,
        "path": os.path.abspath(path),
        "name": name,
        "split": split,
        "datasets": _datasets_version(),
        "settings": {setting: os.environ.get(setting) for setting in CACHE_SETTINGS},
    }


@functools.cache
def _datasets_version() -> str | None:
    """The installed ``datasets`` version, looked up once per process (a lookup reads package metadata: milliseconds)."""
    from importlib import metadata

    try:
        return metadata.version("datasets")
    except metadata.PackageNotFoundError:
        return None


def copy_identity(path: Path) -> str | None:
    """What identifies every file of a local copy (a file, or a folder and everything under it, links
    followed) as it is now: their :func:`~vlmbench.data.hashcache.file_identity`, and when the newest
    of them last changed; None when a file cannot be read or there are more than :data:`MAX_FILES`."""
    names = _files_under(path)
    if names is None:
        return None
    digest = hashlib.sha256()
    newest = 0
    for name in names:
        try:
            stat = os.stat(name)
        except OSError:
            return None
        newest = max(newest, stat.st_mtime_ns, stat.st_ctime_ns)
        digest.update(_identity(name, stat).encode("utf-8", "surrogateescape") + b"\n")
    return f"{digest.hexdigest()}@{newest}"


def _settled(identity: str, at_ns: int) -> bool:
    """Whether, at ``at_ns``, the newest change to the files of a :func:`copy_identity` was old enough that any
    next change shows in their times (see :func:`~vlmbench.data.hashcache.settled`)."""
    return at_ns - int(identity.rpartition("@")[2]) >= RECENT_NS


def _files_under(path: Path) -> list[str] | None:
    """Every file at or under ``path``, sorted; None past :data:`MAX_FILES` or when the path cannot be listed."""
    if path.is_file():
        return [str(path)]
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    try:
        for folder, subfolders, files in os.walk(path, followlinks=True, onerror=_raise):
            stat = os.stat(folder)
            if (stat.st_dev, stat.st_ino) in seen:  # a link back up the tree
                subfolders.clear()
                continue
            seen.add((stat.st_dev, stat.st_ino))
            found.extend(os.path.join(folder, name) for name in files)
            if len(found) > MAX_FILES:
                return None
    except OSError:
        return None
    return sorted(found)


def _raise(error: OSError) -> None:
    raise error


class LoadRecords:
    """The remembered loads, one JSON file each under ``folder`` (default: the cache's ``loads/``)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else cache_dir() / "loads"

    def _path(self, key: dict[str, Any]) -> Path:
        return self.folder / (hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8", "surrogateescape")).hexdigest() + ".json")

    def open(self, key: dict[str, Any], path: Path) -> ArrowData | None:
        """The data of a remembered load of ``key`` while the copy at ``path`` and its Arrow files are unchanged; else None."""
        if not KEEPS_NAMED_FILES:
            return None
        record = read_json(self._path(key), MAX_RECORD_BYTES)
        if not _well_formed(record) or record["key"] != key or record["copy"] != copy_identity(path):
            return None
        files = [name for name, _ in record["files"]]
        if len(set(files)) != len(files) or any(file_identity(name) != identity for name, identity in record["files"]):
            return None
        try:
            data = ArrowData.from_files(files, record["features"], record["fingerprint"])
        except Exception:  # a file pyarrow cannot read (damaged, truncated): datasets loads the data again
            return None
        return data if len(data) == record["num_rows"] and data.plain() else None

    def keep(self, key: dict[str, Any], path: Path, before: str | None, began_ns: int, data: ArrowData) -> None:
        """Remember a load of ``key`` that gave ``data``, if the copy at ``path`` is still ``before`` (its
        :func:`copy_identity` when the load began, at ``began_ns`` by ``time.time_ns()``), had settled then,
        and the data can be read again without ``datasets``: every Arrow file holds the features it gave."""
        if not KEEPS_NAMED_FILES or before is None or not _settled(before, began_ns) or not data.files or not data.plain():
            return
        if copy_identity(path) != before or not all(file_features(name) == data.features for name in data.files):
            return
        files = [(name, file_identity(name)) for name in data.files]
        if any(identity is None for _, identity in files):
            return
        record = {
            "key": key,
            "copy": before,
            "files": [list(pair) for pair in files],
            "features": data.features,
            "fingerprint": data.fingerprint,
            "num_rows": len(data),
        }
        _write_json(self._path(key), record)


def _well_formed(record: Any) -> bool:
    """Whether a record file holds what :meth:`LoadRecords.keep` writes (anything else is ignored)."""
    if not isinstance(record, dict) or not isinstance(record.get("key"), dict):
        return False
    if not (isinstance(record.get("copy"), str) and _COPY.fullmatch(record["copy"])):
        return False
    files = record.get("files")
    if not isinstance(files, list) or not files:
        return False
    if not all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in files):
        return False
    return isinstance(record.get("features"), dict) and isinstance(record.get("fingerprint"), str) and type(record.get("num_rows")) is int
