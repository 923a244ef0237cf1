"""What the run page shows: every task's samples with their outcome, and image thumbnails.

A run folder is read as it is, finished or partial (a killed run shows what it answered). Samples
without verdicts (``--predict_only``, a partial run) are scored in memory by the task's rules, never
by a model judge, and nothing is written back. Thumbnails are made from the dataset images when the
task and its data can be loaded here, and only for images whose bytes still hash to the recorded
sha256; they live in the page alone (``data:`` URLs), never in the run folder or a bundle.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlmbench.backend import inert_line, without_lone_surrogates
from vlmbench.errors import UserError

OUTCOMES = ("correct", "wrong", "unparsed", "refusal", "error", "unscored")
THUMB_PX = 128
BLANK = "blank"
SAFE_INT = 2**53  # JavaScript reads larger integers inexactly


def _text(value: Any) -> str | None:
    """A record field as text, or None where it has none that can be shown: a hostile file may put
    anything anywhere. Other JSON becomes its JSON text, unless it holds NaN or Infinity, is nested
    past what the encoder follows, or holds an integer too long to write: then it is left out."""
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (ValueError, RecursionError):
            return None
    return without_lone_surrogates(value)


def _int(value: Any) -> int | None:
    """``value`` when it is an integer (not a boolean) that the page's script reads exactly, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= SAFE_INT else None


def _verdict(value: Any) -> bool | None:
    """A verdict's ``correct``: True or False, or None for anything else (null, NaN, a list)."""
    return value if isinstance(value, bool) else None


def outcome(record: dict[str, Any], scored: bool) -> str:
    """correct, wrong, unparsed, refusal, error, or unscored (no verdict yet)."""
    if record.get("error") is not None:
        return "error"
    if record.get("parsed") == "refusal":
        return "refusal"
    if record.get("correct") is True:
        return "correct"
    if record.get("correct") is False:
        return "wrong"
    if scored and record.get("parsed") is None and record.get("response") is not None:
        return "unparsed"
    return "unscored"


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _sample(record: dict[str, Any], scored: bool) -> dict[str, Any]:
    doc, image, verdicts = _dict(record.get("doc")), _dict(record.get("image")), _dict(record.get("verdicts"))
    thumb = BLANK if image.get("blank") else _text(image.get("sha256"))
    return {
        "id": _text(record.get("id")),
        "variant": _int(record.get("variant")),
        "prompt": _text(record.get("prompt")),
        "response": _text(record.get("response")),
        "error": _text(record.get("error")),
        "parsed": _text(record.get("parsed")),
        "target": _text(record.get("target")),
        "outcome": outcome(record, scored),
        "category": _text(doc.get("category")),
        "concept": _text(doc.get("concept")),
        "label": _text(doc.get("label")),
        "reused": record.get("reused") is True,
        "served_model": inert_line(record.get("served_model")),  # as the results count it: text, one short line
        "thumb": thumb,
        "verdicts": [[_text(name), _text(v.get("parsed")), _verdict(v.get("correct"))] for name, v in verdicts.items() if isinstance(v, dict)],
    }


def _score_in_memory(records: list[Any], entry: dict[str, Any] | None) -> bool:
    """Give unscored records the rules' verdicts (in memory); True when the records carry verdicts."""
    if any(r.get("parsed") is not None or r.get("correct") is not None for r in records):
        return True
    if not entry or not any(r.get("response") is not None for r in records):
        return False
    try:
        from vlmbench.scoring.aggregate import ScoringPlan, score_records

        score_records(records, ScoringPlan.of_manifest(entry, ("rules",)))
    except Exception:  # an unknown scorer, a damaged record: the page still shows the answers
        return False
    return True


