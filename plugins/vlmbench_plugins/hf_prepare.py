"""Preparing the hf backend's batches: decoding images and running the processor, in this process or
in worker processes.

On an accelerator a small model generates so fast that the Python work of preparing the next batch
(the processor's per-image steps) competes with the generation loop for the interpreter lock, even
from another thread. :class:`PreparePool` runs that work in spawned worker processes instead: each
holds a copy of the processor and its own pipe, receives a batch's prompts and its images' stored
bytes (written to the pipe as they are, outside the interpreter lock), decodes the images and returns
the processor's tensors (sent back through shared memory). Slices of one batch prepared by several
workers are joined by :func:`~vlmbench_plugins.hf_merge.merge_inputs` into what the processor gives for the whole batch. The
answers are those of preparing in process: the same bytes are decoded the same way and the same
processor runs on them.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from typing import Any

from vlmbench.backend import ImagePart


def usable_cores(local_processes: int = 1) -> int:
    """The cores this process may run on (its CPU affinity), shared with ``local_processes - 1`` others."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, local_processes))


# Threads that decode a batch's images at once (Pillow's decoders release the GIL, so they run in parallel).
DECODE_THREADS = max(1, min(8, usable_cores()))


def main_module_is_guarded() -> bool:
    """Whether a spawned worker process can import this program's main script without running anything:
    there is none (an interactive session, ``python -c``), or its top level only imports, defines and
    assigns plain values, and does its work under ``if __name__ == "__main__":``. Any other script (a call
    at its top level, an assignment from a call) might run its work again in every worker: no workers."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path is None:
        return True
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return False
    return all(_inert(statement) for statement in tree.body)


def _inert(statement: ast.stmt, top: bool = True) -> bool:
    """A statement that calls nothing when a worker imports the script (a function's body runs later; a
    class's body, its decorators and a function's defaults run at once)."""
    if isinstance(statement, (ast.Import, ast.ImportFrom, ast.Pass)):
        return True
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return not _calls(*statement.decorator_list, statement.args, *([statement.returns] if statement.returns else []))
    if isinstance(statement, ast.ClassDef):
        return not _calls(*statement.decorator_list, *statement.bases, *statement.keywords) and all(_inert(s, top=False) for s in statement.body)
    if isinstance(statement, ast.Expr):
        return isinstance(statement.value, ast.Constant)  # a docstring
    if isinstance(statement, ast.Assign):
        return not _calls(statement.value)
    if isinstance(statement, ast.AnnAssign):
        return statement.value is None or not _calls(statement.value)
    if isinstance(statement, ast.If) and top:
        return _is_main_guard(statement.test) and not statement.orelse
    return False


def _calls(*nodes: ast.AST) -> bool:
    return any(isinstance(node, ast.Call) for root in nodes for node in ast.walk(root))


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [side for side in sides if isinstance(side, ast.Name) and side.id == "__name__"]
    constants = [side for side in sides if isinstance(side, ast.Constant) and side.value == "__main__"]
    return len(names) == 1 and len(constants) == 1


def decode_all(images: Sequence[ImagePart], threads: int) -> dict[int, str]:
    """Decode every distinct image in ``images`` (in up to ``threads`` threads); the parts that could
    not be decoded, by ``id``, with the reason."""
    from vlmbench import BadImage

    parts = list({id(part): part for part in images if not part.decoded}.values())

    def load(part: ImagePart) -> str | None:
        try:
            part.load()
        except BadImage as exc:
            return str(exc)
        return None

    if threads > 1 and len(parts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(parts)), thread_name_prefix="vlmbench-hf-decode") as pool:
            outcomes = list(pool.map(load, parts))
    else:
        outcomes = [load(part) for part in parts]
    return {id(part): reason for part, reason in zip(parts, outcomes) if reason is not None}


def processor_inputs(processor: Any, prompts: list[str], images: list[list[ImagePart]] | None, add_special_tokens: bool, dtype: Any) -> Any:
    """The processor's inputs for one batch (images decoded already), padded, as tensors on the CPU with
    floating tensors (pixel values) cast to ``dtype``."""
    kwargs: dict[str, Any] = {"text": prompts, "padding": True, "return_tensors": "pt"}
    if not add_special_tokens:
        kwargs["add_special_tokens"] = False
    if images:
        kwargs["images"] = [[part.load() for part in parts] for parts in images]
    return processor(**kwargs).to(dtype)  # casts floating tensors only


class Undecodable(Exception):
    """A worker process could not decode an image of its batch (the batch is prepared in process, where
    the request with that image gets the error)."""


# --- worker processes --------------------------------------------------------------------------

OUT_OF_BAND_BYTES = 64 * 1024  # byte strings at least this long (the images) go to a worker as raw pipe writes

_worker: dict[str, Any] = {}  # in a worker process: its processor, the model's dtype, its decoding threads


def _dumps(value: Any) -> tuple[bytes, list[bytes]]:
    """``value`` pickled, with its long byte strings (stored image bytes) left out of the pickle: those are
    written to the pipe as they are, outside the interpreter lock, instead of copied into a pickle under it."""
    import pickle  # here: the backend's module is imported to list it (`vlmbench --help`), workers or not

    buffers: list[bytes] = []
    index: dict[int, int] = {}

    class OutOfBand(pickle.Pickler):
        def persistent_id(self, obj: Any) -> int | None:
            if type(obj) is bytes and len(obj) >= OUT_OF_BAND_BYTES:
                if id(obj) not in index:
                    index[id(obj)] = len(buffers)
                    buffers.append(obj)
                return index[id(obj)]
            return None

    file = io.BytesIO()
    OutOfBand(file, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return file.getvalue(), buffers


def _loads(header: bytes, buffers: list[bytes]) -> Any:
    import pickle

    class InBand(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> bytes:
            return buffers[int(pid)]

    return InBand(io.BytesIO(header)).load()


def _serve(connection: Any, processor: Any, dtype: Any, decode_threads: int, torch_threads: int, niceness: int = 0) -> None:
    """A worker process: prepare each batch it is sent and send back the inputs (or what failed), until
    it is told to stop or the backend's process is gone. It runs ``niceness`` steps below the backend's
    process in CPU priority."""
    import signal

    # Ctrl-C in a terminal reaches the whole process group; the backend's process decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness > 0 and hasattr(os, "nice"):
        # Workers run ahead of generation in bursts; where they outnumber the free cores, the generation
        # loop (one Python thread driving the device) must not wait for a core behind them.
        with contextlib.suppress(OSError):
            os.nice(niceness)
    import torch

    torch.set_num_threads(torch_threads)
    _worker.update(processor=processor, dtype=dtype, decode_threads=decode_threads)
    try:
        while (message := connection.recv()) is not None:
            count, header = message
            buffers = [connection.recv_bytes() for _ in range(count)]
            try:
                outcome: tuple[str, Any] = ("inputs", _prepare_in_worker(*_loads(header, buffers)))
            except Exception as exc:
                outcome = ("failed", exc if isinstance(exc, Undecodable) else RuntimeError(f"{type(exc).__name__}: {exc}"))
            try:
                connection.send(outcome)
            except Exception as exc:  # inputs that do not pickle: the batch is prepared by the backend's process
                connection.send(("failed", RuntimeError(f"cannot send the inputs back: {type(exc).__name__}: {exc}")))
    except (EOFError, OSError):  # the backend's process is gone: nothing left to do
        return


def _prepare_in_worker(prompts: list[str], images: list[list[ImagePart]] | None, add_special_tokens: bool) -> Any:
    """Decode a batch's images and run the processor on them (raises when an image cannot be decoded)."""
    if images:
        failures = decode_all([part for parts in images for part in parts], _worker["decode_threads"])
        if failures:
            raise Undecodable(f"{len(failures)} image(s) of the batch cannot be decoded")
    return processor_inputs(_worker["processor"], prompts, images, add_special_tokens, _worker["dtype"])


