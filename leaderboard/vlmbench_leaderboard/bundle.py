"""Submission bundles: ``vlmbench submit`` packs a run; the maintainer's ``verify`` re-checks everything.

A bundle is a ``.tar.gz`` holding ``manifest.json`` (sha256 of every other file, and the headline
judge of each task as ``results.json`` records it), ``metadata.json``
(who made the model), and the run itself: ``run.json``, ``results.json`` and ``samples/<task>.jsonl``
for exactly the tasks run. Reading one treats it as hostile: the archive is parsed by
:mod:`vlmbench_leaderboard.safetar` (never by ``tarfile``, never extracted), every size is checked
before it is read, and every JSON member goes through :mod:`vlmbench_leaderboard.strictjson`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import vlmbench
from vlmbench.errors import UserError
from vlmbench_leaderboard import strictjson
from vlmbench_leaderboard.judges import headline_identities
from vlmbench_leaderboard.metadata import METADATA_FIELDS, check_text_fields
from vlmbench_leaderboard.problems import Rejected
from vlmbench_leaderboard.safetar import Limits, read_members
from vlmbench_leaderboard.text import terminal

__all__ = [
    "LIMITS",
    "MEMBER_CAPS",
    "METADATA_FIELDS",
    "Bundle",
    "Rejected",
    "bundle_path",
    "pack",
    "read_bundle",
    "read_bundle_bytes",
    "write_bundle",
]

MEMBER_NAME = re.compile(r"manifest\.json|metadata\.json|results\.json|run\.json|samples/[a-z0-9][a-z0-9_.-]{0,80}\.jsonl")
KIB, MIB = 2**10, 2**20
LIMITS = Limits(compressed=64 * MIB, total=96 * MIB, members=64, extended_header=4 * KIB, name=256)
MEMBER_CAPS = {"manifest.json": 64 * KIB, "metadata.json": 64 * KIB, "run.json": 4 * MIB, "results.json": 16 * MIB}
SAMPLES_CAP = 32 * MIB


def member_cap(name: str) -> int:
    """The most bytes a member of this name may hold."""
    return MEMBER_CAPS.get(name, SAMPLES_CAP)


@lru_cache(maxsize=1)
def bundle_schema() -> dict[str, Any]:
    """The JSON Schema of a bundle's manifest and metadata, as shipped."""
    schema: dict[str, Any] = json.loads(resources.files("vlmbench.schemas").joinpath("bundle.schema.json").read_text(encoding="utf-8"))
    return schema


def bundle_path(out: Path) -> Path:
    """The file ``submit --out`` writes: ``out`` with ``.tar.gz`` added when missing."""
    out = Path(out)
    if out.name in ("", ".."):  # "", ".", "/" and ".." name a folder, never a file
        raise UserError(f"--out {terminal(out)!r}: names a folder, not a file; pass the bundle file to write (e.g. --out my-model.tar.gz)")
    return out if out.name.endswith(".tar.gz") else out.with_name(out.name + ".tar.gz")


def check_out(out: Path, force: bool = False) -> Path:
    """The bundle file ``out`` names (:func:`bundle_path`), once it is known that it can be written there: every
    parent that exists is a folder, and no file is there unless ``force``. Looked at with ``os.stat`` only."""
    out = bundle_path(out)
    blocker = next((p for p in reversed(out.parents) if os.path.lexists(p) and not os.path.isdir(p)), None)
    if blocker is not None:
        raise UserError(f"--out {terminal(out)}: {terminal(blocker)} is not a folder; choose an --out in a folder")
    if os.path.lexists(out) and not force:
        raise UserError(f"{terminal(out)}: already exists; pass --force to overwrite it, or choose another --out")
    return out