def thumbnail(image: Any) -> str:
    """A small JPEG of ``image`` as a ``data:`` URL."""
    small = image.convert("RGB")
    small.thumbnail((THUMB_PX, THUMB_PX))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class _Thumbnails:
    """Thumbnails by image sha256, made from each task's dataset (loaded once per task and variant)."""

    def __init__(self, include_path: Sequence[Path | str]) -> None:
        self.include_path = [Path(p) for p in include_path]
        self.urls: dict[str, str] = {}
        self.notes: list[str] = []
        self._registry: Any = None

    def add(self, task: str, variant: str, records: list[Any]) -> None:
        wanted: dict[str, tuple[int, int, str]] = {}
        for record in records:
            image = record.get("image")
            if not isinstance(image, dict):
                continue
            if image.get("blank") and BLANK not in self.urls:
                from vlmbench.data.render import blank_image

                self.urls[BLANK] = thumbnail(blank_image())
            source, row, column, sha = (image.get(k) for k in ("source", "row", "column", "sha256"))
            if isinstance(source, int) and isinstance(row, int) and isinstance(column, str) and isinstance(sha, str) and sha not in self.urls:
                wanted.setdefault(sha, (source, row, column))
        if wanted:
            self._from_dataset(task, variant, wanted)

    def _from_dataset(self, task: str, variant: str, wanted: dict[str, tuple[int, int, str]]) -> None:
        try:
            table = self._table(task, variant)
        except Exception as exc:  # gated, offline, a task no longer installed: the page goes without
            self.notes.append(f"{task}: no thumbnails ({(str(exc).splitlines() or [type(exc).__name__])[0][:200]})")
            return
        missing = 0
        for sha, (source, row, column) in wanted.items():
            ref = {"_source": source, "_row": row}
            try:
                if table.image_sha256(ref, column) != sha:
                    missing += 1  # the dataset changed since the run: its image would mislead
                    continue
                self.urls[sha] = thumbnail(table.image(ref, column))
            except Exception:
                missing += 1
        if missing:
            self.notes.append(f"{task}: {missing} images not found in the dataset as recorded; shown without thumbnail")

    def _table(self, task: str, variant: str) -> Any:
        from vlmbench.data.concepts import load_catalog
        from vlmbench.data.sources import load_docs
        from vlmbench.registry import discover

        if self._registry is None:
            self._registry = discover(self.include_path)
        if task not in self._registry.tasks:
            raise UserError(f"task '{task}' is not installed here")
        config = self._registry.tasks[task].with_variant(variant)
        concepts = config.get("concepts_file")
        catalog = load_catalog(config.resolve_path(concepts).resolve()) if concepts else None
        return load_docs(config, catalog)


def _samples_path(run_dir: Path, name: str, entry: dict[str, Any] | None) -> Path | None:
    """The task's samples file, only inside the run folder's samples/ (run.json is not trusted)."""
    from vlmbench.runfolder import samples_path

    path = samples_path(run_dir, name, entry or {})
    return path if path is not None and path.is_file() else None


def load_run(
    run_dir: Path | str, include_path: Sequence[Path | str] = (), thumbnails: bool = True, data_files: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Everything the page shows of a run folder: run facts, tasks with samples, thumbnails, notes.
    ``data_files``: hub id -> local copy, as the run was given them (for the thumbnails of hub data)."""
    from vlmbench.data.sources import use_local_copies
    from vlmbench.runfolder import parse_records, read_manifest

    use_local_copies(dict(data_files or {}))

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        problem = "not a folder" if run_dir.exists() else "no such folder"
        raise UserError(f"vlmbench view: {run_dir}: {problem}; pass a run folder written by `vlmbench run` (results/<model>/<time>)")
    manifest: dict[str, Any] = dict(read_manifest(run_dir, complete=False))
    entries = manifest["tasks"]
    config = _dict(manifest.get("config"))
    planned: list[Any] = config["tasks"] if isinstance(config.get("tasks"), list) else []
    images = _Thumbnails(include_path)
    tasks = []
    for name in dict.fromkeys([*(n for n in planned if isinstance(n, str)), *entries]):
        entry = _dict(entries.get(name)) or None
        path = _samples_path(run_dir, name, entry)
        if path is None:
            continue
        try:
            records: list[Any] = list(parse_records(path.read_text(encoding="utf-8", errors="replace"), str(path)))
        except UserError as exc:
            images.notes.append(str(exc))
            continue
        scored = _score_in_memory(records, entry)
        if thumbnails:
            images.add(name, str((entry or {}).get("variant") or config.get("data") or "builtin"), records)
        prompts = (entry or {}).get("prompts")
        tasks.append(
            {
                "name": _text(name),
                "finished": entry is not None,
                "n_samples": _int((entry or {}).get("n_samples")),
                "prompts": [_text(p) for p in prompts] if isinstance(prompts, list) else [],
                "samples": [_sample(r, scored) for r in records],
            }
        )
    model = _dict(manifest.get("model"))
    return {
        "run": {
            "folder": without_lone_surrogates(str(run_dir)),
            "backend": _text(model.get("backend")),
            "model": _text(_model_name(model)),
            "created": _text(manifest.get("created")),
            "complete": manifest.get("complete") is True,
        },
        "tasks": tasks,
        "thumbs": images.urls,
        "notes": [without_lone_surrogates(note) for note in images.notes],
        "outcomes": list(OUTCOMES),
    }


def _model_name(model: dict[str, Any]) -> Any:
    args = _dict(model.get("args"))
    return args.get("pretrained") or args.get("model") or model.get("backend")
