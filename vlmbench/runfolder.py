"""Reading a run folder, which may come from elsewhere: its manifest (``run.json``) and samples files, each
field checked before any is used, with one-line errors naming the file, line and field."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vlmbench.backend import inert_line, without_lone_surrogates
from vlmbench.errors import UserError
from vlmbench.records import RunManifest, SampleRecord, TaskManifest
from vlmbench.safefiles import FileRefused, read_regular_file

MANIFEST, RESULTS = "run.json", "results.json"

MAX_MANIFEST_BYTES = 64 * 2**20  # a run.json is kilobytes: more is no manifest
MAX_SAMPLES_BYTES = 16 * 2**30  # a samples file is read whole: a bound on what one task's file may take


def read_fix(exc: OSError) -> str:
    """What to do about a file of a run folder that cannot be read."""
    return "check its permissions" if isinstance(exc, PermissionError) else "the run folder is damaged or not a run folder"


def read_manifest(run_dir: Path, complete: bool = True) -> RunManifest:
    """The manifest of a run folder, with a one-line error when it is missing or damaged, or (unless
    ``complete`` is False) when the run is partial: killed or interrupted before it finished."""
    path = Path(run_dir) / MANIFEST
    try:
        manifest = json.loads(read_regular_file(path, MAX_MANIFEST_BYTES, "run manifest").decode("utf-8"), parse_constant=_no_constant)
    except _Refused as exc:
        raise UserError(f"{path}: holds {exc}, which no run writes; the run folder is damaged") from None
    except FileRefused as exc:  # a FIFO or a device in a run folder from elsewhere: never waited on
        raise UserError(f"{exc.path}: {exc.reason.split(';')[0]}; the run folder is damaged") from None
    except FileNotFoundError:
        if (Path(run_dir) / "samples").is_dir():
            raise UserError(f"{run_dir}: partial run: stopped before it wrote {MANIFEST}; {RESUME}") from None
        raise UserError(f"{path}: not found; pass a run folder written by `vlmbench run`") from None
    except NotADirectoryError:  # a file, a FIFO or a device named as the run folder: never opened
        raise UserError(f"{run_dir}: not a folder; pass a run folder written by `vlmbench run` (results/<model>/<time>)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__}); {read_fix(exc)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); the run folder is damaged") from None
    except ValueError:  # an integer of more digits than Python converts
        raise UserError(f"{path}: holds a number too long to read; the run folder is damaged") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a run manifest; the run folder is damaged") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tasks"), dict):
        raise UserError(f"{path}: not a vlmbench run manifest (no tasks); pass a run folder written by `vlmbench run`")
    if _has_lone_surrogate(manifest):  # no file can hold one: results.json would fail half-written
        raise UserError(f"{path}: holds a lone surrogate (\\ud800-\\udfff), which no run writes; the run folder is damaged")
    if problem := _manifest_problem(manifest):
        raise UserError(f"{path}: {problem}; the run folder is damaged (rerun the same command to write it again)")
    if complete and not manifest.get("complete"):
        planned = (manifest.get("config") or {}).get("tasks") or []
        done = f"{len(manifest['tasks'])} of {len(planned)} tasks answered" if planned else f"{len(manifest['tasks'])} tasks answered"
        raise UserError(f"{run_dir}: partial run (killed or interrupted; {done}); {RESUME}")
    if not manifest["tasks"]:
        raise UserError(f"{path}: not a vlmbench run manifest (no tasks); pass a run folder written by `vlmbench run`")
    return manifest  # type: ignore[return-value]  # checked above as far as run/score need


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """The first field of a run manifest that scoring could not read, as text naming it, or None. A run
    folder may come from elsewhere: every field scoring reads is checked before any is used."""

    def kind(value: Any, wanted: str) -> bool:
        if wanted == "texts":
            return isinstance(value, list) and all(isinstance(v, str) for v in value)
        return isinstance(value, _TYPES[wanted]) and not isinstance(value, bool)

    for field, wanted in (("vlmbench_version", "text"), ("created", "text"), ("model", "object"), ("config", "object"), ("provenance", "object")):
        if not kind(manifest.get(field), wanted):
            return f"field '{field}' is missing or not {_A[wanted]}"
    config = manifest["config"]
    for field, wanted in (("judges", "texts"), ("judge_args", "object"), ("judge_store", "text"), ("store", "text"), ("seed", "int")):
        if config.get(field) is not None and not kind(config[field], wanted):
            return f"field 'config.{field}' is not {_A[wanted]}"
    if manifest.get("seconds") is not None and not kind(manifest["seconds"], "number"):
        return "field 'seconds' is not a number"
    for name, entry in manifest["tasks"].items():
        if not isinstance(entry, dict):
            return f"field 'tasks.{inert_line(name, 80)}' is not an object"
        for field, wanted in (("samples_file", "text"), ("n_samples", "int"), ("metric_list", "texts"), ("modality", "text"), ("ability", "text")):
            if not kind(entry.get(field), wanted):
                return f"field 'tasks.{inert_line(name, 80)}.{field}' is missing or not {_A[wanted]}"
        if not 0 <= entry["n_samples"] <= MAX_SAMPLES:
            return f"field 'tasks.{inert_line(name, 80)}.n_samples' is not a count of samples (0 to {MAX_SAMPLES:,})"
        for field, wanted in (("scorer", "text"), ("answer_parser", "text"), ("scorer_args", "object"), ("cluster_key", "text"), ("judges", "texts")):
            if entry.get(field) is not None and not kind(entry[field], wanted):
                return f"field 'tasks.{inert_line(name, 80)}.{field}' is not {_A[wanted]}"
    return None


MAX_SAMPLES = 10**8
"""The most samples a task's manifest entry may count (a hub-size task has about 13,000)."""

