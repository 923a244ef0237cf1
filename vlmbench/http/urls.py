"""Check an endpoint URL and an API key before any request: one-line errors for a URL that cannot work or would
leak a credential, and for a key an HTTP header cannot carry (the error never shows the key)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from vlmbench.errors import UserError
from vlmbench.redact import is_secret_name, redact_url

KEY_HINT = "pass the key as api_key or OPENAI_API_KEY"


def check_base_url(url: str, label: str = "base_url", key_hint: str = KEY_HINT) -> str:
    """``url`` checked and without a trailing slash, e.g. ``http://127.0.0.1:8000/v1``.

    Raises a one-line :class:`~vlmbench.errors.UserError` (naming ``label``, never the credential)
    when the URL is not ``http(s)://host[:port][/path]``: a missing scheme or host, an unparsable
    host or port (e.g. ``http://[::1:8000/v1``), a ``user:password@`` part or a query string (a
    key there would land in logs and results; the client appends paths after it, so it cannot
    work anyway), or a fragment. ``key_hint`` says where a key belongs instead.
    """
    url = url.strip()
    shown = _shown(url)
    example = "e.g. http://127.0.0.1:8000/v1"
    if not url.lower().startswith(("http://", "https://")):
        raise UserError(f"{label} '{shown}' must start with http:// or https://; {example}")
    try:
        parts = urlsplit(url)
        port = parts.port  # parses the port: a ValueError for 'host:abc' or a port > 65535
        host = parts.hostname
    except ValueError as exc:
        raise UserError(f"{label} '{shown}' is not a valid URL ({exc}); {example}") from None
    if "@" in parts.netloc:
        raise UserError(f"{label} '{shown}' must not carry credentials (user:password@); {key_hint}")
    if parts.query or url.rstrip().endswith("?"):
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        if any(is_secret_name(name) for name in names):
            raise UserError(f"{label} '{shown}' must not carry credentials in its query string ({', '.join(n + '=***' for n in names)}); {key_hint}")
        raise UserError(f"{label} '{shown}' must not have a query string (the client appends the API path after it); remove it")
    if parts.fragment:
        raise UserError(f"{label} '{shown}' must not have a #fragment; remove it")
    if not host:
        raise UserError(f"{label} '{shown}' has no host; {example}")
    if port == 0:
        raise UserError(f"{label} '{shown}' has port 0; {example}")
    return url.rstrip("/")


def _shown(url: str) -> str:
    """``url`` as an error message may show it: as is when it can hold no credential, else redacted."""
    if not any(c in url for c in "@?#"):
        return url
    shown = redact_url(url)
    return shown.split("#", 1)[0] + "#***" if "#" in shown else shown


def check_api_key(key: str, label: str) -> str:
    """``key`` unchanged when an HTTP header can carry it: printable ASCII without spaces. Else a one-line
    :class:`~vlmbench.errors.UserError` naming ``label`` (e.g. ``OPENAI_API_KEY``) and what is wrong, never
    the key: the HTTP library's own error quotes the header, so the text after a line break would be shown.
    A key read from a file often ends with a line break (``\\r`` from a Windows file)."""
    if key != key.strip():
        raise UserError(f"{label} starts or ends with a space or a line break (read from a file?); strip it")
    if not key.isascii():
        raise UserError(f"{label} holds characters outside ASCII, which an HTTP header cannot carry; check that it is the key")
    if not key.isprintable() or any(c.isspace() for c in key):
        raise UserError(f"{label} holds a space, a line break or a control character; an API key has none: check that it is the key")
    return key
