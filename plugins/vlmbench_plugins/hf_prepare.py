"""Preparing the hf backend's batches: decoding images and running the processor, in this process or
in worker processes.

On an accelerator a small model generates so fast that the Python work of preparing the next batch
(the processor's per-image steps) competes with the generation loop for the interpreter lock, even
from another thread. :class:`PreparePool` runs that work in spawned worker processes instead: each
holds a copy of the processor, decodes a batch's images from their stored bytes and returns the
processor's tensors (sent back through shared memory). The answers are those of preparing in
process: the same bytes are decoded the same way and the same processor runs on them.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vlmbench.backend import ImagePart

if TYPE_CHECKING:  # imported where used: listing backends stays light
    import concurrent.futures


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

_worker: dict[str, Any] = {}  # in a worker process: its processor, the model's dtype, its decoding threads


def _start_worker(processor: Any, dtype: Any, decode_threads: int, torch_threads: int) -> None:
    import torch

    torch.set_num_threads(torch_threads)
    _worker.update(processor=processor, dtype=dtype, decode_threads=decode_threads)


def _prepare_in_worker(prompts: list[str], images: list[list[ImagePart]] | None, add_special_tokens: bool) -> Any:
    """Decode a batch's images and run the processor on them (raises when an image cannot be decoded)."""
    if images:
        failures = decode_all([part for parts in images for part in parts], _worker["decode_threads"])
        if failures:
            raise Undecodable(f"{len(failures)} image(s) of the batch cannot be decoded")
    return processor_inputs(_worker["processor"], prompts, images, add_special_tokens, _worker["dtype"])


class PreparePool:
    """Worker processes that prepare batches (spawned, so that they share nothing with a process that
    already runs CUDA). :meth:`submit` returns a future of the processor's inputs; a batch that fails
    there (an undecodable image, a processor that does not pickle, a worker that died) is for the
    caller to prepare in process, where the failure is reported as it always is."""

    def __init__(self, processor: Any, dtype: Any, processes: int, local_processes: int = 1) -> None:
        self.processes = processes
        threads = max(1, min(8, (usable_cores(local_processes) - 2) // processes))  # two cores left to the generating process
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(processor, dtype, threads, threads),
        )

    def submit(self, prompts: list[str], images: list[list[ImagePart]] | None, add_special_tokens: bool) -> concurrent.futures.Future[Any]:
        """Prepare one batch in a worker; the future fails when the batch must be prepared in process."""
        try:
            return self._executor.submit(_prepare_in_worker, prompts, images, add_special_tokens)
        except Exception as exc:  # a broken pool: the batch is prepared in process
            from concurrent.futures import Future

            failed: Future[Any] = Future()
            failed.set_exception(exc)
            return failed

    def close(self) -> None:
        """Stop the workers (batches not started are dropped)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
