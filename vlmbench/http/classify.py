"""Turn what went wrong in one HTTP attempt (a status, a network exception, a deadline) into a :class:`Failure`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from vlmbench.errors import printable
from vlmbench.http.retry import Failure, retry_after_seconds

RETRYABLE_4XX = (408, 409, 429)
"""Client-error statuses worth retrying: request timeout, conflict, rate limit."""

_MODEL_MISSING = re.compile(r"\bmodel\b.*\b(does not exist|not found|not exist|unknown|no such)\b", re.IGNORECASE | re.DOTALL)


def shorten(text: object, limit: int = 200) -> str:
    """``text`` on one line (whitespace collapsed), inert (an unprintable character, e.g. of an escape sequence
    in a server's error body, becomes U+FFFD), cut to ``limit`` characters with ``...``."""
    line = printable(" ".join(str(text).split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def error_field(body: Any, name: str) -> str | None:
    """``body["error"][name]`` (or ``body[name]``) of a JSON error body when it is a string."""
    error = body.get("error") if isinstance(body, dict) else None
    source = error if isinstance(error, dict) else body if isinstance(body, dict) else {}
    value = source.get(name)
    return value if isinstance(value, str) else None


def status_failure(status: int, headers: Mapping[str, str], body: Any, message: str) -> Failure:
    """Classify an HTTP error status.

    429 is a rate limit (``insufficient_quota`` is final: waiting will not help); 408, 409 and 5xx
    are retried; any other 4xx is final. 401/403 (key rejected) and 404 (no such route or model)
    also say the endpoint as a whole is unusable (``Failure.endpoint``). ``message`` is the
    server's error text, already redacted by the caller.
    """
    code = error_field(body, "code") or error_field(body, "type")
    text = shorten(message)
    if status == 429 and code == "insufficient_quota":
        return Failure(f"HTTP 429 insufficient_quota: {text}", retryable=False)
    if status == 429:
        return Failure("HTTP 429", retryable=True, rate_limited=True, retry_after=retry_after_seconds(headers))
    if status in RETRYABLE_4XX or status >= 500:
        return Failure(f"HTTP {status}", retryable=True, retry_after=retry_after_seconds(headers))
    if status in (401, 403):
        return Failure(f"HTTP {status}: {text}", retryable=False, endpoint=f"HTTP {status}, the key was rejected: {shorten(text, 120)}")
    if status == 404 and (code == "model_not_found" or _MODEL_MISSING.search(message)):
        return Failure(f"HTTP 404 model_not_found: {text}", retryable=False, endpoint=f"HTTP 404, model not found: {shorten(text, 120)}")
    if status == 404:
        return Failure(f"HTTP 404: {text}", retryable=False, endpoint=f"HTTP 404, no such route: {shorten(text, 120)}")
    if 300 <= status < 400:  # redirects are not followed: the request would go on to an address nobody named
        target = _location(headers) or "another address"
        return Failure(
            f"HTTP {status}: the server redirects to {target}",
            retryable=False,
            kind="redirect",
            endpoint=f"HTTP {status}, the server redirects the request to {target}",
        )
    return Failure(f"HTTP {status}: {text}", retryable=False)


def _location(headers: Mapping[str, str]) -> str | None:
    """Where a redirect points, without credentials or a query and cut short, for an error line; None without one."""
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    if not isinstance(location, str) or not location.strip():
        return None
    try:
        parts = urlsplit(location.strip())
        host, port = parts.hostname or "", f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is no number, a bracketed host that is no address
        return None
    shown = f"{parts.scheme}://{host}{port}{parts.path}" if host else parts.path
    return shorten(shown, 120) or None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _host_port(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the host"
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connection_failure(exc: BaseException, url: str) -> Failure:
    """Classify a failure to connect or to exchange a request (retryable), by the cause in the exception chain.

    Kinds: ``connection refused`` (nothing listens), ``DNS failure`` (the host does not resolve),
    ``TLS error``, ``connection reset``, else ``connection error``. ``url`` must be free of
    credentials (see :func:`~vlmbench.http.redact.redact_url`); the reason names it.
    """
    import socket
    import ssl

    chain = _chain(exc)
    where = _host_port(url)
    detail = ""
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        kind, cause = "connection refused", f"connection refused, nothing listens at {where}"
    elif any(isinstance(e, socket.gaierror) for e in chain):
        kind, cause = "DNS failure", f"DNS failure, cannot resolve the host of {where}"
    elif any(isinstance(e, ssl.SSLError) for e in chain):
        kind, cause = "TLS error", f"TLS error talking to {where}: {shorten(chain[-1], 120)}"
    elif any(isinstance(e, ConnectionResetError) for e in chain):
        kind, cause = "connection reset", f"connection reset by {where}"
    else:
        detail = shorten(next((str(e) for e in reversed(chain) if str(e)), type(chain[-1]).__name__), 120)
        kind, cause = "connection error", f"connection error with {where}: {detail}"
    return Failure(f"{kind} ({url})" + (f": {detail}" if detail else ""), retryable=True, kind=kind, endpoint=cause)


def timeout_failure(seconds: float) -> Failure:
    """An attempt that got no complete answer within its deadline of ``seconds`` (retryable)."""
    return Failure("timeout", retryable=True, endpoint=f"timeout, no complete answer within {seconds:g} s")