_A = {"int": "an integer", "texts": "a list of texts", "object": "an object", "text": "text", "number": "a number"}
_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "object": dict, "text": str, "number": (int, float)}


def samples_path(run_dir: Path, name: str, entry: Mapping[str, Any]) -> Path | None:
    """A task's samples file as its manifest entry names it, only when that is a file name inside the run
    folder's ``samples/`` (a run folder may come from elsewhere: its manifest never points outside); else None."""
    recorded = entry.get("samples_file")
    relative = recorded if isinstance(recorded, str) else f"samples/{name}.jsonl"
    path = (run_dir / relative).resolve()
    folder = run_dir / "samples"
    # samples/ itself a link would make a folder elsewhere the run's: its files would be read and rewritten there
    return path if path.parent == folder.resolve() and not folder.is_symlink() else None


RESUME = "resume it by rerunning the same `vlmbench run` command (every stored answer is reused; only the missing requests are sent)"


def read_records(path: Path) -> list[SampleRecord]:
    """Sample records in sample order, each checked to hold what scoring reads (:func:`parse_records` with
    ``strict``). A torn last line (a crash mid-write) is skipped."""
    try:
        return parse_records(read_regular_file(path, MAX_SAMPLES_BYTES, "samples file").decode("utf-8"), str(path), strict=True)
    except FileRefused as exc:
        raise UserError(f"{exc.path}: {exc.reason.split(';')[0]}; the run folder is damaged") from None
    except FileNotFoundError:
        raise UserError(f"{path}: samples file not found; the run did not finish this task (rerun it to resume)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__}); {read_fix(exc)}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; the file is damaged") from None


