"""The ``hf`` backend: a local transformers vision-language model, batched on one device.

Any image-text-to-text model loads through the generic Auto classes (``AutoProcessor`` +
``AutoModelForImageTextToText``) and is prompted with its own processor and chat template, so
there is no per-model code: messages become the processor's chat format (a content list of
``{"type": "image"}`` / ``{"type": "text"}`` items, in order), the template renders them, and the
processor expands image tokens and pads on the left.

torch and transformers are imported only when the backend is built, so listing backends (and
importing this module) works without them.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vlmbench import whole_number
from vlmbench.backend import BackendBase, BackendOptions, GenerationSettings, ImagePart, Request, Response, TextPart
from vlmbench.errors import UserError
from vlmbench_plugins.hf_args import HFArgs, adapter_sha256, batch_setting, one_line, parse_model_args
from vlmbench_plugins.hf_load import LoadedDtypes, hub_commit, load_processor, load_weights, local_files_fingerprint, resolve_device
from vlmbench_plugins.hf_merge import CannotMerge, merge_inputs
from vlmbench_plugins.hf_prepare import (
    DECODE_THREADS,
    Job,
    PreparePool,
    Undecodable,
    decode_all,
    main_module_is_guarded,
    processor_inputs,
    usable_cores,
)

log = logging.getLogger(__name__)

MISSING_DEPS = "--model hf needs torch and transformers: pip install 'vlmbench[hf]'"

AUTO_BATCH_START = 64  # `--batch_size auto` starts here and halves on out-of-memory
CHUNK_BYTES = 64 * 2**20  # decoded pixels a chunk of requests may hold (beyond one batch): ~85 images of 512x512
PREPARE_BYTES = 512 * 2**20  # decoded pixels the worker processes may hold at once (beyond one batch)
PROMPTS_KEPT = 4096  # distinct rendered prompts one run keeps (then it starts again)
PREPARE_NICENESS = 10  # how far below the generating process the worker processes run in CPU priority
SLICE_REQUESTS = 2  # fewest requests of a batch one worker prepares when idle workers share a batch


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocator out-of-memory errors (torch raises several kinds)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.OutOfMemoryError is torch >= 2.5
    return isinstance(exc, oom) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def chat_messages(request: Request) -> list[dict[str, Any]]:
    """A request's messages in the processor chat format, images and text in their original order."""
    return [
        {"role": m.role, "content": [{"type": "text", "text": p.text} if isinstance(p, TextPart) else {"type": "image"} for p in m.content]}
        for m in request.messages
    ]


def fold_system(request: Request) -> Request:
    """The request with its system turns' text placed at the start of the first user turn."""
    system = "\n\n".join(m.text for m in request.messages if m.role == "system")
    turns = [m for m in request.messages if m.role != "system"]
    if turns and turns[0].role == "user":
        turns[0] = dataclasses.replace(turns[0], content=(TextPart(system + "\n\n"), *turns[0].content))
    return dataclasses.replace(request, messages=tuple(turns))


def completion_length(tokens: Sequence[int], eos_ids: set[int], pad_id: int | None) -> int:
    """Generated tokens up to and including the first end-of-sequence token, pads not counted."""
    count = 0
    for token in tokens:
        if token in eos_ids:
            return count + (token != pad_id)
        count += token != pad_id
    return count


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the earliest stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


@dataclass
class _Prepared:
    """A request with its templated prompt, ready to batch; its images are still the request's parts
    (stored bytes), decoded only when its batch is encoded."""

    request: Request
    prompt: str
    images: list[ImagePart]
    length: int


@dataclass
class _Batch:
    """One batch ready for ``generate``: its requests, the processor's inputs (on the CPU, cast to the
    model's dtype, pinned for a CUDA device), and the requests dropped because an image could not be decoded."""

    items: list[_Prepared]
    inputs: Any
    errors: list[Response]


