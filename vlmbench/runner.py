"""Runs tasks against a backend: builds requests batch by batch, writes each sample as it finishes."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from vlmbench.backend import Backend, GenerationSettings, ImagePart, Message, Request, Response, TextPart
from vlmbench.data.concepts import ConceptCatalog, load_catalog
from vlmbench.data.render import blank_image
from vlmbench.data.sources import DatasetInfo, DocTable, load_docs
from vlmbench.errors import UserError
from vlmbench.metrics import Scored
from vlmbench.samples import Sample, build_samples
from vlmbench.scoring import score, scored
from vlmbench.taskconfig import TaskConfig

DEFAULT_CHUNK = 64


@dataclass
class TaskRun:
    """Everything one task's evaluation produced."""

    task: TaskConfig
    catalog: ConceptCatalog | None
    datasets: list[DatasetInfo]
    scored: list[Scored] = field(default_factory=list)
    seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    samples_file: Path | None = None


def prepare(task: TaskConfig, seed: int, limit: int | None, overrides: dict[str, Any] | None = None) -> tuple[list[Sample], DocTable, ConceptCatalog | None]:
    """Load a task's data and build its samples (no images are decoded here)."""
    catalog = load_catalog(task.resolve_path(task.get("concepts_file")).resolve()) if task.get("concepts_file") else None
    table = load_docs(task, catalog)
    return build_samples(task, table, catalog, seed, limit, overrides), table, catalog


class _Images:
    """Resolves a sample's image reference. The blank image is made once; a dataset image is
    decoded once per chunk even when several prompts (variants) share it."""

    def __init__(self, table: DocTable) -> None:
        self.table = table
        self._blank: Any = None
        self._chunk: dict[tuple[Any, ...], Any] = {}

    def new_chunk(self) -> None:
        """Forget the previous chunk's images (only one chunk is held in memory)."""
        self._chunk = {}

    def get(self, sample: Sample) -> Any:
        if sample.image is None:
            return None
        if sample.image == "blank":
            if self._blank is None:
                self._blank = blank_image()
            return self._blank
        key = (sample.doc["_source"], sample.doc["_row"], sample.image)
        if key not in self._chunk:
            self._chunk[key] = self.table.image(sample.doc, sample.image)
        return self._chunk[key]


def to_request(sample: Sample, image: Any, generation: GenerationSettings) -> Request:
    """The chat request for a sample: one user turn, the image (if any) before the text."""
    parts = ((ImagePart(image),) if image is not None else ()) + (TextPart(sample.prompt),)
    return Request(id=sample.id, messages=(Message("user", parts),), generation=generation, answer_choices=sample.choices)


def _record(task: TaskConfig, sample: Sample, response: Response, parsed: str | None, correct: bool | None) -> dict[str, Any]:
    doc = {k: v for k, v in sample.doc.items() if not k.startswith("_")}
    image: Any = None
    if sample.image == "blank":
        image = "blank"
    elif sample.image is not None:
        image = {"column": sample.image, "source": sample.doc["_source"], "row": sample.doc["_row"]}
    return {
        "task": task.name, "id": sample.id, "variant": sample.variant, "doc": doc, "prompt": sample.prompt,
        "image": image, "target": sample.target, "response": response.text, "error": response.error,
        "parsed": parsed, "correct": correct, "usage": response.usage, "latency_s": response.latency_s,
        "model_prompt": response.prompt,
    }


def evaluate_task(task: TaskConfig, backend: Backend, *, seed: int, limit: int | None, chunk_size: int | None,
                  samples_dir: Path, overrides: dict[str, Any] | None = None) -> TaskRun:
    """Run one task; every response is appended to ``samples_dir/<task>.jsonl`` the moment it arrives."""
    started = time.perf_counter()
    samples, table, catalog = prepare(task, seed, limit, overrides)
    run = TaskRun(task, catalog, table.infos, samples_file=samples_dir / f"{task.name}.jsonl")
    generation = GenerationSettings.from_mapping(task.get("generation_kwargs", {}), seed=seed)
    parser = task.get("answer_parser")
    images = _Images(table)
    by_id = {s.id: s for s in samples}
    results: dict[str, Scored] = {}
    chunk = getattr(backend, "chunk_size", None) or chunk_size or DEFAULT_CHUNK
    samples_dir.mkdir(parents=True, exist_ok=True)
    with open(run.samples_file, "w", encoding="utf-8") as out, tqdm(total=len(samples), desc=task.name, unit="sample", disable=None) as bar:
        for start in range(0, len(samples), chunk):
            batch = samples[start:start + chunk]
            images.new_chunk()
            requests = [to_request(s, images.get(s), generation) for s in batch]
            for response in backend.generate(requests):
                sample = by_id.get(response.request_id)
                if sample is None or sample.id in results:
                    raise UserError(f"backend answered unknown or repeated request id '{response.request_id}'; this is a bug in the backend plugin")
                results[sample.id] = _finish(task, parser, sample, response, out, run)
                bar.update()
            for sample in batch:  # a backend that silently drops a request gets an error, not a gap
                if sample.id not in results:
                    results[sample.id] = _finish(task, parser, sample, Response(sample.id, error="backend returned no response"), out, run)
                    bar.update()
    run.scored = [results[s.id] for s in samples]
    run.seconds = time.perf_counter() - started
    return run


def _finish(task: TaskConfig, parser: str, sample: Sample, response: Response, out: IO[str], run: TaskRun) -> Scored:
    parsed, correct = score(parser, sample, response.text)
    out.write(json.dumps(_record(task, sample, response, parsed, correct), ensure_ascii=False) + "\n")
    out.flush()
    for key, value in (response.usage or {}).items():
        run.usage[key] = run.usage.get(key, 0) + int(value)
    return scored(sample, parsed, correct, error=response.error is not None)


def evaluate(tasks: Sequence[TaskConfig], backend: Backend, **kwargs: Any) -> list[TaskRun]:
    """Run several tasks in order."""
    return [evaluate_task(task, backend, **kwargs) for task in tasks]
