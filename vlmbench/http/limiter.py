"""An adaptive concurrency limit for API clients: it finds what the server takes and stays there.

A server that takes N requests at a time answers the rest with 429. The limiter learns N from the
429s themselves and keeps sending at it, without stalling the requests that were not refused:

- **Only the refused request waits.** A 429 lowers the limit to the number of this client's
  requests still in flight when it comes back (at least 1): the 429s of a burst come back while the
  requests the server took are still being served, so the limit settles on what the server takes.
  The refused request waits its Retry-After (the retry loop does that) while the others go on.
  Only when the server refuses a request that was alone in flight (it takes none: a rate window,
  not a concurrency cap) are new requests paused, for as long as the server asked.
- **Probe upward carefully once a limit is known.** Each 429 records a *ceiling* (the server refused
  a request with that many in flight). Below it, ``limit`` consecutive successes add one to the
  limit. At the ceiling, one request above it is tried only after a number of successes that
  doubles each time the server refuses the probe, so a known limit costs few 429s; a probe that
  succeeds forgets the ceiling. Only requests sent since the limit last dropped count as evidence
  (a ticket carries the *epoch* it was sent in), so the stragglers of a burst mislead nothing.

Waiters are served in FIFO order and a freed slot is handed straight to the next one.
Event-loop use only.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # asyncio is imported on first use: listing backends and --help never load it
    import asyncio

log = logging.getLogger(__name__)

PROBE_FIRST = 4  # successes, per unit of the limit, before the first probe above a known ceiling
PROBE_MOST = 64  # ... and at most this many, however often probes were refused


class Ticket(NamedTuple):
    """What :meth:`AdaptiveLimiter.acquire` hands out: the epoch a request is sent in (it changes
    each time the limit drops) and the number of this client's requests in flight with it."""

    epoch: int
    level: int


class AdaptiveLimiter:
    """Caps requests in flight at ``limit``, which adapts to the 429s of the server (see the module).

    :meth:`acquire` returns a :class:`Ticket`; pass it back to :meth:`release` with the outcome.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"maximum must be >= 1, got {maximum}")
        self.maximum = maximum
        self.limit = maximum
        self.lowest = maximum
        self.in_flight = 0
        self.peak = 0
        self.ceiling: int | None = None  # a request was refused with this many in flight
        self.epoch = 0  # bumped each time the limit drops
        self.rate_limited = 0  # 429s seen
        self.pauses = 0  # times new requests were paused (a lone request refused)
        self.resume_at = 0.0  # loop time before which nothing new starts (Retry-After of a lone request)
        self._streak = 0
        self._probe_after = 0  # successes at the ceiling before the next probe (0: not yet set)
        self._waiters: deque[asyncio.Future[Ticket]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def _loop(self) -> asyncio.AbstractEventLoop:
        import asyncio

        return asyncio.get_running_loop()

    def _can_start(self) -> bool:
        return self.in_flight < self.limit and self._loop().time() >= self.resume_at

    def _take(self) -> Ticket:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return Ticket(self.epoch, self.in_flight)

    async def acquire(self) -> Ticket:
        """Wait for a slot; returns the ticket (pass it to :meth:`release`)."""
        if not self._waiters and self._can_start():
            return self._take()
        import asyncio

        waiter: asyncio.Future[Ticket] = self._loop().create_future()
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

    def release(self, ticket: Ticket, *, ok: bool = False, rate_limited: bool = False, wait: float = 0.0) -> None:
        """Free a slot and account for how the request went: ``ok`` (a success), ``rate_limited``
        (a 429; ``wait`` is its Retry-After in seconds), or neither (another failure, or cancelled)."""
        self.in_flight -= 1
        if rate_limited:
            self._on_rate_limit(ticket, wait)
        elif ok:
            self._on_success(ticket)
        self._wake()

    def _on_success(self, ticket: Ticket) -> None:
        if ticket.epoch == self.epoch and self.ceiling is not None and ticket.level >= self.ceiling:
            self.ceiling, self._probe_after = None, 0  # a probe above the ceiling went through
        self._streak += 1
        if self.limit >= self.maximum:
            return
        if self.ceiling is None or self.limit + 1 < self.ceiling:
            if self._streak >= self.limit:  # below the ceiling: one per `limit` successes
                self._grow()
        else:
            if not self._probe_after:
                self._probe_after = PROBE_FIRST * self.limit
            if self._streak >= self._probe_after:  # at the ceiling: try one more, now and then
                self._grow()

    def _grow(self) -> None:
        self.limit += 1
        self._streak = 0

    def _on_rate_limit(self, ticket: Ticket, wait: float) -> None:
        self.rate_limited += 1
        self._streak = 0
        others = self.in_flight  # this client's requests still in flight (the server took them, or is refusing them)
        probe_refused = ticket.epoch == self.epoch and self.ceiling is not None and ticket.level >= self.ceiling
        if others == 0:
            # Refused alone: the server takes none now (a rate window, or others use it all). Pause new
            # requests for as long as it asked; no concurrency is known to work.
            self.resume_at = max(self.resume_at, self._loop().time() + wait)
            self.pauses += 1
            self.ceiling, self._probe_after = None, 0
        else:
            self.ceiling = others + 1 if self.ceiling is None else min(self.ceiling, others + 1)
            if probe_refused:
                self._probe_after = min(2 * self._probe_after, PROBE_MOST * max(1, others)) if self._probe_after else PROBE_FIRST * others
        before, self.limit = self.limit, max(1, min(self.limit, others))
        self.lowest = min(self.lowest, self.limit)
        if self.limit < before:
            self.epoch += 1
            log.info("rate limited: concurrency %d -> %d%s", before, self.limit, f", pausing {wait:.1f} s" if others == 0 else "")

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
