"""Keep secrets out of what a run stores and prints: URLs without credentials, error texts with keys masked."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session|code", re.IGNORECASE)
"""Query-parameter names whose values are treated as secrets (``api-key``, ``access_token``, ``sig``, ...)."""

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
_USERINFO = re.compile(r"(//)[^/@\s]*@")
_PARAM = re.compile(r"([?&;]\s*)([\w.\-\[\]]+)=([^&;#\s'\"<>`]*)")
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=\-]{6,}")
_KEY_LIKE = re.compile(r"\b(sk)-[A-Za-z0-9_\-]{12,}")
MIN_SECRET_LENGTH = 8  # shorter "secrets" (e.g. the placeholder key EMPTY) are not masked
MIN_PREFIX_LENGTH = 6  # a key cut short by a truncated message is masked down to this many characters


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part, query string and fragment (where keys hide): each becomes ``***``.

    Text that is not a URL comes back unchanged; a URL too broken to parse loses the same parts by pattern.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", url)
        base = re.split(r"[?#]", text, maxsplit=1)[0]
        return base + ("?" + MASK if "?" in text else "#" + MASK if "#" in text else "")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if "@" in parts.netloc:
        netloc = MASK + "@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", MASK if parts.fragment else ""))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` (an error message, a log line) with secrets masked as ``***``.

    Masks: the ``user:password@`` part and the query string of every URL; the value of any
    secret-looking ``name=value`` parameter (``api-key=``, ``token=``, ``sig=``, ...); bearer
    tokens; ``sk-...``-style keys; and each of ``secrets`` (at least 8 characters), including
    a prefix of it left by a message truncated mid-key.
    """
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _PARAM.sub(lambda m: m.group(1) + m.group(2) + "=" + (MASK if SECRET_PARAM.search(m.group(2)) else m.group(3)), text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + MASK, text)
    text = _KEY_LIKE.sub(lambda m: m.group(1) + "-" + MASK, text)
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        text = text.replace(secret, MASK)
        for length in range(len(secret) - 1, MIN_PREFIX_LENGTH - 1, -1):
            if secret[:length] in text:
                text = text.replace(secret[:length], MASK)
    return text


class Redactor:
    """:func:`redact_text` bound to one client's secrets (its API key)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)

    def __call__(self, text: str) -> str:
        """``text`` with URL credentials, secret-looking parameters and this client's secrets masked."""
        return redact_text(text, self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