def jsonl_lines(text: str) -> list[str]:
    """The lines of JSON Lines text. Only "\n" ends a line: JSON keeps U+2028, U+2029, U+0085 and other
    characters that ``str.splitlines()`` also splits at raw inside strings (a model's answer may hold them)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_records(text: str, where: str, strict: bool = False) -> list[SampleRecord]:
    """Sample records from JSONL text, in sample order. A torn last line (a crash mid-write) is skipped.

    ``strict`` (records to be scored): every field scoring reads must have the type a run writes, without lone
    surrogates (:func:`record_problem`); each is a one-line error naming the line and the field. (A dataset's own
    values in ``doc`` may be anything JSON holds, NaN included: a run copies them.)"""
    values: list[Any] = []
    lines = jsonl_lines(text)
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise UserError(f"{where}: line {number} is not valid JSON; the file is damaged") from None
        except ValueError:  # an integer of more digits than Python converts
            raise UserError(f"{where}: line {number} holds a number too long to read; the file is damaged") from None
        except RecursionError:
            raise UserError(f"{where}: line {number} is nested too deeply to be a sample record; the file is damaged") from None
        values.append(value)
    return records_in_order(values, where, strict)


class _Refused(ValueError):
    """A JSON constant a run never writes."""


def _no_constant(name: str) -> Any:
    raise _Refused(name)


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return without_lone_surrogates(value) != value
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def records_in_order(values: list[Any], where: str, strict: bool = False) -> list[SampleRecord]:
    """Decoded JSON lines checked to be sample records, in sample order (UserError naming the first that is not).
    ``strict``: also the types of the fields scoring reads (:func:`record_problem`), and ids given once."""
    seen: set[int] = set()
    ids: set[str] = set()
    for number, record in enumerate(values, start=1):
        if not isinstance(record, dict) or not isinstance(record.get("index"), int) or not isinstance(record.get("doc"), dict):
            raise UserError(f"{where}: line {number} is not a sample record; the file is damaged")
        if record["index"] in seen:
            raise UserError(f"{where}: line {number} repeats sample index {inert_line(str(record['index']), 40)}; the file is damaged")
        seen.add(record["index"])
        if strict:
            if problem := record_problem(record):
                raise UserError(f"{where}: line {number}: {problem}; the file is damaged")
            if record["id"] in ids:
                raise UserError(f"{where}: line {number} repeats sample id '{inert_line(record['id'], 80)}'; the file is damaged")
            ids.add(record["id"])
    return sorted(values, key=lambda r: r["index"])


# The fields scoring reads, with what each may be: a run writes nothing else there.
_RECORD_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "task": ("text", lambda v: isinstance(v, str)),
    "id": ("text", lambda v: isinstance(v, str) and bool(v)),
    "variant": ("an integer of 0 or more", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**6),
    "prompt": ("text or null", lambda v: v is None or isinstance(v, str)),
    "choices": ("a list of texts or null", lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v))),
    "target": ("text or null", lambda v: v is None or isinstance(v, str)),
    "response": ("text or null", lambda v: v is None or isinstance(v, str)),
    "error": ("text or null", lambda v: v is None or isinstance(v, str)),
}


def record_problem(record: Mapping[str, Any]) -> str | None:
    """The first field of a sample record that scoring could not read as a run writes it, as text naming it; or None.
    A response and an error together, a response that is no text (a number would be scored as an answer) or text
    with a lone surrogate (from a ``\\ud800`` escape: no file can hold it, and a run never writes one) are damage."""
    for field, (wanted, fits) in _RECORD_FIELDS.items():
        if field not in record:
            return f"field '{field}' is missing"
        if not fits(record[field]):
            return f"field '{field}' is not {wanted}"
        if _has_lone_surrogate(record[field]):
            return f"field '{field}' holds a lone surrogate (\\ud800-\\udfff), which no run writes"
    if record["response"] is not None and record["error"] is not None:
        return "it holds both a response and an error"
    return None


def samples_file(run_dir: Path, entry: TaskManifest) -> Path:
    """The samples file a manifest entry names, inside the run folder's ``samples/`` (else a one-line error)."""
    path = samples_path(run_dir, "", entry)
    if path is None and (run_dir / "samples").is_symlink():
        raise UserError(f"{run_dir / 'samples'}: a link to another folder, not the run's own samples/; the run folder is damaged")
    if path is None:
        shown = inert_line(str(entry.get("samples_file")), 120)
        raise UserError(f"{run_dir / MANIFEST}: samples_file '{shown}' is not a file in the run folder's samples/; the run folder is damaged")
    return path