class Job:
    """One batch (or slice of one) sent to a worker. :meth:`result` waits for its inputs and raises when
    the batch must be prepared in the backend's process instead."""

    def __init__(self, worker: _Worker | None, failure: BaseException | None = None) -> None:
        self._worker, self._failure = worker, failure

    def result(self) -> Any:
        """The processor's inputs the worker sent back (waited for; read once)."""
        from multiprocessing.connection import wait

        worker, self._worker = self._worker, None
        if worker is not None:
            worker.job = None
            try:
                # A worker that died without closing its pipe (its end held elsewhere) still ends the wait.
                if worker.connection not in wait([worker.connection, worker.process.sentinel]) and not worker.connection.poll():
                    raise EOFError(f"exit code {worker.process.exitcode}")
                kind, value = worker.connection.recv()
            except Exception as exc:  # the worker died: its pipe is closed
                worker.broken = True
                self._failure = RuntimeError(f"a worker process stopped ({type(exc).__name__}: {exc})")
            else:
                if kind == "inputs":
                    return value
                self._failure = value
        if self._failure is None:
            raise RuntimeError("the inputs of this job were read already")
        raise self._failure


class _Worker:
    def __init__(self, process: Any, connection: Any) -> None:
        self.process, self.connection = process, connection
        self.job: Job | None = None  # the job whose inputs have not been read yet
        self.broken = False


