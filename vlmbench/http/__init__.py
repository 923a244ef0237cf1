"""Shared HTTP machinery for API backends and model judges: retry decisions, backoff, Retry-After, an adaptive concurrency limiter and the sync-over-async bridge.

Modules:

- :mod:`~vlmbench.http.retry`: :class:`Failure`, :func:`retry_after_seconds`, :class:`RetryPolicy`, :func:`call_with_retries`
- :mod:`~vlmbench.http.classify`: :func:`status_failure`, :func:`connection_failure`, :func:`timeout_failure`
- :mod:`~vlmbench.http.limiter`: :class:`AdaptiveLimiter` (concurrency that settles on what the server takes)
- :mod:`~vlmbench.http.bridge`: :class:`LoopThread` (a background event loop driving a plain generator)
- :mod:`~vlmbench.http.guard`: :class:`EndpointGuard` (fail fast on a dead endpoint; error counts)
- :mod:`~vlmbench.http.limits`: reply size bounds and a total per-attempt deadline
- :mod:`~vlmbench.http.redact` and :mod:`~vlmbench.http.urls`: secrets out of URLs and error texts; base URL and API key checks
"""

from vlmbench.http.bridge import Emit, LoopThread
from vlmbench.http.classify import RETRYABLE_4XX, connection_failure, error_field, shorten, status_failure, timeout_failure
from vlmbench.http.guard import EndpointDown, EndpointGuard
from vlmbench.http.limiter import AdaptiveLimiter
from vlmbench.http.limits import body_byte_limit, read_limited, reply_char_limit, within
from vlmbench.http.redact import Redactor, redact_text, redact_url
from vlmbench.http.retry import MAX_RETRY_AFTER_S, Attempts, Failure, RetryPolicy, call_with_retries, retry_after_seconds
from vlmbench.http.urls import check_api_key, check_base_url

__all__ = [
    "MAX_RETRY_AFTER_S",
    "RETRYABLE_4XX",
    "AdaptiveLimiter",
    "Attempts",
    "Emit",
    "EndpointDown",
    "EndpointGuard",
    "Failure",
    "LoopThread",
    "Redactor",
    "RetryPolicy",
    "body_byte_limit",
    "call_with_retries",
    "check_api_key",
    "check_base_url",
    "connection_failure",
    "error_field",
    "read_limited",
    "redact_text",
    "redact_url",
    "reply_char_limit",
    "retry_after_seconds",
    "shorten",
    "status_failure",
    "timeout_failure",
    "within",
]
