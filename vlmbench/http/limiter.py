"""An adaptive concurrency limit for API clients: additive increase, multiplicative decrease (AIMD)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

log = logging.getLogger(__name__)


class AdaptiveLimiter:
    """Caps requests in flight at ``limit``, which adapts to rate limits (AIMD).

    A 429 halves the limit (at least 1) and pauses every new request until its Retry-After
    has passed; the many 429s that answer requests sent under the old limit count as one.
    ``limit`` consecutive successes add one back, up to ``maximum``. Waiters are served in
    FIFO order and a freed slot is handed straight to the next one. Event-loop use only.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"maximum must be >= 1, got {maximum}")
        self.maximum = maximum
        self.limit = maximum
        self.lowest = maximum
        self.in_flight = 0
        self.peak = 0
        self.epoch = 0  # bumped at each decrease; a 429 from an older epoch does not decrease again
        self.resume_at = 0.0  # loop time before which nothing new starts (Retry-After)
        self._streak = 0
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _can_start(self) -> bool:
        return self.in_flight < self.limit and self._loop().time() >= self.resume_at

    def _take(self) -> int:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return self.epoch

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch the request is sent under (pass it to :meth:`release`)."""
        if not self._waiters and self._can_start():
            return self._take()
        waiter: asyncio.Future[int] = self._loop().create_future()
        self._waiters.append(waiter)
        self._wake()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # a slot was handed over just before the cancel
                self.release(waiter.result())
            elif waiter in self._waiters:  # (_wake may already have dropped the cancelled waiter)
                self._waiters.remove(waiter)
            raise

    def release(self, epoch: int, *, ok: bool = False, rate_limited: bool = False, wait: float = 0.0) -> None:
        """Free a slot and account for how the request went: ``ok`` (a success), ``rate_limited``
        (a 429; ``wait`` is its Retry-After in seconds), or neither (another failure, or cancelled)."""
        self.in_flight -= 1
        if rate_limited:
            self._on_rate_limit(epoch, wait)
        elif ok:
            self._streak += 1
            if self._streak >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._streak = 0
        self._wake()

    def _on_rate_limit(self, epoch: int, wait: float) -> None:
        self.resume_at = max(self.resume_at, self._loop().time() + wait)
        self._streak = 0
        if epoch == self.epoch:
            before, self.limit = self.limit, max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self.epoch += 1
            log.info("rate limited: concurrency %d -> %d, pausing %.1f s", before, self.limit, wait)

    def _wake(self) -> None:
        loop = self._loop()
        while self._waiters and self.in_flight < self.limit:
            if loop.time() < self.resume_at:
                if self._timer is None:
                    self._timer = loop.call_at(self.resume_at, self._on_timer)
                return
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._take())

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()
