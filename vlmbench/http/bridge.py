"""Sync over async: an event loop in a daemon thread, so a plain generator can drive asyncio I/O.

A backend's ``generate`` is a synchronous generator; its requests run concurrently on the loop
and each finished item is handed over through a queue the moment it exists.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:  # asyncio is imported on first use: listing backends and --help never load it
    import asyncio

T = TypeVar("T")

Emit = Callable[[T], None]
"""What a producer calls with each finished item (thread-safe)."""


class _Done:
    """Marks the end of a stream in the hand-over queue."""


_DONE = _Done()


class LoopThread:
    """An asyncio event loop running in a daemon thread, started on first use.

    ``cleanup`` (optional) is awaited on the loop by :meth:`close`, e.g. to close an HTTP client's
    connections; :meth:`close` also runs at interpreter exit so connections close cleanly.
    After :meth:`close`, the next use starts a fresh loop.
    """

    def __init__(self, name: str = "vlmbench-http", cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        self.name = name
        self._cleanup = cleanup
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while a loop thread is started."""
        return self._loop is not None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started if needed."""
        import asyncio

        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.close)
            return self._loop

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (from another thread only)."""
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self.loop()).result(timeout=timeout)

    def stream(self, produce: Callable[[Emit[T]], Coroutine[Any, Any, None]]) -> Generator[T, None, None]:
        """Yield what ``produce(emit)`` emits, as it emits it.

        ``produce`` runs on the loop; when it returns, the stream ends; when it raises, the
        exception is raised here after every item emitted before it. When the caller stops
        iterating early (an exception, Ctrl-C, ``close()``), ``produce`` is cancelled.
        """
        import asyncio

        items: queue.SimpleQueue[object] = queue.SimpleQueue()

        async def run() -> None:
            try:
                await produce(items.put)
            finally:
                items.put(_DONE)

        future = asyncio.run_coroutine_threadsafe(run(), self.loop())
        try:
            while (item := items.get()) is not _DONE:
                yield cast(T, item)
            future.result()  # surfaces the producer's exception instead of silently dropping items
        finally:
            if not future.done():
                future.cancel()

    def close(self, timeout: float = 10.0) -> None:
        """Run ``cleanup`` on the loop, stop it and join its thread. Idempotent."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        import asyncio

        atexit.unregister(self.close)
        if self._cleanup is not None:
            cleanup = self._cleanup

            async def run_cleanup() -> None:
                await cleanup()

            asyncio.run_coroutine_threadsafe(run_cleanup(), loop).result(timeout=timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=timeout)
        if not thread.is_alive():
            loop.close()
