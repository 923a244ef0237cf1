"""Fail fast on a dead or wrong endpoint, and count error classes over a run.

A run against an endpoint that refuses connections, does not resolve, rejects the key or lacks
the model would otherwise retry every request with backoff and store one error per sample.
:class:`EndpointGuard` watches every attempt: until one has succeeded, ``threshold`` consecutive
endpoint-level failures (a :class:`~vlmbench.http.retry.Failure` with ``endpoint`` set) stop the
run with one :class:`EndpointDown` line naming the URL, the cause and the fix. Once any attempt
has succeeded the endpoint is known to work, and later failures go back to normal retry and
per-sample error handling.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from vlmbench.errors import UserError
from vlmbench.http.retry import Failure

DEFAULT_THRESHOLD = 3

FIXES: dict[str, str] = {
    "connection refused": "start the server, or fix the host and port in base_url",
    "DNS failure": "check the host name in base_url",
    "TLS error": "check http:// versus https:// in base_url",
    "connection reset": "check that base_url points at an OpenAI-compatible server",
    "connection error": "check that base_url points at an OpenAI-compatible server",
    "timeout": "check that the server is up and answering, or raise timeout=",
    "HTTP 401": "pass a valid API key",
    "HTTP 403": "pass a key allowed to use this model",
    "HTTP 404 model_not_found": "check model= against the models the server lists (GET <base_url>/models)",
    "HTTP 404": "check base_url (OpenAI-compatible servers usually serve under /v1)",
    "redirect": "redirects are never followed (the request would go to an address nobody named): pass the server's own address as base_url",
}
"""The default one-line fix per error class, for the stop message."""


class EndpointDown(UserError):
    """The endpoint is dead or wrong: raised once, from the backend's ``generate``, to stop the run."""


class EndpointGuard:
    """Watches attempts against one endpoint; stops a run that cannot succeed; counts error classes.

    ``url`` (free of credentials) and ``label`` (e.g. ``--model openai``) go into the stop message;
    ``fixes`` overrides :data:`FIXES` per error class. Event-loop use only (no locking); the
    counters may be read from any thread after a run.
    """

    def __init__(self, url: str, label: str, threshold: int = DEFAULT_THRESHOLD, fixes: Mapping[str, str] | None = None) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        self.url = url
        self.label = label
        self.threshold = threshold
        self.fixes = {**FIXES, **(fixes or {})}
        self.succeeded = False  # any attempt has succeeded (over the guard's lifetime)
        self.streak = 0  # consecutive endpoint-level failures while nothing has succeeded
        self.stopped: EndpointDown | None = None
        self.failed_attempts: Counter[str] = Counter()  # every failed attempt, retried or not, by class
        self.errors: Counter[str] = Counter()  # requests that ended as errors, by class

    def observe(self, outcome: object) -> None:
        """Account for one attempt's outcome (a :class:`Failure`, or anything else for a success);
        raises :class:`EndpointDown` when this failure makes the run hopeless."""
        if not isinstance(outcome, Failure):
            self.succeeded = True
            self.streak = 0
            return
        self.failed_attempts[outcome.kind] += 1
        if self.succeeded or outcome.endpoint is None:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.threshold and self.stopped is None:
            # "HTTP 401 ..." falls back to the fix for "HTTP 401"
            fix = self.fixes.get(outcome.kind) or self.fixes.get(" ".join(outcome.kind.split()[:2]), "check base_url")
            self.stopped = EndpointDown(
                f"{self.label}: {self.url}: {outcome.endpoint.rstrip('. ')}; {fix} "
                f"(stopped after {self.streak} failed attempts in a row and none succeeded)"
            )
        self.raise_if_stopped()

    def raise_if_stopped(self) -> None:
        """Raise the stop error when the run was stopped (call before each new attempt)."""
        if self.stopped is not None:
            raise self.stopped

    def holds_back(self, failure: Failure) -> bool:
        """True when a request that ended with ``failure`` may still be explained by a dead endpoint
        (nothing has succeeded yet): the caller keeps its error back until a success or the run's end,
        so a stopped run stores no per-sample errors for it."""
        return failure.endpoint is not None and not self.succeeded

    def rearm(self) -> None:
        """Start a new run of attempts (e.g. a new ``generate`` call) after a stop: the streak restarts."""
        self.stopped = None
        self.streak = 0

    def count_error(self, kind: str) -> None:
        """Count one request that ended as an error of class ``kind``."""
        self.errors[kind] += 1

    def error_summary(self) -> dict[str, int]:
        """Requests that ended as errors, by class (e.g. ``{"HTTP 500": 2, "timeout": 1}``), most frequent first."""
        return dict(self.errors.most_common())

    def attempt_summary(self) -> dict[str, int]:
        """Every failed attempt, including those retried successfully, by class, most frequent first."""
        return dict(self.failed_attempts.most_common())
