"""Independent CPU-bound work spread over two cores: a forked child does part of it.

Scoring a run is pure Python, task by task: on two cores a hub-size re-run scores its tasks in about
half the time when a child process scores some of them. The child is a fork, so it starts at once with
everything the parent has loaded and built (the records of the run included: nothing is sent to it),
and it sends back only each piece's result.

Forking is done only where it is safe and pays: on Linux, in the ``vlmbench`` command's own process
(:func:`vlmbench.collector.enabled`; a program calling the library keeps its process to itself), with a
single thread (a fork copies no other thread, and a lock another thread held would stay held in the
child), without torch loaded (a child must never free a GPU's memory or touch its thread pools), with two
CPUs or more and two pieces or more. Anywhere else the work runs here, in order, as it does when the system
gives no process (a process limit, no memory). A child that fails with an exception hands it over to be
raised here; a child that dies without a word (killed, out of memory) has its pieces done again here (the
caller keeps what they need), so a lost child never loses a result.

Two ways: :func:`map_in_two` splits a list of pieces in two halves (the tasks ``vlmbench score`` scores, the
rows of a built-in dataset generated on first use); :class:`Background` hands single
pieces to a child while this process goes on with other work (scoring a task while the next one is
predicted), one child at a time. A child never collects cyclic garbage: whatever the parent left for the
collector (a file, a database statement) is never finalised twice.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

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


@contextmanager
def no_progress_monitor() -> Iterator[None]:
    """Inside the block, ``tqdm`` (the progress bars of ``datasets`` and of Hub downloads) starts no monitor thread.

    It starts one with its first bar, even a disabled one, and keeps it to the end of the process: that second
    thread would keep every later piece of work in this process (:func:`can_fork`). The monitor only redraws a
    bar that has been quiet for ten seconds. Imports ``tqdm``: for blocks that load data with ``datasets``."""
    from tqdm import std

    interval = std.tqdm.monitor_interval
    std.tqdm.monitor_interval = 0
    try:
        yield
    finally:
        std.tqdm.monitor_interval = interval


def map_in_two(items: Sequence[T], work: Callable[[T], R], weight: Callable[[T], float], allowed: bool = True) -> list[R]:
    """``[work(item) for item in items]``, with a forked child doing about half of the total ``weight`` when
    ``allowed`` and :func:`can_fork`. ``work`` may write files, but each item's own only."""
    if not allowed or len(items) < 2 or not can_fork():
        return [work(item) for item in items]
    theirs = set(_heavier_half(items, weight))
    forked = _fork()
    if forked is None:  # no process to be had (out of memory, a process limit): all of it here
        return [work(item) for item in items]
    pid, read_end, write_end = forked
    if pid == 0:  # the child: its share, sent as one pickle, then gone without running the parent's exit handlers
        os.close(read_end)
        _child(write_end, [(i, items[i]) for i in sorted(theirs)], work)
    os.close(write_end)
    results: dict[int, R] = {}
    received = False  # the child is stopped unless it has sent all it will (Ctrl-C while waiting for it included)
    try:
        for index, item in enumerate(items):
            if index not in theirs:
                results[index] = work(item)
        sent = _receive(read_end)
        received = True
    finally:
        os.close(read_end)
        _reap(pid, finished=received)
    if sent is None:  # the child died without a word: its pieces are done here
        log.warning("a forked process ended without its results; doing its %d pieces of work in this one", len(theirs))
        for index in sorted(theirs):
            results[index] = work(items[index])
    elif sent[0] == "error":
        raise sent[1]
    else:
        results.update(sent[1])
    return [results[i] for i in range(len(items))]


# Held back from a new child until it has put them back to their defaults (:func:`_child`): the parent's handlers
# (its Ctrl-C clean-up, its messages) never run in a child.
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
_PR_SET_PDEATHSIG = 1


def _fork() -> tuple[int, int, int] | None:
    """``os.fork()`` with a pipe from the child: (pid, read end, write end), or None when the system gives no
    process (out of memory, a process limit): the caller does the work itself. The child is killed when this
    process ends, however it ends (killed outright, out of memory): it never writes into a run that is over."""
    try:
        read_end, write_end = os.pipe()
    except OSError as exc:  # no file descriptor left
        log.debug("no pipe for a forked process (%s): working here", exc)
        return None
    parent = os.getpid()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        pid = os.fork()
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(read_end)
        os.close(write_end)
        log.debug("no forked process (%s): working here", exc)
        return None
    if pid == 0:
        _die_with(parent)
    else:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return pid, read_end, write_end


