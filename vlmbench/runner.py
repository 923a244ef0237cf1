"""Runs tasks against a backend, chunk by chunk, persisting every response the moment it arrives.

Each sample is first looked up in the response store (no image is decoded for a hit); the misses
go to the backend as a lazy stream of requests, and every response that comes back is stored,
then appended to ``samples/<task>.jsonl``. A crash loses at most the requests in flight; re-running the
same command reuses everything stored.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from vlmbench.backend import Backend, GenerationSettings, ImagePart, Message, Request, Response, TextPart
from vlmbench.data.concepts import load_catalog
from vlmbench.data.render import blank_image
from vlmbench.data.sources import DatasetInfo, DocTable, load_docs
from vlmbench.errors import UserError
from vlmbench.records import BLANK_SHA256, SampleRecord, new_record
from vlmbench.samples import Sample, build_samples
from vlmbench.store import ResponseStore, is_deterministic, request_key
from vlmbench.taskconfig import TaskConfig


@dataclass
class RunContext:
    """What every task of a run shares."""

    backend: Backend
    backend_name: str
    model_identity: dict[str, Any]
    seed: int = 0
    limit: int | None = None
    overrides: dict[str, Any] | None = None
    store: ResponseStore | None = None
    reuse_sampled: bool = False
    shard: tuple[int, int] = (0, 1)  # (rank, world size) under data parallelism


@dataclass
class TaskPrediction:
    """What predicting one task produced (the records themselves are in ``samples_file``)."""

    task: TaskConfig
    datasets: list[DatasetInfo]
    samples_file: Path
    n_samples: int = 0
    sent: int = 0
    reused: int = 0
    seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)


def prepare(task: TaskConfig, seed: int, limit: int | None, overrides: dict[str, Any] | None = None) -> tuple[list[Sample], DocTable]:
    """Load a task's data and build its samples (no images are decoded here)."""
    catalog = load_catalog(task.resolve_path(task.get("concepts_file")).resolve()) if task.get("concepts_file") else None
    table = load_docs(task, catalog)
    return build_samples(task, table, catalog, seed, limit, overrides), table


class _Images:
    """Resolves a sample's image. The last few decoded images are kept, so the prompts (variants)
    of one document decode its image once; nothing else is held in memory."""

    KEEP = 8

    def __init__(self, table: DocTable) -> None:
        self.table = table
        self._blank: Any = None
        self._recent: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def sha256(self, sample: Sample) -> str | None:
        """The hash of the image's encoded bytes, computed without decoding it."""
        if sample.image is None:
            return None
        if sample.image == "blank":
            return BLANK_SHA256
        return self.table.image_sha256(sample.doc, sample.image)

    def get(self, sample: Sample) -> Any:
        """The decoded image (None for a text-only sample)."""
        if sample.image is None:
            return None
        if sample.image == "blank":
            if self._blank is None:
                self._blank = blank_image()
            return self._blank
        key = (sample.doc["_source"], sample.doc["_row"], sample.image)
        if key not in self._recent:
            self._recent[key] = self.table.image(sample.doc, sample.image)
            if len(self._recent) > self.KEEP:
                self._recent.popitem(last=False)
        return self._recent[key]


def to_request(sample: Sample, image: Any, generation: GenerationSettings) -> Request:
    """The chat request for a sample: one user turn, the image (if any) before the text."""
    parts = ((ImagePart(image),) if image is not None else ()) + (TextPart(sample.prompt),)
    return Request(id=sample.id, messages=(Message("user", parts),), generation=generation, answer_choices=sample.choices)


def _key_messages(sample: Sample, image_sha256: str | None) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"image_sha256": image_sha256}] if image_sha256 else []
    content.append({"text": sample.prompt})
    return [{"role": "user", "content": content}]


def predict_task(task: TaskConfig, ctx: RunContext, samples_file: Path) -> TaskPrediction:
    """Answer every sample of ``task`` (this process's shard of them), appending records to ``samples_file``."""
    started = time.perf_counter()
    samples, table = prepare(task, ctx.seed, ctx.limit, ctx.overrides)
    rank, world = ctx.shard
    indexed = [(i, s) for i, s in enumerate(samples) if i % world == rank]
    prediction = TaskPrediction(task, table.infos, samples_file, n_samples=len(samples))
    generation = GenerationSettings.from_mapping(task.get("generation_kwargs", {}), seed=ctx.seed)
    reusable = ctx.store is not None and (is_deterministic(generation) or (ctx.reuse_sampled and generation.seed is not None))
    images = _Images(table)
    samples_file.parent.mkdir(parents=True, exist_ok=True)
    with open(samples_file, "w", encoding="utf-8") as out, tqdm(total=len(indexed), desc=task.name, unit="sample", disable=None) as bar:
        pending: dict[str, tuple[int, Sample, str | None, str | None]] = {}
        for index, sample in indexed:  # answers already paid for: no image is decoded for them
            image_sha = images.sha256(sample)
            key = (
                request_key(
                    backend=ctx.backend_name,
                    model=ctx.model_identity,
                    task=task.name,
                    task_version=task.version,
                    messages=_key_messages(sample, image_sha),
                    generation=generation,
                    answer_choices=sample.choices,
                )
                if ctx.store
                else None
            )
            stored = ctx.store.get(key) if reusable and key and ctx.store is not None else None
            if stored is None:
                pending[sample.id] = (index, sample, image_sha, key)
                continue
            stored.request_id = sample.id
            _write(out, new_record(task.name, index, sample, image_sha, stored, reused=True, key=key))
            prediction.reused += 1
            bar.update()

        todo = [sample for _, sample, _, _ in pending.values()]

        def requests() -> Iterator[Request]:
            # Built lazily, as the backend asks: only the requests it holds have decoded images.
            for sample in todo:
                yield to_request(sample, images.get(sample), generation)

        for response in ctx.backend.generate(requests()) if pending else ():
            if response.request_id not in pending:
                raise UserError(f"backend answered unknown or repeated request id '{response.request_id}'; this is a bug in the backend plugin")
            index, sample, image_sha, key = pending.pop(response.request_id)
            if ctx.store is not None and key is not None:
                ctx.store.put(key, backend=ctx.backend_name, model=ctx.model_identity, task=task.name, response=response)
            _write(out, new_record(task.name, index, sample, image_sha, response, key=key))
            _add_usage(prediction.usage, response.usage)
            prediction.sent += 1
            bar.update()
        for index, sample, image_sha, key in pending.values():  # a dropped request is an error, not a gap
            _write(out, new_record(task.name, index, sample, image_sha, Response(sample.id, error="backend returned no response"), key=key))
            bar.update()
    prediction.seconds = time.perf_counter() - started
    return prediction


def _write(out: IO[str], record: SampleRecord) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def _add_usage(total: dict[str, int], usage: dict[str, int] | None) -> None:
    for name, value in (usage or {}).items():
        total[name] = total.get(name, 0) + int(value)
