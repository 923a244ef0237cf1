"""Secrets never reach a file: redaction of model args, identities and URLs.

A value is secret when its name has a secret word among its parts, case-insensitively, whatever
the spelling: ``api_key``, ``hfToken``, ``accessToken``, ``client-secret``, ``pwd``, ``bearer``,
``passphrase``. Credentials (``user:pass@``) and query strings (``?api-key=...``) are stripped
from every URL found in a value. Nested mappings and lists are redacted recursively.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "signature",
        "sig",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,20}://[^\s'\"<>]{1,2048}")


def name_parts(name: str) -> list[str]:
    """``hfToken`` -> ``["hf", "token"]``; ``API_KEY`` -> ``["api", "key"]``."""
    return [part.lower() for part in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """True when any word of ``name`` (or two adjacent words joined, e.g. api+key) is a secret word."""
    parts = name_parts(name)
    joined = {a + b for a, b in itertools.pairwise(parts)}
    return bool(SECRET_WORDS.intersection(parts) or SECRET_WORDS.intersection(joined) or name.lower() in SECRET_WORDS)


def redact_url(value: str) -> str:
    """A URL without its user:password part and query string (where API keys hide); other text unchanged."""
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if "@" in parts.netloc:
            netloc = f"{MASK}@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", parts.fragment))
    except ValueError:  # an unparseable URL (e.g. a broken IPv6 literal): keep only the scheme
        return value.split("://", 1)[0] + "://" + MASK


def redact_text(text: str) -> str:
    """Free text (an error message) with every URL inside it redacted."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact(value: Any, name: str = "") -> Any:
    """``value`` with secrets masked: secret-named entries become ``***`` at any depth, URLs in text are redacted."""
    return _replace_secrets(value, name, lambda _: MASK, redact_text)


def _replace_secrets(value: Any, name: str, secret: Callable[[Any], Any], text: Callable[[str], Any]) -> Any:
    """``value`` walked at any depth: a secret-named entry becomes ``secret(entry)``, every text ``text(it)``."""
    if name and is_secret_name(name) and value not in (None, "", {}, []):
        return secret(value)
    if isinstance(value, Mapping):
        return {k: _replace_secrets(v, str(k), secret, text) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_secrets(v, "", secret, text) for v in value]
    if isinstance(value, str):
        return text(value)
    return value


# A slow hash: a response store names each request by a hash that includes these, so one that is copied
# must not let anyone test guesses of a secret cheaply.
_SECRET_HASH_ROUNDS = 100_000


def hash_secrets(value: Any, name: str = "") -> Any:
    """``value`` with what :func:`redact` would mask replaced by a slow salted hash of it: as telling as the
    value (two different tokens, or URLs with different queries, stay different) without revealing it.
    For keys that must change whenever an argument does (the response store's request keys), where
    ``***`` would make ``eos_token=</s>`` and ``eos_token=<|im_end|>`` the same model."""
    return _replace_secrets(value, name, _slow_hash, lambda text: _slow_hash(text) if redact_text(text) != text else text)


def _slow_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    return "pbkdf2:" + hashlib.pbkdf2_hmac("sha256", text, b"vlmbench request keys", _SECRET_HASH_ROUNDS).hex()