def pack(run_dir: Path, run: dict[str, Any], metadata: dict[str, Any]) -> bytes:
    """The bundle of a scored run folder, as bytes: exactly the files of the tasks in ``run``. Deterministic."""
    run_dir = Path(run_dir)
    if (run_dir / "results.json").exists() and not (run_dir / "results.json").is_file():
        raise UserError(f"{terminal(run_dir / 'results.json')}: not a regular file; the run folder is damaged")
    if not (run_dir / "results.json").is_file():
        raise UserError(f"{terminal(run_dir)}: no results.json; submit a finished, scored run folder (see `vlmbench score`)")
    for name in ("run.json", "results.json", "samples"):
        _not_a_link(run_dir, name)
    files = {
        "metadata.json": _json_bytes({**metadata, "vlmbench_version": vlmbench.__version__}),
        "run.json": (run_dir / "run.json").read_bytes(),
        "results.json": (run_dir / "results.json").read_bytes(),
    }
    tasks = run.get("tasks")
    for task in sorted(tasks) if isinstance(tasks, dict) else []:
        name = f"samples/{task}.jsonl"
        if not MEMBER_NAME.fullmatch(name):
            raise UserError(f"{terminal(run_dir)}: task name {terminal(task, 80)!r} cannot be submitted; run the leaderboard's tasks")
        _not_a_link(run_dir, name)
        if not (run_dir / name).is_file():  # looked at with os.stat: a named pipe or a device there is never opened
            if (run_dir / name).exists():
                raise UserError(f"{terminal(run_dir / name)}: not a regular file; the run folder is damaged")
            raise UserError(f"{terminal(run_dir / name)}: missing; the run folder is incomplete, rerun the same `vlmbench run` command")
        files[name] = (run_dir / name).read_bytes()
    manifest: dict[str, Any] = {
        "bundle_version": 1,
        "vlmbench_version": vlmbench.__version__,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    judges = _judges(files["results.json"])
    if judges:
        manifest["judges"] = judges
    _check_schema({"manifest": manifest, "metadata": json.loads(files["metadata.json"])}, "metadata")
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as compressed,  # gzip's own default: level 9 is 2-3x slower for ~2% less
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, data in {"manifest.json": _json_bytes(manifest), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _not_a_link(run_dir: Path, name: str) -> None:
    """Refuse a link in a run folder: a bundle holds the folder's own files, never one a link points to elsewhere."""
    if (run_dir / name).is_symlink():
        raise UserError(f"{terminal(run_dir / name)}: a link to a file or folder elsewhere; a bundle holds only the run folder's own files")


def _judges(results: bytes) -> dict[str, Any]:
    """The headline judge of each task of a results file (a damaged file has none here: ``submit``'s checks name it)."""
    try:
        document = json.loads(results)
        return headline_identities(document) if isinstance(document, dict) else {}
    except (ValueError, TypeError, AttributeError, RecursionError):
        return {}


def write_bundle(data: bytes, out: Path, force: bool = False) -> Path:
    """Write bundle bytes to ``out`` atomically; an existing file is replaced only with ``force``."""
    out = check_out(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        if force:
            os.replace(temporary, out)
        else:
            try:
                os.link(temporary, out)  # fails, rather than overwrites, when the file appeared meanwhile
            finally:
                os.unlink(temporary)
    except FileExistsError:
        raise UserError(f"{terminal(out)}: already exists; pass --force to overwrite it, or choose another --out") from None
    except OSError as exc:
        raise UserError(f"--out {terminal(out)}: cannot write it ({exc.strerror}); choose a writable folder") from None
    return out


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _check_schema(document: dict[str, Any], where: str) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(bundle_schema()).iter_errors(document))
    if error is not None:
        field_path = ".".join(str(p) for p in error.absolute_path)
        raise Rejected([f"{field_path or where}: {terminal(error.message, 200)}"])


@dataclass
class Bundle:
    """A bundle's files, read safely into memory and decoded."""

    files: dict[str, bytes]
    manifest: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    _lines: dict[str, list[Any]] = field(default_factory=dict, init=False, compare=False, repr=False)

    def json(self, name: str) -> Any:
        """A JSON member, decoded strictly (UTF-8, finite numbers, bounded depth)."""
        return strictjson.loads(self.files[name], name, member_cap(name))

    def lines(self, name: str) -> list[Any]:
        """A JSON Lines member, decoded strictly, one value per line (decoded once: callers only read it)."""
        if name not in self._lines:
            self._lines[name] = strictjson.loads_lines(self.files[name], name, member_cap(name))
        return self._lines[name]


def _checker() -> Any:
    """The per-member check of a reading: allowed name, once, within its size cap and the total."""
    seen: set[str] = set()
    total = [0]

    def check(name: str, size: int) -> str | None:
        if not MEMBER_NAME.fullmatch(name):
            return "unexpected name (allowed: manifest.json, metadata.json, run.json, results.json, samples/<task>.jsonl)"
        if name in seen:
            return "appears twice"
        if size > member_cap(name) or total[0] + size > LIMITS.total:
            return f"too large ({size} bytes; limits {member_cap(name)} for this file, {LIMITS.total} in all)"
        seen.add(name)
        total[0] += size
        return None

    return check


def read_bundle(path: Path) -> Bundle:
    """Read a bundle file without trusting it: regular files with allowed names only, sizes bounded, hashes checked."""
    path = Path(path)
    try:
        with _open_regular(path) as raw:
            return _read(raw, os.fstat(raw.fileno()).st_size)
    except FileNotFoundError:
        raise UserError(f"{terminal(path)}: no such bundle file") from None
    except IsADirectoryError:
        raise UserError(f"{terminal(path)}: a folder, not a bundle file; pass the .tar.gz that `vlmbench submit` wrote") from None
    except OSError as exc:
        raise Rejected([f"{terminal(path.name)}: cannot read it ({exc.strerror or type(exc).__name__})"]) from None


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, only if it is a regular file: looked at with ``os.stat`` before it is opened (a
    named pipe's open waits for a writer forever, a device's may act on it), opened non-blocking (a pipe put in
    its place meanwhile cannot block) and looked at again through the descriptor. :class:`Rejected` otherwise."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    if stat.S_ISREG(mode):
        raw = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)), "rb")
        mode = os.fstat(raw.fileno()).st_mode
        if stat.S_ISREG(mode):
            return raw
        raw.close()
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    kind = next((name for check, name in kinds if check(mode)), "a special file")
    raise Rejected([f"is {kind}, not a regular file; pass the .tar.gz that `vlmbench submit` wrote"])