def _die_with(parent: int) -> None:
    """In a new child: be killed when ``parent`` ends (Linux's ``PR_SET_PDEATHSIG``), and end now if it already has."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)
    except BaseException:
        os._exit(1)


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
    gc.disable()
    try:
        try:
            for signum in _HELD_SIGNALS:  # a signal ends this child alone (the parent does its work again), never as the parent's would
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_SIGNALS)
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
    return _unpickled(b"".join(chunks))


def _unpickled(data: bytes) -> tuple[str, Any] | None:
    try:
        sent = pickle.loads(data)  # from our own fork, never from elsewhere
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


class Background(Generic[T, R]):
    """Pieces of work handed over while this process goes on with other work, done by forked children, one
    child at a time, and by this process when it has nothing else left to do.

    :meth:`submit` starts a child for a piece when no child is busy and :func:`can_fork`; otherwise the piece
    waits. :meth:`drain` is called once this process has nothing else to do: it does waiting pieces here,
    heaviest first, handing the heavier half of those left to a new child whenever the last one is done;
    then it waits for the last child and gives every result by key. A piece whose child died without a word
    is missing from them (the caller does it); a child's exception is raised. :meth:`close` stops a child
    still working (this process stops early: an error, Ctrl-C)."""

    def __init__(self, work: Callable[[T], R], allowed: bool = True) -> None:
        self._work, self._allowed = work, allowed
        self._results: dict[str, R] = {}
        self._waiting: list[tuple[str, T, float]] = []
        self._child: tuple[int, int, list[str], bytearray] | None = None  # pid, read end, its keys, what it sent so far

    def submit(self, key: str, item: T, weight: float) -> bool:
        """Hand a piece over (False when this object may not fork at all: the caller does the piece)."""
        if not self._allowed:
            return False
        self._waiting.append((key, item, weight))
        if self._idle() and can_fork() and self._start(self._waiting):
            self._waiting = []
        return True

    def drain(self) -> dict[str, R]:
        """Every handed piece done (see the class), by key."""
        while self._waiting:
            if self._idle() and len(self._waiting) >= 2 and can_fork():
                theirs = set(_heavier_half(self._waiting, lambda piece: piece[2]))
                if self._start([piece for i, piece in enumerate(self._waiting) if i in theirs]):
                    self._waiting = [piece for i, piece in enumerate(self._waiting) if i not in theirs]
            self._waiting.sort(key=lambda piece: -piece[2])
            key, item, _ = self._waiting.pop(0)
            self._results[key] = self._work(item)
        if self._child is not None:
            self._poll(block=True)
        return dict(self._results)

    def close(self) -> None:
        """Stop a child that is still working."""
        if self._child is not None:
            pid, read_end, _, _ = self._child
            self._child = None
            os.close(read_end)
            _reap(pid, finished=False)

    def _idle(self) -> bool:
        if self._child is not None:
            self._poll(block=False)
        return self._child is None

    def _start(self, pieces: list[tuple[str, T, float]]) -> bool:
        """A child for ``pieces``; False when no process could be had (they stay this process's to do)."""
        forked = _fork()
        if forked is None:
            return False
        pid, read_end, write_end = forked
        if pid == 0:
            os.close(read_end)
            _child(write_end, [(i, item) for i, (_, item, _) in enumerate(pieces)], self._work)
        os.close(write_end)
        os.set_blocking(read_end, False)
        self._child = (pid, read_end, [key for key, _, _ in pieces], bytearray())
        return True

    def _poll(self, block: bool) -> None:
        """Read what the child sent; once it has closed its end, reap it and keep its results."""
        assert self._child is not None
        pid, read_end, keys, received = self._child
        os.set_blocking(read_end, block)
        while True:
            try:
                chunk = os.read(read_end, 1 << 20)
            except BlockingIOError:
                return  # still working
            if not chunk:
                break
            received += chunk
        self._child = None
        os.close(read_end)
        _reap(pid, finished=True)
        sent = _unpickled(bytes(received))
        if sent is None:
            log.warning("a forked process ended without its results; %s done in this one", ", ".join(keys))
        elif sent[0] == "error":
            raise sent[1]
        else:
            self._results.update((keys[index], result) for index, result in sent[1].items())
