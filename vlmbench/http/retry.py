"""Retry decisions: what one failed attempt means, how long to wait before the next, and the retry loop.

An attempt ends in a result or a :class:`Failure`. A failure says whether another attempt may
help (``retryable``), whether it was a rate limit (the limiter then lowers concurrency) and how
long the server asked us to wait (``Retry-After``). :func:`call_with_retries` runs attempts under
an :class:`~vlmbench.http.limiter.AdaptiveLimiter` until one succeeds, a failure is final or the
retries are spent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from vlmbench.http.limiter import AdaptiveLimiter

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RETRY_AFTER_S = 120.0
"""A longer Retry-After (e.g. a daily quota) is not worth waiting for: the request fails at once."""


@dataclass(frozen=True)
class Failure:
    """Why one attempt failed, and what to do about it.

    ``reason`` is the one-line text a failed sample keeps (e.g. ``"HTTP 500"``, ``"timeout"``,
    ``"HTTP 400: unknown field"``); ``kind`` is its error class for counting (by default the text
    before the first colon). ``endpoint`` is set when the failure says the endpoint as a whole is
    unusable (nothing listens, the host does not resolve, the key is rejected, the route or model
    does not exist, no answer in time): a one-line cause that
    :class:`~vlmbench.http.guard.EndpointGuard` uses to stop a run that has had no success yet.
    """

    reason: str
    retryable: bool
    rate_limited: bool = False
    retry_after: float | None = None  # seconds the server asked us to wait
    kind: str = ""
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.reason.split(":")[0].strip())


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``Retry-After-Ms`` / ``Retry-After`` (seconds or an HTTP-date); None when absent or unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        return seconds if seconds == seconds and seconds >= 0 else None  # rejects NaN and negatives
    value = lowered.get("retry-after")
    if not value:
        return None
    import email.utils  # here: the date form is rare, and the module (with socket) costs every start-up 5 ms

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """How often to retry and how long to wait in between.

    The wait is the server's Retry-After when it gave one, else exponential backoff
    (``backoff_base`` doubling per retry, at most ``backoff_cap``) with jitter in [50 %, 100 %].
    """

    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = MAX_RETRY_AFTER_S

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based), jittered."""
        delay = min(self.backoff_cap, self.backoff_base * 2.0**attempt)
        return delay * (rng.uniform(0.5, 1.0) if rng is not None else random.uniform(0.5, 1.0))

    def wait_before_retry(self, failure: Failure, attempt: int) -> float:
        """The server's Retry-After when it gave one, else :meth:`backoff`."""
        if failure.retry_after is not None and failure.retry_after > 0:
            return failure.retry_after
        return self.backoff(attempt)

    def settle(self, failure: Failure) -> Failure:
        """``failure``, made final when the server asks for a wait longer than ``max_retry_after``."""
        if failure.retry_after is not None and failure.retry_after > self.max_retry_after:
            return replace(failure, reason=f"{failure.reason} (Retry-After {failure.retry_after:.0f} s)", retryable=False, kind=failure.kind)
        return failure


@dataclass(frozen=True)
class Attempts(Generic[T]):
    """What :func:`call_with_retries` ended with: the result (or the final failure), the latency of
    the last attempt in seconds, and how many attempts were made."""

    result: T | Failure
    latency_s: float
    attempts: int


async def call_with_retries(
    attempt: Callable[[], Awaitable[T | Failure]],
    policy: RetryPolicy,
    limiter: AdaptiveLimiter,
    observe: Callable[[T | Failure], None] | None = None,
    label: str = "request",
) -> Attempts[T]:
    """Run ``attempt`` until it returns a result, a final failure, or ``policy.max_retries`` retries are spent.

    Each attempt holds one ``limiter`` slot. A rate limit is reported to the limiter (which lowers
    the concurrency to what the server takes); the refused request alone waits its Retry-After
    before its next attempt, and the others go on. ``observe`` sees every attempt's
    outcome after its slot is freed and may raise to stop (e.g. a dead endpoint). A failure that
    outlives the retries comes back as ``"<reason> after N retries"``.
    """
    retries = policy.max_retries
    failure: Failure | None = None
    latency = 0.0
    for number in range(retries + 1):
        ticket = await limiter.acquire()
        started = time.perf_counter()
        try:
            outcome = await attempt()
        except BaseException:
            limiter.release(ticket)
            raise
        latency = time.perf_counter() - started
        if not isinstance(outcome, Failure):
            limiter.release(ticket, ok=True)
            if observe is not None:
                observe(outcome)
            return Attempts(outcome, latency, number + 1)
        failure = policy.settle(outcome)
        wait = policy.wait_before_retry(failure, number) if failure.retryable else 0.0
        limiter.release(ticket, rate_limited=failure.rate_limited, wait=wait)
        if observe is not None:
            observe(failure)
        if not failure.retryable:
            return Attempts(failure, latency, number + 1)
        if number < retries:
            log.debug("%s: %s; retry %d of %d in %.2f s", label, failure.reason, number + 1, retries, wait)
            import asyncio

            await asyncio.sleep(wait)
    assert failure is not None
    return Attempts(replace(failure, reason=f"{failure.reason} after {retries} retries", kind=failure.kind), latency, retries + 1)