class PreparePool:
    """Worker processes that prepare batches (spawned, so that they share nothing with a process that
    already runs CUDA), one batch (or slice) each at a time. Each has its own pipe: a batch's prompts
    go pickled, its images' stored bytes as raw writes (no copy under the interpreter lock); the
    processor's tensors come back through shared memory. A job that fails there (an undecodable image,
    a worker that died) is for the caller to prepare in process, where the failure is reported as it
    always is. One request stream uses the pool at a time (:attr:`lock`). The workers run ``niceness``
    steps below this process in CPU priority, each decoding a batch's images in ``threads`` threads (by
    default the usable cores but two, shared among the workers, at most 8)."""

    def __init__(self, processor: Any, dtype: Any, processes: int, local_processes: int = 1, niceness: int = 0, threads: int | None = None) -> None:
        import multiprocessing
        import threading

        self.processes = processes
        self.lock = threading.Lock()  # held by the stream whose batches the workers prepare
        if threads is None:
            threads = max(1, min(8, (usable_cores(local_processes) - 2) // processes))  # two cores left to the generating process
        context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        try:
            for number in range(processes):
                mine, theirs = context.Pipe(duplex=True)
                try:
                    process = context.Process(
                        target=_serve, args=(theirs, processor, dtype, threads, threads, niceness), name=f"vlmbench-hf-prepare-{number}", daemon=True
                    )
                    process.start()  # a processor that does not pickle fails here
                except BaseException:
                    mine.close()
                    raise
                finally:
                    theirs.close()
                self._workers.append(_Worker(process, mine))
        except BaseException:
            self.close()
            raise

    def idle(self) -> int:
        """Workers with no job whose inputs are still to be read."""
        return sum(worker.job is None and not worker.broken for worker in self._workers)

    def submit(self, prompts: list[str], images: list[list[ImagePart]] | None, add_special_tokens: bool) -> Job:
        """Send one batch to an idle worker (the caller waits for one with :meth:`idle`)."""
        worker = next((w for w in self._workers if w.job is None and not w.broken), None)
        if worker is None:
            return Job(None, RuntimeError("no worker process is free"))
        try:
            header, buffers = _dumps((prompts, images, add_special_tokens))
        except Exception as exc:  # prompts or images that do not pickle: nothing was sent, the worker stays free
            return Job(None, exc)
        try:
            worker.connection.send((len(buffers), header))
            for buffer in buffers:
                worker.connection.send_bytes(buffer)
        except Exception as exc:  # a worker that died (or a message cut short): it takes no more jobs
            worker.broken = True
            return Job(None, exc)
        worker.job = Job(worker)
        return worker.job

    def drain(self) -> None:
        """Read and drop the inputs of jobs nobody collected (a run that stopped early), so each worker is
        free. For the holder of :attr:`lock` only."""
        for worker in self._workers:
            if worker.job is not None:
                with contextlib.suppress(Exception):
                    worker.job.result()

    def close(self) -> None:
        """Stop the workers (a job they hold is dropped), waiting at most 5 seconds for all of them."""
        import time

        for worker in self._workers:
            with contextlib.suppress(Exception):
                worker.connection.send(None)
        deadline = time.monotonic() + 5
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._workers = []
