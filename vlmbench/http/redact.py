"""Keep secrets out of the error texts an HTTP client produces (stored in samples, printed, logged).

Builds on :mod:`vlmbench.redact` (URLs lose ``user:password@`` and the query string; which names
are secret) and adds what error messages carry: ``name=value`` parameters outside a full URL,
bearer tokens, ``sk-...`` keys, and the client's own key, even cut short by a truncated message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vlmbench.redact import MASK, is_secret_name, redact_url
from vlmbench.redact import redact_text as redact_urls

__all__ = ["MASK", "Redactor", "is_secret_name", "redact_text", "redact_url"]

_PARAM = re.compile(r"(^|[?&;,(\s])([A-Za-z_][\w.\-\[\]]*)=([^&;,#\s'\"<>`)]*)")
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=\-]{6,}")
_KEY_LIKE = re.compile(r"\b(sk)-[A-Za-z0-9_\-]{12,}")
MIN_SECRET_LENGTH = 8  # shorter "secrets" (e.g. the placeholder key EMPTY) are not masked
MIN_PREFIX_LENGTH = 6  # a key cut short by a truncated message is masked down to this many characters


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` (an error message, a log line) with secrets masked as ``***``.

    Masks the ``user:password@`` part and the query string of every URL; the value of any
    secret-named ``name=value`` pair, in a query or in prose (``api-key``, ``access_token``,
    ``sig``, ...); bearer tokens; ``sk-...``-style keys; and each of ``secrets`` (at least 8
    characters), including a prefix of it left by a message truncated mid-key.
    """
    for secret in secrets:  # first: the known key is masked whole, whatever the patterns below would leave
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        text = text.replace(secret, MASK)
        for length in range(len(secret) - 1, MIN_PREFIX_LENGTH - 1, -1):
            if secret[:length] in text:
                text = text.replace(secret[:length], MASK)
    text = redact_urls(text)
    text = _PARAM.sub(lambda m: m.group(1) + m.group(2) + "=" + (MASK if is_secret_name(m.group(2)) else m.group(3)), text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + MASK, text)
    return _KEY_LIKE.sub(lambda m: m.group(1) + "-" + MASK, text)


class Redactor:
    """:func:`redact_text` bound to one client's secrets (its API key); its ``repr`` shows no secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)

    def __call__(self, text: str) -> str:
        """``text`` with URL credentials, secret-named parameters and this client's secrets masked."""
        return redact_text(text, self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