def read_bundle_bytes(data: bytes) -> Bundle:
    """Read a bundle held in memory (as ``submit`` checks what it is about to write)."""
    return _read(io.BytesIO(data), len(data))


def _read(raw: BinaryIO, size: int) -> Bundle:
    files = {member.name: member.data for member in read_members(raw, size, _checker(), LIMITS)}
    bundle = Bundle(files)
    for name in ("manifest.json", "metadata.json"):
        if name not in files:
            raise Rejected([f"{name}: missing; pack the bundle with `vlmbench submit`"])
    bundle.manifest = bundle.json("manifest.json")
    bundle.metadata = bundle.json("metadata.json")
    check_text_fields(bundle.metadata)  # before the schema, whose message would quote the text
    _check_schema({"manifest": bundle.manifest, "metadata": bundle.metadata}, "manifest")
    listed = bundle.manifest["files"]
    present = set(files) - {"manifest.json"}
    for name in sorted(set(listed) ^ present):
        raise Rejected([f"{name}: {'listed in manifest.json but missing' if name in listed else 'not listed in manifest.json'}"])
    for name in sorted(listed):
        if hashlib.sha256(files[name]).hexdigest() != listed[name]:
            raise Rejected([f"{name}: sha256 does not match manifest.json (the file was changed after packing)"])
    for name in ("run.json", "results.json"):
        if name not in files:
            raise Rejected([f"{name}: missing"])
    return bundle
