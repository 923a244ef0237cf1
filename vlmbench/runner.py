"""Runs tasks against a backend, chunk by chunk, persisting every response the moment it arrives.

Each sample is first looked up in the response store (no image is decoded for a hit, and each
image's bytes are hashed once per run); the misses go to the backend as a lazy stream of requests
whose images are their stored bytes (decoded only by a backend that needs pixels), and every
response that comes back is stored, then appended to ``samples/<task>.jsonl``. A crash loses at
most the requests in flight; re-running the same command reuses everything stored.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vlmbench.backend import Backend, GenerationSettings, ImagePart, Message, Request, TextPart
from vlmbench.collector import few_collections
from vlmbench.data import images
from vlmbench.data.concepts import ConceptCatalog, load_catalog
from vlmbench.data.images import BadImage
from vlmbench.data.render import blank_image
from vlmbench.data.sources import DatasetInfo, DocTable, Loaded, load_docs
from vlmbench.dispatch import Item, dispatch
from vlmbench.errors import UserError
from vlmbench.http.limits import reply_char_limit
from vlmbench.progress import TaskProgress, announce_reusable
from vlmbench.records import BLANK_SHA256, SampleRecord, new_record, record_json
from vlmbench.samples import Sample, build_samples

if TYPE_CHECKING:
    from PIL import Image
from vlmbench.store import RequestKeys, ResponseStore, StoredResponse, is_deterministic
from vlmbench.taskconfig import TaskConfig

STORE_BATCH = 500
"""Stored answers looked up in one query (and held at once) when a task starts."""

DEFERRED_RECORD_BYTES = 1024
"""What a kept record whose line is not written yet counts against the budget besides its answer and prompt
(its document, key and image reference: a hub-size run's lines average about 950 characters)."""

KEEP_WRITTEN_BYTES = 64 * 2**20
"""The memory of the JSON lines a run keeps for scoring, with their records (beyond it, scoring reads the
files back). The records take about as much again: a line and its record held 2.35-2.65 bytes per
character of an ASCII line in all. A full-size run's lines take about 21 MB; keeping them all added 40 MiB
to its peak memory."""


@dataclass
class RunContext:
    """What every task of a run shares."""

    backend: Backend
    backend_name: str
    model_identity: dict[str, Any]  # redacted: what files and the store's model column name
    key_identity: dict[str, Any]  # what request keys name: secrets hashed, not masked (redact.hash_secrets)
    seed: int = 0
    limit: int | float | None = None
    overrides: dict[str, Any] | None = None
    store: ResponseStore | None = None
    reuse_sampled: bool = False
    shard: tuple[int, int] = (0, 1)  # (rank, world size) under data parallelism
    image_hashes: dict[tuple[Any, ...], str] = field(default_factory=dict)  # run-wide: each image's bytes are hashed once
    # What is left of the run's budget for records kept for scoring (bytes of their JSON lines' memory; 0: keep none).
    keep_written: int = field(default_factory=lambda: KEEP_WRITTEN_BYTES)


@dataclass
class TaskPrediction:
    """What predicting one task produced. The records are in ``samples_file``; ``written`` holds them too,
    each with its JSON line as written (None: a reused answer's, left to scoring to write), when the run's
    memory budget kept them (scoring then reads nothing back)."""

    task: TaskConfig
    datasets: list[DatasetInfo]
    samples_file: Path
    n_samples: int = 0
    sent: int = 0
    reused: int = 0
    seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    reused_from: set[str] = field(default_factory=set)  # the provenance digests that reused answers name
    written: list[tuple[SampleRecord, str | None]] | None = None


def load_task_docs(task: TaskConfig, loaded: Loaded | None = None) -> tuple[DocTable, ConceptCatalog | None]:
    """A task's documents (images left in their dataset) and its concept catalog, if it names one.
    ``loaded``: datasets already loaded by other tasks of the run (see :func:`~vlmbench.data.sources.load_docs`)."""
    catalog = load_catalog(task.resolve_path(task.get("concepts_file")).resolve()) if task.get("concepts_file") else None
    return load_docs(task, catalog, loaded), catalog


def prepare(
    task: TaskConfig, seed: int, limit: int | float | None, overrides: dict[str, Any] | None = None, loaded: Loaded | None = None
) -> tuple[list[Sample], DocTable]:
    """Load a task's data and build its samples (no images are decoded here). ``loaded``: datasets
    already loaded by other tasks of the run, shared with them (this task's loads are added)."""
    table, catalog = load_task_docs(task, loaded)
    return build_samples(task, table, catalog, seed, limit, overrides), table


class RowImage:
    """Decodes one row's image from the bytes that were checked and hashed (``data``), through its table (so
    that an unreadable image names its row). Pickled for another process, it becomes a decoder of the same
    bytes in the same colour mode: the same pixels."""

    __slots__ = ("column", "data", "doc", "table")

    def __init__(self, table: DocTable, doc: dict[str, Any], column: str, data: bytes) -> None:
        self.table, self.doc, self.column, self.data = table, doc, column, data

    def __call__(self) -> Image.Image:
        return self.table.image(self.doc, self.column, self.data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (functools.partial, (images.decode, {"bytes": self.data}, self.table.image_mode(self.doc, self.column)))


class _Images:
    """Resolves a sample's image as an :class:`ImagePart` carrying its bytes as stored: checked
    (header and structure) but never decoded here, so a backend that does not look at pixels never
    pays for them. The last few parts are kept, so the prompts (variants) of one document share one
    part, which a backend that needs pixels decodes once. Hashes of image bytes go through the
    run-wide ``hashes`` cache, so an image shared by several tasks is hashed once per run."""

    KEEP = 8

    def __init__(self, table: DocTable, hashes: dict[tuple[Any, ...], str] | None = None) -> None:
        self.table = table
        self.hashes = {} if hashes is None else hashes
        self._recent: OrderedDict[tuple[Any, ...], ImagePart] = OrderedDict()
        self._origins: dict[int, tuple[Any, ...]] = {}

    def _hash_key(self, sample: Sample) -> tuple[Any, ...]:
        """What identifies an image across the tasks of a run: the dataset's files (or this table,
        for data held only in memory), the row and the column."""
        source: int = sample.doc["_source"]
        if source not in self._origins:
            files = tuple(sorted(self.table.sources[source].files))
            self._origins[source] = (files, self.table.infos[source].fingerprint) if files else ("table", self.table.serial, source)
        return (self._origins[source], sample.doc["_row"], sample.image)

    def sha256(self, sample: Sample) -> str | None:
        """The hash of the image's encoded bytes, computed without decoding it (at most once per run)."""
        if sample.image is None:
            return None
        if sample.image == "blank":
            return BLANK_SHA256
        key = self._hash_key(sample)
        if key not in self.hashes:
            self.hashes[key] = self.table.image_sha256(sample.doc, sample.image)
        return self.hashes[key]

    def get(self, sample: Sample) -> ImagePart | None:
        """The image as bytes, with a decoder for backends that need pixels (None for a text-only sample)."""
        if sample.image is None:
            return None
        if sample.image == "blank":
            return blank_part()
        key = (sample.doc["_source"], sample.doc["_row"], sample.image)
        if key not in self._recent:
            encoded = self.table.encoded_image(sample.doc, sample.image, sha256=self.sha256(sample))
            self._recent[key] = ImagePart(
                data=encoded.data,
                format=encoded.format,
                size=encoded.size,
                sha256=encoded.sha256,
                faithful=encoded.faithful,
                decoder=RowImage(self.table, sample.doc, sample.image, encoded.data),
            )
            if len(self._recent) > self.KEEP:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(key)
        return self._recent[key]


@functools.lru_cache(maxsize=1)
def blank_part() -> ImagePart:
    """The blank white image of text tasks, as PNG bytes (encoded once per process); a backend that
    needs pixels gets them without decoding the PNG."""
    import hashlib
    import io

    buffer = io.BytesIO()
    image = blank_image()
    image.save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    return ImagePart(data=data, format="PNG", size=image.size, sha256=hashlib.sha256(data).hexdigest(), decoder=blank_image)


def to_request(sample: Sample, image: Any, generation: GenerationSettings, system: str | None = None) -> Request:
    """The chat request for a sample: a system turn when ``system`` is set, then one user turn,
    the image (if any: an :class:`ImagePart`, a PIL image or a path) before the text."""
    part = image if isinstance(image, ImagePart) or image is None else ImagePart(image)
    parts = ((part,) if part is not None else ()) + (TextPart(sample.prompt),)
    messages = ((Message("system", (TextPart(system),)),) if system else ()) + (Message("user", parts),)
    return Request(id=sample.id, messages=messages, generation=generation, answer_choices=sample.choices)


def _key_messages(sample: Sample, image_sha256: str | None, system: str | None = None, mode: str | None = None) -> list[dict[str, Any]]:
    # ``mode``: the colour mode the dataset has its images converted to (other pixels from the same bytes).
    content: list[dict[str, Any]] = [{"image_sha256": image_sha256, **({"mode": mode} if mode else {})}] if image_sha256 else []
    content.append({"text": sample.prompt})
    turns: list[dict[str, Any]] = [{"role": "system", "content": [{"text": system}]}] if system else []
    return [*turns, {"role": "user", "content": content}]


def predict_task(task: TaskConfig, ctx: RunContext, samples_file: Path, prepared: tuple[list[Sample], DocTable] | None = None) -> TaskPrediction:
    """Answer every sample of ``task`` (this process's shard of them), appending records to ``samples_file``.

    ``prepared`` is the task's samples and data from :func:`prepare`, when the caller has them already."""
    started = time.perf_counter()
    samples, table = prepared or prepare(task, ctx.seed, ctx.limit, ctx.overrides)
    rank, world = ctx.shard
    indexed = [(i, s) for i, s in enumerate(samples) if i % world == rank]
    prediction = TaskPrediction(task, table.infos, samples_file, n_samples=len(samples))
    generation = GenerationSettings.from_mapping(task.get("generation_kwargs", {}), seed=ctx.seed)
    system = task.get("system_instruction") or None
    reusable = ctx.store is not None and (is_deterministic(generation) or (ctx.reuse_sampled and generation.seed is not None))
    images = _Images(table, ctx.image_hashes)
    samples_file.parent.mkdir(parents=True, exist_ok=True)
    with open(samples_file, "w", encoding="utf-8") as file, _Deferred() as deferred:
        # Under data parallelism the shards are merged through their files: nothing is kept.
        out = deferred.writer = _SamplesWriter(file, ctx if ctx.shard[1] == 1 else None)
        pending: dict[str, tuple[int, Sample, str | None, str | None]] = {}
        broken: dict[str, str] = {}  # samples whose image cannot be read: errors, never requests
        keys = (
            RequestKeys(backend=ctx.backend_name, model=ctx.key_identity, task=task.name, task_version=task.version, generation=generation)
            if ctx.store
            else None
        )
        with few_collections():  # no request is sent here: only stored answers are read and written
            keyed: list[tuple[int, Sample, str | None, str | None]] = []
            for index, sample in indexed:  # answers already paid for: no image is decoded for them
                try:
                    image_sha = images.sha256(sample)
                except BadImage as exc:
                    broken[sample.id] = str(exc)
                    pending[sample.id] = (index, sample, None, None)
                    continue
                mode = table.image_mode(sample.doc, sample.image) if sample.image not in (None, "blank") else None
                key = keys.key(_key_messages(sample, image_sha, system, mode), sample.choices) if keys else None
                keyed.append((index, sample, image_sha, key))
            for start in range(0, len(keyed), STORE_BATCH):  # stored answers are read a batch at a time, written, let go
                batch = keyed[start : start + STORE_BATCH]
                found = ctx.store.get_many([k for *_, k in batch if k]) if reusable and ctx.store is not None else {}
                handed: set[str] = set()
                for index, sample, image_sha, key in batch:
                    stored = found.get(key) if key else None
                    if stored is None or key is None:
                        pending[sample.id] = (index, sample, image_sha, key)
                        continue
                    if key in handed:  # a key asked twice gets one response object each
                        stored = copy.copy(stored)
                    if stored.text is not None and len(stored.text) > reply_char_limit(generation.max_new_tokens):
                        stored = StoredResponse(request_id="", error=_too_long(len(stored.text), generation.max_new_tokens, ctx.backend_name))
                    handed.add(key)
                    stored.request_id = sample.id
                    # No flush per record: the store holds these answers already; the batch is flushed at its end.
                    out.add(
                        new_record(task.name, index, sample, image_sha, stored, reused=True, key=key, produced_with=stored.produced_with),
                        flush=False,
                        stored=True,
                    )
                    prediction.reused += 1
                    if stored.produced_with:
                        prediction.reused_from.add(stored.produced_with)
                out.flush()
        del keyed
        table.save_hashes()  # every image of this shard is hashed by now: the next run reads the hashes
        not_reused = "response store not used" if ctx.store is None else None if reusable else "sampled requests are reused only with --reuse_sampled"
        announce_reusable(task.name, prediction.reused, len(indexed), not_reused)
        with TaskProgress(task.name, len(indexed), prediction.reused) as progress:

            def build(item: Item) -> Request:
                # Called lazily, as the backend asks. Images travel as their stored bytes; only a backend
                # that needs pixels decodes them.
                if item.id in broken:
                    raise BadImage(broken[item.id])
                return to_request(item.data[1], images.get(item.data[1]), generation, system)

            failed = 0
            items = [Item(sample_id, entry[3], entry) for sample_id, entry in pending.items()]
            for outcome, item, response in dispatch(ctx.backend, items, build, ctx.store if reusable else None):
                index, sample, image_sha, key = item.data
                if outcome == "reused":  # another run on the store answered it meanwhile, or this run did (a copy)
                    response.request_id = sample.id
                    made_by = response.produced_with if isinstance(response, StoredResponse) else ctx.store.produced_with if ctx.store else None
                    out.add(new_record(task.name, index, sample, image_sha, response, reused=True, key=key, produced_with=made_by))
                    prediction.reused += 1
                    if made_by:
                        prediction.reused_from.add(made_by)
                    progress.update()
                    continue
                if outcome == "answer" and ctx.store is not None and key is not None:
                    ctx.store.put(key, backend=ctx.backend_name, model=ctx.model_identity, task=task.name, response=response)
                out.add(new_record(task.name, index, sample, image_sha, response, key=key))
                _add_usage(prediction.usage, response.usage)
                prediction.sent += outcome == "answer"
                failed += response.error is not None
                progress.update()
            progress.close(prediction.sent, prediction.reused, failed)
    prediction.seconds = time.perf_counter() - started
    prediction.written = out.kept
    return prediction


def _too_long(chars: int, max_new_tokens: int, backend: str) -> str:
    """Why a stored text longer than its request's generation could produce is no answer (the live bound of
    :mod:`vlmbench.http.limits`: a store may come from elsewhere, or from a server that ignored the limit)."""
    return (
        f"stored answer of {chars} characters, more than max_new_tokens={max_new_tokens} could produce (limit "
        f"{reply_char_limit(max_new_tokens)}): not an answer; clear the model's entries with `vlmbench cache clear --model {backend}` "
        "(narrow it with --model_id) and rerun to ask again"
    )


class _SamplesWriter:
    """Appends sample records to a task's samples file, one JSON line each. With a run context, it also
    keeps each record with its line, for scoring, while the run's budget (``RunContext.keep_written``)
    lasts; once a record does not fit, the task keeps none (what it took goes back to the budget) and
    scoring reads its file.

    A reused answer is in the response store already: while its record is kept, its line is left to
    scoring, which writes every line of the task once, with its verdicts (a re-run encodes each record once,
    in the processes that score). Should the budget run out, those lines are written at once."""

    def __init__(self, file: IO[str], ctx: RunContext | None) -> None:
        self.file, self.ctx = file, ctx
        self.kept: list[tuple[SampleRecord, str | None]] | None = [] if ctx is not None and ctx.keep_written > 0 else None
        self._kept_bytes = 0

    def add(self, record: SampleRecord, flush: bool = True, stored: bool = False) -> None:
        """Append ``record`` and, with ``flush``, put what is written on disk. ``stored``: its answer is in the
        response store (reused), so its line may be left to scoring (see the class)."""
        if stored and self.kept is not None and self.ctx is not None:
            size = _deferred_size(record)
            if self.ctx.keep_written >= size:
                self._keep(record, None, size)
                return
            self._stop_keeping()
        line = record_json(record) + "\n"
        self._do(lambda: self.file.write(line))
        if flush:  # an answer just paid for is on disk before the next one is asked for
            self.flush()
        if self.kept is None or self.ctx is None:
            return
        size = sys.getsizeof(line)  # 1, 2 or 4 bytes a character, as the text needs
        if self.ctx.keep_written < size:
            self._stop_keeping()
            return
        self._keep(record, line, size)

    def _keep(self, record: SampleRecord, line: str | None, size: int) -> None:
        assert self.kept is not None and self.ctx is not None
        self.ctx.keep_written -= size
        self._kept_bytes += size
        self.kept.append((record, line))

    def _stop_keeping(self) -> None:
        """Out of budget: what this task took goes back to the run's budget, and the lines left to scoring are written now."""
        assert self.kept is not None and self.ctx is not None
        self.write_deferred()
        self.ctx.keep_written += self._kept_bytes
        self.kept = None

    def write_deferred(self) -> None:
        """Write the lines left to scoring now (each kept record then has its line)."""
        if not self.kept:
            return
        left = [i for i, (_, line) in enumerate(self.kept) if line is None]
        lines = [record_json(self.kept[i][0]) + "\n" for i in left]
        try:
            self._do(lambda: self.file.write("".join(lines)))
        finally:  # marked even when Ctrl-C arrives as the write returns: never written twice
            for i, line in zip(left, lines):
                self.kept[i] = (self.kept[i][0], line)

    def flush(self) -> None:
        """Put what is written on disk."""
        self._do(self.file.flush)

    def _do(self, write: Callable[[], object]) -> None:
        try:
            write()
        except OSError as exc:  # a full disk: stop before paying for more answers; the store keeps those received
            try:
                self.file.close()  # drops what could not be written, so that leaving the `with` does not fail again
            except OSError:
                pass
            raise UserError(
                f"cannot write {self.file.name} ({exc.strerror or type(exc).__name__}); free disk space or pass --output_path on another disk, "
                f"then rerun the same command: every response stored so far is reused"
            ) from None


class _Deferred:
    """Writes a task's deferred lines (reused answers kept for scoring) when predicting it stops early (an error,
    Ctrl-C): the samples file of a stopped run holds every answer it has, reused or sent."""

    writer: _SamplesWriter | None = None

    def __enter__(self) -> _Deferred:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and self.writer is not None and not self.writer.file.closed:
            with contextlib.suppress(OSError, UserError):
                self.writer.write_deferred()


def complete_samples_file(path: Path, kept: list[tuple[SampleRecord, str | None]]) -> None:
    """Append the deferred lines of a task's kept records (those whose line was left to scoring) to its samples
    file, unless the file holds every record already (scoring rewrote it). For a run that stops between
    predicting and scoring (an error, Ctrl-C): its samples files then hold every answer it has."""
    left = [record for record, line in kept if line is None]
    if not left:
        return
    try:
        with open(path, "rb") as file:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
    except FileNotFoundError:
        lines = 0
    if lines >= len(kept):
        return
    with open(path, "a", encoding="utf-8") as file:  # unscored, as predicting writes them: no results back any verdict
        file.write("".join(record_json(_unscored(record)) + "\n" for record in left))


def _unscored(record: SampleRecord) -> SampleRecord:
    """A record as predicting makes it: a scoring that stopped may have given it verdicts that no results back."""
    plain = {k: v for k, v in record.items() if k != "verdicts"}
    plain["parsed"], plain["correct"] = None, None
    return plain  # type: ignore[return-value]


def _deferred_size(record: SampleRecord) -> int:
    """What a kept record whose line is left to scoring counts against the budget: about its line's size."""
    return DEFERRED_RECORD_BYTES + sys.getsizeof(record["response"] or "") + sys.getsizeof(record["prompt"])


def _add_usage(total: dict[str, int], usage: dict[str, int] | None) -> None:
    for name, value in (usage or {}).items():
        total[name] = total.get(name, 0) + int(value)