class _Failed:
    """What ended the preprocessing worker with an exception (raised again by ``generate``)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()  # the preprocessing worker has sent every batch


def pixel_bytes(part: ImagePart) -> int:
    """The decoded size of an image in bytes (RGB), from its header: nothing is decoded."""
    size = part.size
    if size is None:
        image = part.image
        if isinstance(image, (str, os.PathLike)):
            from PIL import Image

            with Image.open(image) as file:
                size = file.size
        else:
            size = image.size
    return int(size[0]) * int(size[1]) * 3


class HFBackend(BackendBase):
    """A transformers image-text-to-text model answering requests in length-sorted batches.

    With ``overlap``, a worker thread prepares the next batches (chat template, tokenizer, image
    decoding, the processor's pixel values; pinned memory on CUDA) while the current one
    generates, and batches move to the device with non-blocking copies; the answers are those of
    the serial path (``overlap = False``). By default (``None``) it overlaps when the model runs on
    an accelerator: on the CPU, preparation and generation would compete for the same cores. With
    ``prepare_processes`` (on an accelerator by default), the images are decoded and the processor
    runs in that many worker processes (:class:`~vlmbench_plugins.hf_prepare.PreparePool`), so that
    their Python work does not hold up the generation loop; a batch is shared among the idle ones, in
    slices whose inputs are joined (see :meth:`_submit`). The workers run ``prepare_niceness`` steps
    below this process in CPU priority.
    Images are decoded in ``decode_threads``, and prompts are rendered once per distinct messages.

    What it holds is bounded by bytes: a chunk of requests (sorted by length inside it) stops at
    ``chunk_bytes`` of decoded pixels (or ``chunk_size`` requests), cut back to whole batches, but
    always holds at least one batch; besides the batch generating, at most two prepared batches wait (one queued, one being handed
    over), and the worker processes prepare one batch (or slice) each while the images they decode stay
    within ``prepare_bytes`` (one batch always goes).
    """

    overlap: bool | None = None
    chunk_bytes = CHUNK_BYTES
    decode_threads = DECODE_THREADS
    prepare_processes: int | None = None  # None: the default for the device (see default_prepare_processes)
    prepare_bytes = PREPARE_BYTES
    prepare_niceness = PREPARE_NICENESS
    prepare_threads: int | None = None  # decoding threads per worker process; None: see PreparePool
    share_fraction = 1.0  # of the idle workers, the share a batch after the first is cut among (rounded up)
    pin_memory = True  # inputs for a CUDA device go to page-locked memory first (bench/bench_hf.py --no-pin compares)

    def __init__(self, args: HFArgs, batch_size: int | None, seed: int = 0, local_processes: int = 1) -> None:
        self.args = args
        self.batch_size = batch_size or AUTO_BATCH_START
        self.auto_batch = batch_size is None
        # Most requests in a chunk (text-only ones weigh almost nothing): whole batches, at least 64 requests.
        self.chunk_size = max(4, math.ceil(64 / self.batch_size)) * self.batch_size
        self.seed = seed
        self.local_processes = local_processes  # data-parallel processes sharing this machine's cores
        self.device = None if args.device_map else resolve_device(args.device)  # a device that is not there: an error now
        # A hub id is read at the commit its revision points to now (the weights too, when they are loaded later).
        self.commit = hub_commit(args)
        self._revision = self.commit or args.revision
        self.processor = load_processor(args, self._revision)
        files, adapter = self._local_files()
        self._files = (files, adapter)  # what the identity names: the weights must still be these files when they are read
        self._dtypes = LoadedDtypes(args, self.commit, files, adapter, self.device)
        self._model: Any = None
        self._dtype = self._dtypes.recorded()
        if self._dtype is None:  # the identity names the dtype, which only loading the weights tells for sure
            self._load_weights()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat_template = getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)
        if self.chat_template is None:
            print(f"vlmbench: warning: {args.pretrained} has no chat template; prompting it with the plain message text", file=sys.stderr)
        self.prepare_processes = args.prepare_processes
        self._prepare_pool: PreparePool | None = None
        self._prepare_pool_failed = False
        self._share_batches = True  # idle workers may prepare slices of one batch (until slices fail to join)
        # A fast tokenizer keeps its padding setting between calls: two request streams preparing at once
        # (each in its own thread) would switch it under each other, so this process encodes one at a time.
        self._encoding = threading.Lock()

    @property
    def model(self) -> Any:
        """The model, its weights loaded at first use: a run whose every answer is in the response store never
        loads them (its identity's dtype is the one the same files and settings loaded in last time)."""
        if self._model is None:
            self._load_weights()
        return self._model

    def _local_files(self) -> tuple[str | None, str | None]:
        """The fingerprint of the local model folder's files and the adapter's hash (None where there is none)."""
        return local_files_fingerprint(self.args.pretrained), adapter_sha256(self.args.adapter) if self.args.adapter else None

    def _files_unchanged(self) -> None:
        """The weights are read at the first request, maybe long after the identity named the model's files: a
        checkpoint saved into the folder meanwhile must not answer under the identity of the one before."""
        if self._local_files() != self._files:
            changed = self.args.pretrained + (f" or of the adapter {self.args.adapter}" if self.args.adapter else "")
            raise UserError(
                f"--model hf: the files of {changed} changed since this run started, and its answers are stored under "
                "the files it started with; rerun the same command"
            )

    def _load_weights(self) -> None:
        self._files_unchanged()
        model = load_weights(self.args, self._revision, self.device)
        self._files_unchanged()  # nor while they were read
        dtype = str(model.dtype).removeprefix("torch.")
        self._dtypes.record(dtype)
        if self._dtype is not None and dtype != self._dtype:  # a wrong record: this run's requests were keyed with it
            raise UserError(
                f"--model hf: {self.args.pretrained} loaded in {dtype}, not in the {self._dtype} recorded in {self._dtypes.path}; "
                "the record is corrected: rerun the same command"
            )
        self._dtype, self._model = dtype, model

    @functools.cached_property
    def _eos_ids(self) -> set[int]:
        """The token ids that end an answer (from the loaded model's generation config)."""
        return _eos_token_ids(self.model.generation_config)

    # ------------------------------------------------------------------ provenance
    def identity(self) -> dict[str, Any]:
        """Which model answered: pretrained, revision, hub commit, chat-template hash and dtype."""
        template = self.chat_template
        if template is not None and not isinstance(template, str):
            template = json.dumps(template, sort_keys=True)
        return {
            "backend": "hf",
            "pretrained": self.args.pretrained,
            "revision": self.args.revision,
            "commit_hash": self.commit,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template is not None else None,
            "dtype": self._dtype,
            "local_files_sha256": self._files[0],  # the files this backend started with (its weights are checked to be those)
            # Both change answers: a max_new_tokens override truncates them, attention kernels differ numerically.
            "max_new_tokens": self.args.max_new_tokens,
            "attn_implementation": self.args.attn_implementation,
            # A tuned model answers differently from its base: the adapter's content is part of the identity.
            **({"adapter_sha256": self._files[1]} if self.args.adapter else {}),
        }

    # ------------------------------------------------------------------ generation
    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        """Answer ``requests`` a chunk at a time: grouped (image or text-only, same settings), longest
        first, batched; with ``overlap``, the next batch is prepared while the current one generates."""
        stream = iter(requests)
        first = next(stream, None)
        if first is None:  # nothing to answer: the weights need not be loaded
            return
        requests = itertools.chain((first,), stream)
        overlap = self.overlap if self.overlap is not None else getattr(self.model.device, "type", "cpu") != "cpu"
        if not overlap:
            for batch in self._batches(requests):
                yield from self._answer(self._prepare_batch(batch))
            return
        ready: queue.Queue[Any] = queue.Queue(maxsize=1)  # one prepared batch waits ahead
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(requests, ready, stop), name="vlmbench-hf-prepare", daemon=True)
        worker.start()
        try:
            while (item := ready.get()) is not _END:
                if isinstance(item, _Failed):
                    raise item.error
                yield from self._answer(item)
        finally:
            stop.set()
            while worker.is_alive():  # unblock a worker waiting to hand over a batch
                with contextlib.suppress(queue.Empty):
                    ready.get(timeout=0.05)
            worker.join()

    def _produce(self, requests: Iterable[Request], ready: queue.Queue[Any], stop: threading.Event) -> None:
        """The preprocessing worker: every batch, prepared, into ``ready``; then the end (or what failed)."""

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        pending: collections.deque[tuple[list[_Prepared], list[Job], int]] = collections.deque()

        collecting = False  # a failure while collecting a batch ends the stream there, as on the serial path

        def hand_over() -> bool:
            """Hand over the oldest batch the workers hold; False once the consumer has stopped (what the
            workers hold then is read away by the next stream)."""
            nonlocal collecting
            if stop.is_set():
                return False
            batch, jobs, _ = pending.popleft()
            collecting = True
            prepared = self._collect(batch, jobs)
            collecting = False
            return not stop.is_set() and put(prepared)

        def flush() -> bool:
            """Hand over every batch the workers hold, in order; False once the consumer has stopped."""
            while pending:
                if not hand_over():
                    return False
            return True

        pool = claimed = self._claim_pool()
        submitted = False  # whether a batch went to the workers yet
        try:
            for batch in self._batches(requests):
                if pool is not None and self._prepare_pool_failed:  # the batches already sent first, in order
                    pool = None
                    if not flush():
                        return
                if pool is None:
                    if stop.is_set() or not put(self._prepare_batch(batch)):
                        return
                    continue
                weight = sum(pixel_bytes(part) for part in {id(p): p for item in batch for p in item.images}.values())
                # Each worker prepares one batch or slice, and the images they decode stay within prepare_bytes (but one batch always goes).
                while pending and (pool.idle() == 0 or weight + sum(w for _, _, w in pending) > self.prepare_bytes):
                    if not hand_over():
                        return
                pending.append((batch, self._submit(pool, batch, first=not submitted), weight))
                submitted = True
            if flush():
                put(_END)
        except BaseException as exc:  # handed to generate(), which raises it after the batches before it
            try:  # a broken request stream: the batches the workers hold were taken from it before it broke
                handed_over = collecting or not isinstance(exc, Exception) or flush()
            except Exception:
                handed_over = True
            if handed_over:
                put(_Failed(exc))
        finally:
            if claimed is not None:
                if self._prepare_pool_failed:  # the workers go now, not at close()
                    self._stop_pool()
                claimed.lock.release()

    def _claim_pool(self) -> PreparePool | None:
        """The worker processes, held for this request stream; None to prepare in this process (also while
        another stream of this backend holds them)."""
        pool = self._pool()
        if pool is None or not pool.lock.acquire(blocking=False):
            return None
        pool.drain()  # what an earlier stream that stopped early left in the workers
        return pool

    def _pool(self) -> PreparePool | None:
        """The worker processes that prepare batches (started on first use), or None to prepare in this process."""
        processes = self.prepare_processes
        if processes is None:
            processes = default_prepare_processes(getattr(self.model.device, "type", "cpu"), self.local_processes)
        if processes <= 0 or self._prepare_pool_failed:
            return None
        if self._prepare_pool is None or self._prepare_pool.processes != processes:
            self._stop_pool()
            try:
                self._prepare_pool = PreparePool(
                    self.processor, self.model.dtype, processes, self.local_processes, self.prepare_niceness, self.prepare_threads
                )
            except Exception as exc:  # no worker processes here (no /dev/shm, say): prepare in this process
                self._pool_failed(exc)
                return None
        return self._prepare_pool

    def _pool_failed(self, exc: BaseException) -> None:
        if not self._prepare_pool_failed:
            self._prepare_pool_failed = True  # it would fail again for every batch
            log.warning("--model hf: preparing batches in worker processes failed (%s); preparing them in this process", one_line(exc))

    def _task(self, batch: list[_Prepared]) -> tuple[list[str], list[list[ImagePart]] | None, bool]:
        """What the processor needs for ``batch`` (here or in a worker process): prompts, images, whether to add special tokens."""
        prompts = [item.prompt for item in batch]
        images = [item.images for item in batch] if batch[0].images else None
        return prompts, images, self._add_special_tokens(prompts)

    def _submit(self, pool: PreparePool, batch: list[_Prepared], first: bool = False) -> list[Job]:
        """Send ``batch`` to the workers in consecutive slices (at least two requests each, each with the
        whole batch's choice of special tokens): to every idle worker if it is the ``first`` of its
        stream, else to ``share_fraction`` of them (rounded up; by default all).

        Generation waits for the first batch with nothing to overlap it, so every worker prepares a part
        of it. Later batches are cut among the workers still idle, so that each is ready soon; once every
        worker is busy, a worker comes free one batch at a time and batches go whole. A shared batch costs
        this process one result to read per slice, and their joining. On an H200 (docs/benchmarks.md),
        cutting later batches among all idle workers rather than half of them took the waits after the
        first batch from 0.033 s to 0.002 s of a 2.8 s run."""
        add_special_tokens = self._task(batch)[2]
        idle = pool.idle()
        share = idle if first else math.ceil(idle * self.share_fraction)
        slices = max(1, min(share, len(batch) // SLICE_REQUESTS)) if self._share_batches else 1
        return [pool.submit(*self._task(part)[:2], add_special_tokens) for part in self._slices(batch, slices)]

    @staticmethod
    def _slices(batch: list[_Prepared], count: int) -> list[list[_Prepared]]:
        """``batch`` cut into ``count`` consecutive slices of nearly equal size."""
        bounds = [len(batch) * k // count for k in range(count + 1)]
        return [batch[start:end] for start, end in itertools.pairwise(bounds)]

    def _collect(self, batch: list[_Prepared], jobs: list[Job]) -> _Batch:
        """A batch prepared by the worker processes (its slices joined); prepared here instead when that
        failed (an undecodable image becomes its request's error here, and any other failure is raised
        here, as on every path)."""
        try:
            parts = [job.result() for job in jobs]  # every job is read, so that each worker is free again
        except Exception as exc:
            for job in jobs:
                with contextlib.suppress(Exception):
                    job.result()
            prepared = self._prepare_batch(batch)
            if not isinstance(exc, Undecodable):  # a worker failed where this process did not
                self._pool_failed(exc)
            return prepared
        try:
            if len(parts) == 1:
                inputs = parts[0]
            else:
                sizes = [(len(job_batch), sum(len(item.images) for item in job_batch)) for job_batch in self._slices(batch, len(parts))]
                inputs = merge_inputs(parts, self.tokenizer.pad_token_id, sizes)
        except CannotMerge as exc:  # these inputs are padded per batch beyond the sequences: prepared whole by one worker
            log.debug("--model hf: slices of a batch cannot be joined (%s); workers prepare whole batches until the backend is closed", exc)
            self._share_batches = False
            pool = self._prepare_pool
            return self._collect(batch, [pool.submit(*self._task(batch))]) if pool is not None else self._prepare_batch(batch)
        return _Batch(batch, self._place(inputs), [])

    def _stop_pool(self) -> None:
        if self._prepare_pool is not None:
            pool, self._prepare_pool = self._prepare_pool, None
            pool.close()

    def close(self) -> None:
        """Stop the worker processes that prepare batches, if any were started (a later run may start them
        again, and share batches among them again)."""
        self._stop_pool()
        self._prepare_pool_failed = False
        self._share_batches = True

    def _batches(self, requests: Iterable[Request]) -> Iterator[list[_Prepared]]:
        """The batches in the order they run: each chunk grouped and sorted, then cut at the batch size."""
        held_over: collections.deque[Request] = collections.deque()  # cut from the end of a chunk: the next one starts with them
        stream = _held_over_first(held_over, iter(requests))
        rendered: dict[Any, tuple[str, int]] = {}  # prompts by their messages (images are placeholders in them)
        while chunk := self._next_chunk(stream, held_over):
            if len(rendered) > PROMPTS_KEPT:
                rendered.clear()
            for group in self._groups([self._prepare(r, rendered) for r in chunk]):
                start = 0
                while start < len(group):
                    batch = group[start : start + self.batch_size]
                    start += len(batch)
                    yield batch

    def _next_chunk(self, stream: Iterator[Request], held_over: collections.deque[Request]) -> list[Request]:
        """The next requests to sort together: up to ``chunk_size`` requests, stopping once their distinct
        images would take ``chunk_bytes`` decoded, but never fewer than one batch (unless the stream ends).
        A chunk the bytes stop holds whole batches: the requests beyond the last whole batch go back to
        ``held_over`` (read first by ``stream``), since a batch of the few left over would take a
        ``generate`` call of its own, about as long as a full batch's where the device is not the bound."""
        chunk: list[Request] = []
        seen: set[int] = set()
        held = 0
        for request in stream:
            chunk.append(request)
            for part in (p for m in request.messages for p in m.images):
                if id(part) not in seen:
                    seen.add(id(part))
                    held += pixel_bytes(part)
            if len(chunk) >= self.chunk_size:
                break
            if held >= self.chunk_bytes and len(chunk) >= self.batch_size:
                whole = len(chunk) - len(chunk) % self.batch_size
                held_over.extend(chunk[whole:])
                return chunk[:whole]
        return chunk

    def _prepare(self, request: Request, rendered: dict[Any, tuple[str, int]]) -> _Prepared:
        """The request with its prompt and the prompt's length in tokens (rendered once per distinct
        messages: many requests differ only in their images, which the template does not see)."""
        messages = chat_messages(request)
        key = tuple((m["role"], tuple((c["type"], c.get("text")) for c in m["content"])) for m in messages)
        if key not in rendered:
            prompt = self._render(request, messages)
            with self._encoding:
                rendered[key] = prompt, len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        prompt, length = rendered[key]
        return _Prepared(request, prompt, [part for message in request.messages for part in message.images], length)

    def _render(self, request: Request, messages: list[dict[str, Any]]) -> str:
        if self.chat_template is None:
            return "\n".join(m.text for m in request.messages)
        try:
            return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        except Exception:
            if not any(m.role == "system" for m in request.messages):
                raise
            # A template without a system role (it raises): the instruction opens the first user turn.
            return str(self.processor.apply_chat_template(chat_messages(fold_system(request)), add_generation_prompt=True, tokenize=False))

    def _groups(self, prepared: list[_Prepared]) -> list[list[_Prepared]]:
        # One generate() call takes one set of settings, and text-only prompts must not be sent
        # with images=..., so those split a chunk; inside a group, similar lengths pad least.
        groups: dict[tuple[bool, GenerationSettings], list[_Prepared]] = {}
        for item in prepared:
            groups.setdefault((bool(item.images), item.request.generation), []).append(item)
        return [sorted(group, key=lambda item: -item.length) for group in groups.values()]

    def _prepare_batch(self, batch: list[_Prepared]) -> _Batch:
        """Decode the batch's images (a request whose image cannot be decoded becomes its error) and run
        the processor: the inputs, cast to the model's dtype and pinned for a CUDA device."""
        failures = decode_all([part for item in batch for part in item.images], self.decode_threads)
        items: list[_Prepared] = []
        errors: list[Response] = []
        for item in batch:
            failure = next((failures[id(part)] for part in item.images if id(part) in failures), None)
            if failure is not None:
                errors.append(Response(item.request.id, error=failure))
            else:
                items.append(item)
        return _Batch(items, self._encode(items) if items else None, errors)

    def _answer(self, batch: _Batch) -> Iterator[Response]:
        yield from batch.errors
        if batch.items:
            yield from self._run_items(batch.items, batch.inputs)

    def _run_items(self, items: list[_Prepared], inputs: Any) -> Iterator[Response]:
        """Generate for ``items`` (``inputs``: their prepared inputs); after out-of-memory, in smaller batches.
        A request whose prompt (image tokens included) is longer than the model's context is an error, never
        an answer; the others of its batch are prepared again without it."""
        start = 0
        while start < len(items):
            batch = items[start : start + self.batch_size]
            try:
                if inputs is None or len(batch) != len(items):
                    inputs = self._encode(batch)
                too_long = self._beyond_context(batch, inputs)
                if too_long:
                    yield from too_long.values()
                    items = [item for item in items if id(item) not in too_long]
                    inputs = None
                    continue
                responses = self._run_batch(batch, inputs)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                inputs = None
                self._shrink(exc, len(batch))
                continue
            inputs = None
            start += len(batch)
            yield from responses

    @functools.cached_property
    def _context(self) -> int | None:
        """The model's context in tokens (its text model's ``max_position_embeddings``), where its config says."""
        config = self.model.config
        for source in (getattr(config, "text_config", None), config):
            length = getattr(source, "max_position_embeddings", None)
            if isinstance(length, int) and not isinstance(length, bool) and length > 0:
                return length
        return None

    def _beyond_context(self, batch: list[_Prepared], inputs: Any) -> dict[int, Response]:
        """The error responses, by ``id()`` of the item, of the requests in ``batch`` whose prompt is longer
        than the model's context (a model would read it past its last position, or fail the whole batch)."""
        if self._context is None:
            return {}
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return {
            id(item): Response(
                request_id=item.request.id,
                error=f"the prompt takes {int(n)} tokens, more than the model's context of {self._context} "
                "(max_position_embeddings); shorten the prompt or use a model with a longer context",
                prompt=item.prompt,
            )
            for item, n in zip(batch, lengths)
            if n > self._context
        }

    def _shrink(self, exc: BaseException, failed: int) -> None:
        """After out-of-memory on a batch of ``failed`` requests: halve it (auto) or give up."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if not self.auto_batch or failed == 1:
            raise UserError(
                f"--model hf: out of memory at batch size {failed} ({one_line(exc)}); "
                "use a smaller --batch_size, --batch_size auto, dtype=bfloat16 or a bigger device"
            ) from exc
        self.batch_size = failed // 2

    def _run_batch(self, batch: list[_Prepared], inputs: Any) -> list[Response]:
        import torch

        settings = batch[0].request.generation
        started = time.perf_counter()
        inputs = inputs.to(self.model.device, non_blocking=True)  # from pinned memory on CUDA: an asynchronous copy
        if settings.do_sample:
            torch.manual_seed(self.seed if settings.seed is None else settings.seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **self._generate_kwargs(settings))
        latency = time.perf_counter() - started
        prompt_width = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_width:].tolist()
        texts = self._detokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
        pad_id = self.tokenizer.pad_token_id
        return [
            Response(
                request_id=item.request.id,
                text=truncate_at_stop(text, settings.stop).strip(),
                usage={"prompt_tokens": int(n_prompt), "completion_tokens": completion_length(tokens, self._eos_ids, pad_id)},
                latency_s=latency,
                prompt=item.prompt,
            )
            for item, text, tokens, n_prompt in zip(batch, texts, new_tokens, prompt_counts)
        ]

    @functools.cached_property
    def _detokenizer(self) -> Any:
        """A copy of the tokenizer for decoding answers: the worker thread encodes the next batch with
        the tokenizer meanwhile, and a fast tokenizer refuses concurrent use ("Already borrowed")."""
        try:
            return copy.deepcopy(self.tokenizer)
        except Exception:  # a tokenizer that cannot be copied: decode with it (the worker is idle by then)
            return self.tokenizer

    def _encode(self, batch: list[_Prepared]) -> Any:
        """The processor's inputs for a batch (images decoded), on the CPU, floating tensors cast to the
        model's dtype (pinned when the model is on a CUDA device, for a non-blocking copy)."""
        try:
            with self._encoding:
                inputs = processor_inputs(self.processor, *self._task(batch), self.model.dtype)
        except (ValueError, TypeError) as exc:
            if not batch[0].images:
                raise UserError(
                    f"--model hf: {self.args.pretrained} rejects text-only prompts ({one_line(exc)}); "
                    "run tasks that give an image, or use another model"
                ) from exc
            if self.chat_template is None:
                raise UserError(
                    f"--model hf: {self.args.pretrained} has no chat template and its processor cannot place "
                    f"the images ({one_line(exc)}); use an instruct/chat checkout of the model"
                ) from exc
            raise
        return self._place(inputs)

    def _add_special_tokens(self, prompts: list[str]) -> bool:
        """False when the template writes the BOS token itself (the tokenizer must not add a second one)."""
        bos = self.tokenizer.bos_token
        return not (bos and prompts[0].startswith(bos))

    def _place(self, inputs: Any) -> Any:
        """``inputs`` pinned when the model is on a CUDA device (for a non-blocking copy), else as they are."""
        return _pinned(inputs) if self.pin_memory and getattr(self.model.device, "type", None) == "cuda" else inputs

    def _generate_kwargs(self, settings: GenerationSettings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.args.max_new_tokens or settings.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            # One answer per request, decoded as the settings say: a checkpoint's generation_config.json may ask
            # for beams or several sequences, whose rows would no longer line up with the batch's requests.
            "num_beams": 1,
            "num_return_sequences": 1,
        }
        if settings.do_sample and settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs["do_sample"] = False
        return kwargs


def _held_over_first(held_over: collections.deque[Request], stream: Iterator[Request]) -> Iterator[Request]:
    """The requests of ``held_over`` (taken as they are added), then the next of ``stream``, until both are done."""
    while True:
        if held_over:
            yield held_over.popleft()
            continue
        request = next(stream, None)
        if request is None:
            return
        yield request


def default_prepare_processes(device_type: str, local_processes: int = 1) -> int:
    """Worker processes preparing batches by default: none on the CPU (they would take its cores from the
    model), nor where the program's main script could not be imported again safely by a worker; else a
    quarter of the cores this process may use, at most 4 (none with fewer than 4 cores)."""
    if device_type == "cpu" or not main_module_is_guarded():
        return 0
    return min(4, usable_cores(local_processes) // 4)


def _pinned(inputs: Any) -> Any:
    """``inputs`` (a processor's output) with every tensor in page-locked memory, so that the copy to
    a CUDA device can overlap with computation (``non_blocking=True``)."""
    import torch

    def pin(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.pin_memory()
        if isinstance(value, (list, tuple)):
            return type(value)(pin(v) for v in value)
        return value

    inputs.data = {key: pin(value) for key, value in inputs.items()}
    return inputs


def _eos_token_ids(generation_config: Any) -> set[int]:
    """The token ids that end an answer."""
    eos = generation_config.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in eos} if isinstance(eos, (list, tuple)) else {int(eos)}


def _local_processes(world_size: int) -> int:
    """The data-parallel processes on this machine (``LOCAL_WORLD_SIZE`` where the launcher sets it, as
    accelerate and torchrun do; else all of them), which share its cores."""
    local = whole_number(os.environ.get("LOCAL_WORLD_SIZE", ""))
    return local if local else max(1, world_size)


def factory(model_args: dict[str, str], options: BackendOptions) -> HFBackend:
    """The ``hf`` backend for ``--model_args`` (its own device, or this process's GPU under data parallelism)."""
    args = parse_model_args(model_args)
    batch_size = batch_setting(options.batch_size)
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise UserError(MISSING_DEPS) from exc
    if options.world_size > 1 and args.device is None and args.device_map is None and torch.cuda.is_available():
        # Data parallel: each process takes its own GPU (by local rank).
        args = dataclasses.replace(args, device=f"cuda:{options.local_rank}")
    backend = HFBackend(args, batch_size, seed=options.seed, local_processes=_local_processes(options.world_size))
    if batch_size is None:
        log.info("--model hf: batch size auto (starts at %d and halves on out-of-memory; --batch_size N fixes it)", AUTO_BATCH_START)
    return backend
