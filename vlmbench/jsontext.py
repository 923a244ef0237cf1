"""JSON text as ``json.dumps`` writes it, for the many small values a run serialises (a record line, a
request key, a verdict) and for the files people read (``run.json``, ``results.json``).

``json.dumps`` and ``JSONEncoder.encode`` build a new C encoder on every call: about a fifth of a short
record's encoding time, paid 23,000 times on a hub-size re-run for each of three encodings. An encoder
from :func:`compact_encoder` is built once and gives the same text. An indented file goes through
Python's own encoder, which is five times slower than the C one: :func:`outline` indents only the
containers that hold other containers and writes each innermost one on a single line with the C encoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any

_DEFAULT = json.JSONEncoder().default  # raises TypeError naming the value's type, as json.dumps does


def compact_encoder(*, sort_keys: bool = False) -> Callable[[Any], str]:
    """A function giving ``json.dumps(value, ensure_ascii=False, sort_keys=sort_keys)`` for plain values
    (dicts, lists, tuples, text, numbers, booleans, None); NaN and infinities as ``json.dumps`` writes them.
    A value that holds itself raises RecursionError (no circular check: what is encoded here is built by
    vlmbench from parsed data and is never circular)."""
    make = getattr(_encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python): the standard encoder
        return json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys).encode
    encode = make(None, _DEFAULT, _encoder.encode_basestring, None, ": ", ", ", sort_keys, False, True)

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    return dumps


_compact = compact_encoder()


def outline(value: Any, indent: str = "  ") -> str:
    """JSON text of ``value`` for reading: a dict or list that holds another dict or list is written one
    member per line, indented as ``json.dumps(indent=2)`` would; one that holds none (a statistic, a
    list of names) is written on one line. Parses to the same value as ``json.dumps(value)``."""
    parts: list[str] = []
    _outline(value, indent, "", parts)
    return "".join(parts)


def _outline(value: Any, indent: str, here: str, parts: list[str]) -> None:
    if isinstance(value, dict):
        members: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, (list, tuple)):
        members = [(None, v) for v in value]
    else:
        parts.append(_compact(value))
        return
    if not members or not any(isinstance(v, (dict, list, tuple)) for _, v in members):
        parts.append(_compact(value))
        return
    inner = here + indent
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    parts.append(opening)
    for position, (key, member) in enumerate(members):
        parts.append(("\n" if position == 0 else ",\n") + inner)
        if key is not None or isinstance(value, dict):
            parts.append(_compact(_key_text(key)) + ": ")
        _outline(member, indent, inner, parts)
    parts.append("\n" + here + closing)


def _key_text(key: Any) -> str:
    """A dict key as json.dumps writes it: text as it is; numbers, booleans and None as their JSON text."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, (int, float)):
        return json.dumps(key)  # NaN and infinities as json.dumps writes them
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
