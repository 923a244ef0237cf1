"""Independent CPU-bound work spread over two cores: a forked child does about half of it.

Scoring a run is pure Python, task by task: on two cores a hub-size re-run scores its tasks in about
half the time when a child process scores some of them. The child is a fork, so it starts at once with
everything the parent has loaded and built (the records of the run included: nothing is sent to it),
and it sends back only each piece's result.

Forking is done only where it is safe and pays: on Linux, in the ``vlmbench`` command's own process
(:func:`vlmbench.collector.enabled`; a program calling the library keeps its process to itself), with a
single thread (a fork copies no other thread, and a lock another thread held would stay held in the
child), without torch loaded (a child must never free a GPU's memory or touch its thread pools), with two
CPUs or more and two pieces or more. Anywhere else the work runs here, in order. A child
that fails with an exception hands it over to be raised here; a child that dies without a word (killed,
out of memory) has its pieces done again here, so a lost child never loses a result.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from vlmbench import collector

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


def can_fork() -> bool:
    """Whether work may be split with a forked child in this process now (see the module's docstring)."""
    if not sys.platform.startswith("linux") or not collector.enabled() or threading.active_count() != 1 or "torch" in sys.modules:
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return False


def map_in_two(items: Sequence[T], work: Callable[[T], R], weight: Callable[[T], float], allowed: bool = True) -> list[R]:
    """``[work(item) for item in items]``, with a forked child doing about half of the total ``weight`` when
    ``allowed`` and :func:`can_fork`. ``work`` may write files, but each item's own only."""
    if not allowed or len(items) < 2 or not can_fork():
        return [work(item) for item in items]
    theirs = set(_heavier_half(items, weight))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its share, sent as one pickle, then gone without running the parent's exit handlers
        os.close(read_end)
        _child(write_end, [(i, items[i]) for i in sorted(theirs)], work)
    os.close(write_end)
    results: dict[int, R] = {}
    try:
        for index, item in enumerate(items):
            if index not in theirs:
                results[index] = work(item)
        sent = _receive(read_end)
    finally:
        os.close(read_end)
        _reap(pid, finished=len(results) == len(items) - len(theirs))
    if sent is None:  # the child died without a word: its pieces are done here
        log.warning("a scoring process ended without its results; scoring its %d tasks in this one", len(theirs))
        for index in sorted(theirs):
            results[index] = work(items[index])
    elif sent[0] == "error":
        raise sent[1]
    else:
        results.update(sent[1])
    return [results[i] for i in range(len(items))]


def _heavier_half(items: Sequence[T], weight: Callable[[T], float]) -> list[int]:
    """The indices the child takes: greedily, heaviest first, to whichever side has less so far."""
    sides: tuple[list[int], list[int]] = ([], [])
    loads = [0.0, 0.0]
    for index in sorted(range(len(items)), key=lambda i: -weight(items[i])):
        side = 0 if loads[0] <= loads[1] else 1
        sides[side].append(index)
        loads[side] += weight(items[index])
    return sides[1]


def _child(write_end: int, share: list[tuple[int, T]], work: Callable[[T], R]) -> None:
    code = 0
    try:
        try:
            payload: tuple[str, Any] = ("ok", {index: work(item) for index, item in share})
        except BaseException as exc:  # a UserError (or anything else) is raised by the parent, as a serial run would
            payload = ("error", exc)
        try:
            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that cannot be pickled: its text
            data = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _receive(read_end: int) -> tuple[str, Any] | None:
    """What the child sent, or None when it sent nothing whole."""
    chunks = []
    while chunk := os.read(read_end, 1 << 20):
        chunks.append(chunk)
    try:
        sent = pickle.loads(b"".join(chunks))  # from our own fork, never from elsewhere
    except Exception:
        return None
    return sent if isinstance(sent, tuple) and len(sent) == 2 and sent[0] in ("ok", "error") else None


def _reap(pid: int, finished: bool) -> None:
    """Wait for the child; when this process stops early (an error, Ctrl-C), stop the child first."""
    if not finished:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
