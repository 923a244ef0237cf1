"""Reading the stored entries of a data folder: ``DATA_DIR/<entry id>/metadata.json`` and ``results.json``.

Everything in those files is third-party input. An entry that cannot be read, is not strict JSON
(NaN, Infinity, numbers out of range such as 1e999) or does not match its schema is skipped with a
one-line reason; the other entries still make the site.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench_leaderboard.schemas import metadata_validator, results_validator

HINT = "pass the folder that `vlmbench leaderboard add --data` filled"
FILES = ("metadata.json", "results.json")


@dataclass(frozen=True)
class Entry:
    """One accepted model+revision: its folder name, page anchor, metadata and results."""

    id: str
    anchor: str
    metadata: dict[str, Any]
    results: dict[str, Any]

    @property
    def name(self) -> str:
        """The model's display name."""
        name: str = self.metadata["name"]
        return name

    @property
    def reference(self) -> bool:
        """A built-in baseline, shown but not ranked."""
        return bool(self.metadata.get("reference"))

    def document(self, source: str) -> dict[str, Any]:
        """The document a column's paths point into."""
        return self.metadata if source == "metadata" else self.results


@dataclass(frozen=True)
class Skipped:
    """An entry folder left out of the site, and why (one line naming the file)."""

    folder: Path
    reason: str


@dataclass
class Loaded:
    """The readable entries of a data folder, and the ones skipped."""

    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def entry_folders(data_dir: Path) -> list[Path]:
    """The entry folders of ``data_dir``, by name (folders starting with '.' are staging, not entries)."""
    if not data_dir.exists():
        raise UserError(f"{data_dir}: no such data folder; {HINT}")
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: not a folder; {HINT}")
    folders = sorted((p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if not folders:
        raise UserError(f"{data_dir}: no entries (no entry folders); add bundles with `vlmbench leaderboard add BUNDLE --data {data_dir}`")
    return folders


def load_entries(data_dir: Path) -> Loaded:
    """Read and validate every entry folder under ``data_dir``; a bad entry is skipped, not fatal.

    Raises UserError (one line) when the folder is missing or holds no entry folders.
    """
    data_dir = Path(data_dir)
    loaded, anchors = Loaded(), set[str]()
    for folder in entry_folders(data_dir):
        try:
            metadata, results = read_entry(folder)
        except UserError as exc:
            loaded.skipped.append(Skipped(folder, str(exc)))
            continue
        anchor = _unique(f"detail-{re.sub(r'[^A-Za-z0-9_-]+', '-', folder.name)}", anchors)
        loaded.entries.append(Entry(folder.name, anchor, metadata, results))
    return loaded


def read_entry(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """An entry's validated metadata and results; UserError (one line naming the file) when either is bad."""
    for name in FILES:
        if not (folder / name).is_file():
            raise UserError(
                f"{folder}: no {name}; every entry needs metadata.json and results.json "
                "(re-add it with `vlmbench leaderboard add`) or remove the folder"
            )
    metadata = read_json(folder / "metadata.json")
    _validate_metadata(metadata, folder / "metadata.json")
    results = read_json(folder / "results.json")
    _validate_results(results, folder / "results.json")
    return metadata, results


def _unique(anchor: str, taken: set[str]) -> str:
    candidate, n = anchor, 1
    while candidate in taken:
        n += 1
        candidate = f"{anchor}-{n}"
    taken.add(candidate)
    return candidate


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _float_sized_int(text: str) -> int:
    value = int(text)
    if abs(value) > 2**63:
        raise ValueError(f"integer {text[:40]} is out of range")
    return value


def read_json(path: Path) -> Any:
    """Strict JSON: NaN/Infinity, out-of-range numbers and non-UTF-8 bytes are a one-line UserError. Read as a
    bundle's member is: a regular file (a link to one is followed) within that member's cap."""
    from vlmbench import FileRefused, read_regular_file
    from vlmbench_leaderboard.bundle import member_cap

    try:
        data = read_regular_file(path, member_cap(path.name), path.name)
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_float_sized_int)
    except FileRefused as exc:
        raise UserError(f"{path}: {exc.reason.split(';')[0]}; re-add the entry with `vlmbench leaderboard add`") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}); check its permissions or re-add the entry") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8; re-add the entry from its bundle with `vlmbench leaderboard add`") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); re-add the entry with `vlmbench leaderboard add`") from None
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not valid JSON ({_one_line(exc)}); re-add the entry with `vlmbench leaderboard add`") from None


def _validate_metadata(metadata: Any, path: Path) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(metadata_validator().iter_errors(metadata))
    if error is not None:
        field_path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise UserError(f"{path}: field {field_path}: {_one_line(error.message)[:200]}; fix metadata.json")


def _validate_results(results: Any, path: Path) -> None:
    import fastjsonschema

    try:
        results_validator()(results)
    except fastjsonschema.JsonSchemaException as exc:
        raise UserError(
            f"{path}: does not match the results schema ({_one_line(getattr(exc, 'message', exc))[:200]}); re-add the entry from a verified bundle"
        ) from None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())
