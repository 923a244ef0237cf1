"""Submission bundles: ``vlmbench submit`` packs a run; the maintainer's ``verify`` re-checks everything.

A bundle is a ``.tar.gz`` holding ``manifest.json`` (sha256 of every other file), ``metadata.json``
(who made the model), and the run itself: ``run.json``, ``results.json`` and ``samples/<task>.jsonl``.
Reading one treats it as hostile: members are read into memory one by one (never extracted by the
archive library), and only regular files with known names and bounded sizes are accepted.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import vlmbench
from vlmbench.errors import UserError

MEMBER_NAME = re.compile(r"manifest\.json|metadata\.json|results\.json|run\.json|samples/[a-z0-9][a-z0-9_.-]{0,80}\.jsonl")
MAX_MEMBER_BYTES = 256 * 2**20
MAX_TOTAL_BYTES = 1024 * 2**20
MAX_MEMBERS = 64
METADATA_FIELDS = ("name", "org", "hub_id", "api", "revision", "parameters", "license", "precision", "date", "reference")


class Rejected(Exception):
    """A bundle that fails verification; ``reasons`` are one line each."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@lru_cache(maxsize=1)
def bundle_schema() -> dict[str, Any]:
    """The JSON Schema of a bundle's manifest and metadata, as shipped."""
    return json.loads(resources.files("vlmbench.schemas").joinpath("bundle.schema.json").read_text())


def default_metadata(run_dir: Path) -> dict[str, Any]:
    """Metadata filled from what the run recorded about its model; the submitter completes the rest."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    identity = run["model"].get("identity", {})
    backend = run["model"]["backend"]
    name = identity.get("pretrained") or identity.get("model") or backend
    return {
        "name": str(name).rstrip("/").split("/")[-1] if identity.get("pretrained") else str(name),
        "org": str(name).split("/")[0] if "/" in str(name) and not Path(str(name)).exists() else "",
        "hub_id": identity.get("pretrained") if identity.get("pretrained") and not Path(identity["pretrained"]).exists() else None,
        "api": identity.get("base_url") if backend == "openai" else None,
        "revision": identity.get("revision") or identity.get("commit_hash"),
        "parameters": None,
        "license": None,
        "precision": identity.get("dtype"),
        "date": date.today().isoformat(),
        "reference": backend in ("random", "always-safe", "always-unsafe"),
    }


def pack(run_dir: Path, out: Path, metadata: dict[str, Any]) -> Path:
    """Write the bundle of a scored run folder to ``out`` (``.tar.gz``). Deterministic for equal input."""
    run_dir = Path(run_dir)
    for required in ("run.json", "results.json"):
        if not (run_dir / required).is_file():
            raise UserError(f"{run_dir}: no {required}; submit a finished, scored run folder (see `vlmbench score`)")
    files = {"metadata.json": _json_bytes({**metadata, "vlmbench_version": vlmbench.__version__}),
             "run.json": (run_dir / "run.json").read_bytes(), "results.json": (run_dir / "results.json").read_bytes()}
    for path in sorted((run_dir / "samples").glob("*.jsonl")):
        files[f"samples/{path.name}"] = path.read_bytes()
    manifest = {"bundle_version": 1, "vlmbench_version": vlmbench.__version__,
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    _check_schema({"manifest": manifest, "metadata": json.loads(files["metadata.json"])}, "metadata")
    out = Path(out)
    if not out.name.endswith(".tar.gz"):
        out = out.with_name(out.name + ".tar.gz")
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in {"manifest.json": _json_bytes(manifest), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    out.write_bytes(buffer.getvalue())
    return out


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _check_schema(document: dict[str, Any], where: str) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(bundle_schema()).iter_errors(document))
    if error is not None:
        field_path = ".".join(str(p) for p in error.absolute_path)
        raise Rejected([f"{field_path or where}: {error.message[:200]}"])


@dataclass
class Bundle:
    """A bundle's files, read safely into memory and decoded."""

    files: dict[str, bytes]
    manifest: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def json(self, name: str) -> Any:
        """A JSON member, decoded (UTF-8 only)."""
        try:
            return json.loads(self.files[name].decode("utf-8"))
        except UnicodeDecodeError:
            raise Rejected([f"{name}: not UTF-8"]) from None
        except json.JSONDecodeError as exc:
            raise Rejected([f"{name}: not valid JSON ({exc.msg}, line {exc.lineno})"]) from None


def _members(archive: tarfile.TarFile, name: str) -> Any:
    """The archive's members, one header at a time: a bundle of millions of tiny members is refused early."""
    count = 0
    while True:
        try:
            member = archive.next()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Rejected([f"{name}: damaged archive ({exc})"]) from None
        if member is None:
            return
        count += 1
        if count > MAX_MEMBERS:
            raise Rejected([f"bundle has more than {MAX_MEMBERS} members; a bundle holds run.json, results.json, metadata, manifest and one samples file per task"])
        yield member


def read_bundle(path: Path) -> Bundle:
    """Read a bundle without trusting it: regular files with allowed names only, sizes bounded, hashes checked."""
    try:
        archive = tarfile.open(path, mode="r:gz")
    except FileNotFoundError:
        raise UserError(f"{path}: no such bundle file") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise Rejected([f"{Path(path).name}: not a .tar.gz bundle ({exc})"]) from None
    files: dict[str, bytes] = {}
    total = 0
    with archive:
        for member in _members(archive, Path(path).name):
            shown = json.dumps(member.name)[:120]
            if not member.isfile():
                raise Rejected([f"member {shown}: not a regular file (links, folders and devices are refused)"])
            if not MEMBER_NAME.fullmatch(member.name):
                raise Rejected([f"member {shown}: unexpected name (allowed: manifest.json, metadata.json, run.json, results.json, samples/<task>.jsonl)"])
            if member.name in files:
                raise Rejected([f"member {shown}: appears twice"])
            if member.size > MAX_MEMBER_BYTES or total + member.size > MAX_TOTAL_BYTES:
                raise Rejected([f"member {shown}: too large ({member.size} bytes; limits {MAX_MEMBER_BYTES} per file, {MAX_TOTAL_BYTES} in all)"])
            data = archive.extractfile(member).read(MAX_MEMBER_BYTES + 1)  # type: ignore[union-attr]
            total += len(data)
            files[member.name] = data
    bundle = Bundle(files)
    if "manifest.json" not in files:
        raise Rejected(["manifest.json: missing"])
    bundle.manifest = bundle.json("manifest.json")
    bundle.metadata = bundle.json("metadata.json") if "metadata.json" in files else {}
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
