"""A strict JSON reader for untrusted files: one-line rejections instead of surprises.

Refused: anything not UTF-8, NaN/Infinity, numbers that overflow a float or have more than
:data:`MAX_INT_DIGITS` digits, duplicate keys, lone surrogates, nesting deeper than
:data:`MAX_DEPTH` and documents larger than the caller's byte limit. The standard library parser
does the parsing; its recursion is bounded by catching ``RecursionError`` (raised long before
the stack is in danger) and the depth is checked again on the result.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from vlmbench_leaderboard.problems import Rejected

MAX_DEPTH = 32
MAX_INT_DIGITS = 18
MAX_LINES = 200_000
# Objects and arrays, counted by their opening brackets (those inside strings too) before anything is parsed:
# a tiny value such as {} costs a hundred times its bytes once parsed. An honest results.json has about 5,000;
# an honest sample record 5 to 10, but a model's answer may quote code or JSON.
MAX_CONTAINERS = 200_000
CONTAINERS_PER_RECORD = 64


class _Refused(ValueError):
    """A value the strict reader does not accept; the message is the reason."""


def _constant(name: str) -> NoReturn:
    raise _Refused(f"{name} is not a number JSON allows; a result must be finite")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:20]} overflows; a result must be finite")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"integer {text[:20]}... has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"key {json.dumps(key)[:60]} appears twice in one object")
            seen.add(key)
    return result


# A lone surrogate can only come from a \\uD800-\\uDFFF escape (UTF-8 text cannot hold one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_tree(value: Any, where: str, text: str) -> None:
    """Depth and string checks over the parsed value of ``text``, without recursion. Strings are
    checked only when ``text`` has an escape that could make a lone surrogate."""
    strings = _SURROGATE_ESCAPE.search(text) is not None
    if not strings and text.count("{") + text.count("[") <= MAX_DEPTH:
        return  # too few brackets to nest too deep (brackets inside strings only add to the count)
    if not isinstance(value, (dict, list)):
        if strings and isinstance(value, str):
            _check_string(value, where)
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Rejected([f"{where}: nested deeper than {MAX_DEPTH} levels"])
        items = node.values() if isinstance(node, dict) else node
        if strings and isinstance(node, dict):
            for key in node:
                _check_string(key, where)
        for item in items:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
            elif strings and isinstance(item, str):
                _check_string(item, where)


def _check_string(text: str, where: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Rejected([f"{where}: a string holds a lone surrogate (\\ud800-\\udfff); that is not text"]) from None


def loads(data: bytes, where: str, max_bytes: int) -> Any:
    """One JSON document from untrusted bytes, or :class:`Rejected` with a one-line reason naming ``where``."""
    if len(data) > max_bytes:
        raise Rejected([f"{where}: {len(data)} bytes; at most {max_bytes} are accepted"])
    check_containers(data, where, MAX_CONTAINERS)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected([f"{where}: not UTF-8"]) from None
    value = _parse(text, where)
    _check_tree(value, where, text)
    return value


def loads_lines(data: bytes, where: str, max_bytes: int) -> list[Any]:
    """The documents of a JSON Lines file (one per ``\\n``-separated line; no blank lines but a final newline)."""
    if len(data) > max_bytes:
        raise Rejected([f"{where}: {len(data)} bytes; at most {max_bytes} are accepted"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected([f"{where}: not UTF-8"]) from None
    from vlmbench.runfolder import jsonl_lines

    lines = jsonl_lines(text)
    if len(lines) > MAX_LINES:
        raise Rejected([f"{where}: {len(lines)} lines; at most {MAX_LINES} are accepted"])
    values = []
    for number, line in enumerate(lines, start=1):
        value = _parse(line, f"{where}: line {number}")
        _check_tree(value, f"{where}: line {number}", line)
        values.append(value)
    return values


def check_containers(data: bytes, where: str, cap: int) -> None:
    """Before a JSON member is parsed: at most ``cap`` objects and arrays (see :data:`MAX_CONTAINERS`); else :class:`Rejected`."""
    count = data.count(b"{") + data.count(b"[")
    if count > cap:
        raise Rejected([f"{where}: {count} JSON objects and arrays; at most {cap} are accepted"])


def check_line_counts(data: bytes, where: str, expected: int, max_line: int) -> None:
    """Before a JSON Lines member is parsed: it has ``expected`` lines (as :func:`loads_lines` splits them),
    none longer than ``max_line`` bytes, and not many more objects and arrays than sample records hold; else
    :class:`Rejected` (parsing a small file of tiny values costs a lot of memory)."""
    lines = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    if lines != expected:
        raise Rejected([f"incomplete: {where} has {lines} samples; the task has {expected}"])
    check_containers(data, where, CONTAINERS_PER_RECORD * expected + MAX_CONTAINERS // 2)
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if end - start > max_line:
            number = data.count(b"\n", 0, start) + 1
            raise Rejected([f"{where}: line {number} has {end - start} bytes; at most {max_line} are accepted for a sample record"])
        start = end + 1


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int, object_pairs_hook=_object)
    except _Refused as exc:
        raise Rejected([f"{where}: {exc}"]) from None
    except json.JSONDecodeError as exc:
        raise Rejected([f"{where}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"]) from None
    except RecursionError:
        raise Rejected([f"{where}: nested deeper than {MAX_DEPTH} levels"]) from None
    except ValueError as exc:  # e.g. the interpreter's limit on integer digits
        raise Rejected([f"{where}: not valid JSON ({str(exc)[:80]})"]) from None
