"""Judging a file of responses: how users check a judge on their own labelled data.

Input: JSON Lines, one object per response with ``id`` and ``response`` and, when known,
``prompt`` (the question the model answered), ``options`` (letter -> option text) and
``choices``. Output: one object per input line, in order, with the same ``id``, the headline
judge's ``verdict`` (``A``-``D``, ``safe``, ``unsafe``, ``refusal``, a choice, ``unparsed``, or ``error``
when the judge's call failed: no verdict, and never one the judge could not tell) and every judge's
verdict and details under ``verdicts``. The file is treated as hostile: it is read only if it is a
regular file under :data:`MAX_FILE_BYTES`, and every bad line (not JSON, a key twice, a number too long
to read, a lone surrogate, a field of the wrong type) is a one-line error naming the file, the line and
the field. The output escapes every character a terminal would act on (see :func:`verdict_lines`).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from vlmbench.errors import UserError
from vlmbench.scoring.agreement import label
from vlmbench.scoring.base import ScoreInput
from vlmbench.scoring.judging import JudgeConfig, run_judges

MAX_FILE_BYTES = 1 << 30
"""The largest responses file read (1 GiB): far more than any labelled set, and a bound on memory."""
MAX_LINE_CHARS = 1_000_000
MAX_NUMBER_DIGITS = 4300
"""The longest integer a line may hold (Python's own limit for reading one): a longer one is an error."""
BOM = "\ufeff"
ERROR = "error"
"""The verdict of a response whose judge call failed (see ``detail.error``)."""


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of the responses file ``path`` (see :func:`vlmbench.runfolder.jsonl_lines`), a byte-order
    mark at its start dropped; UserError for anything but a regular UTF-8 file of at most :data:`MAX_FILE_BYTES`
    (a named pipe, ``/dev/zero``, a folder are refused before a byte is read)."""
    from vlmbench.runfolder import jsonl_lines

    return jsonl_lines(_read_text(path).removeprefix(BOM))


def _read_text(path: str | os.PathLike[str]) -> str:
    """The text of ``path``: a regular file, at most :data:`MAX_FILE_BYTES`, UTF-8 (the line of a bad byte named)."""
    from vlmbench.safefiles import FileRefused, read_regular_file

    try:
        data = read_regular_file(path, MAX_FILE_BYTES, "responses file")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; pass a JSON Lines file of responses ('id' and 'response' per line)") from None
    except FileRefused as exc:  # a FIFO, a device, a folder, or over the cap: the message names the file and the cap
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}: line {line}: not UTF-8 text (at byte offset {exc.start}); pass a JSON Lines file in UTF-8") from None


def read_inputs(lines: Iterable[str], where: str, kind: str) -> list[tuple[Any, ScoreInput]]:
    """The responses of a JSON Lines file as (the line's own id, scorer input); blank lines skipped."""
    items: list[tuple[Any, ScoreInput]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        at = f"{where}: line {number}"
        if len(line) > MAX_LINE_CHARS:
            raise UserError(f"{at}: {len(line)} characters; keep each line under {MAX_LINE_CHARS}")
        row = parse_line(line, at)
        item = _item(row, at, kind)
        if item.id in seen:
            raise UserError(f"{at}: field 'id' = {json.dumps(item.id)} repeats an earlier line; give every response its own id")
        seen.add(item.id)
        items.append((row["id"], item))
    return items


class _RepeatedKey(ValueError):
    """A JSON object that names a key twice (``json`` itself would keep the last silently)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _LongNumber:
    """An integer too long to read (more than :data:`MAX_NUMBER_DIGITS` digits), kept in its place so that
    the error can name its field; ``digits``: how many it has."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; :class:`_RepeatedKey` for a key given twice."""
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise _RepeatedKey(key)
        row[key] = value
    return row


def _bounded_int(text: str, found: list[_LongNumber]) -> int | _LongNumber:
    """A JSON integer, or :class:`_LongNumber` (also appended to ``found``) for one over :data:`MAX_NUMBER_DIGITS`
    digits (never read: reading one takes time quadratic in its length, and Python refuses them)."""
    digits = len(text.lstrip("-"))
    if digits <= MAX_NUMBER_DIGITS:
        return int(text)
    found.append(_LongNumber(digits))
    return found[-1]


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""The JSON escape of a surrogate: how text decoded from UTF-8 comes to hold a lone one."""


def parse_line(line: str, at: str) -> dict[str, Any]:
    """One line of the responses file as a JSON object whose every key is unique, every integer readable and
    every string valid Unicode; UserError naming ``at`` (file and line) and the field otherwise."""
    long_numbers: list[_LongNumber] = []
    try:
        row = json.loads(line, object_pairs_hook=_unique_pairs, parse_int=functools.partial(_bounded_int, found=long_numbers))
    except _RepeatedKey as exc:
        raise UserError(f"{at}: key {_quoted(exc.key)} appears twice in one object; keep one of them") from None
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise UserError(f"{at}: not a JSON object; write one object per line with 'id' and 'response'") from None
    if not isinstance(row, dict):
        raise UserError(f"{at}: not a JSON object; write one object per line with 'id' and 'response'")
    if long_numbers or _SURROGATE_ESCAPE.search(line) or _has_surrogate(line):  # else no field can be at fault
        _check_values(row, at)
    return row


def _check_values(row: dict[str, Any], at: str) -> None:
    """UserError naming the first field that holds an unreadable number or a lone surrogate (``"\\ud800"``:
    valid JSON, but no Unicode character, which no file or terminal takes), in a value or in a key."""
    stack: list[tuple[str, Any]] = [("", row)]
    while stack:  # depth first, without recursion: a line may nest as deep as json reads
        name, value = stack.pop()
        if isinstance(value, _LongNumber):
            raise UserError(
                f"{at}: field {_quoted(name)} is a number of {value.digits} digits; "
                f"keep numbers to {MAX_NUMBER_DIGITS} digits (write a long id as a string)"
            )
        if isinstance(value, str) and _has_surrogate(value):
            raise UserError(
                f"{at}: field {_quoted(name)} holds a lone surrogate (an escape \\ud800-\\udfff without its pair: no Unicode character); write valid UTF-8 text"
            )
        stack.extend(reversed(_children(name, value, at)))


def _children(name: str, value: Any, at: str) -> list[tuple[str, Any]]:
    """The named members of a JSON object (``options.A``) or list (``choices[0]``); UserError for a key
    holding a lone surrogate."""
    if isinstance(value, list):
        return [(f"{name}[{index}]", item) for index, item in enumerate(value)]
    if not isinstance(value, dict):
        return []
    for key in value:
        if _has_surrogate(key):
            where = f"field {_quoted(name)}" if name else "the line's object"
            raise UserError(
                f"{at}: a key of {where} holds a lone surrogate (an escape \\ud800-\\udfff without its pair: no Unicode character); write valid UTF-8 text"
            )
    return [(f"{name}.{key}" if name else key, item) for key, item in value.items()]


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate: it cannot be encoded as UTF-8 (as ``vlmbench.cli`` checks its arguments)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _quoted(name: str, limit: int = 60) -> str:
    """A field's name as an error message quotes it: in quotes, cut to ``limit`` characters."""
    return f"'{name[:limit]}...'" if len(name) > limit else f"'{name}'"


def _item(row: Mapping[str, Any], at: str, kind: str) -> ScoreInput:
    ident, response = row.get("id"), row.get("response")
    if not isinstance(ident, str | int) or isinstance(ident, bool) or str(ident) == "":
        raise UserError(f"{at}: field 'id' is missing or not a string/number")
    if not isinstance(response, str):
        raise UserError(f"{at}: field 'response' is missing or not a string")
    prompt = row.get("prompt", "")
    if not isinstance(prompt, str):
        raise UserError(f"{at}: field 'prompt' is not a string")
    options = row.get("options")
    if options is not None and not (isinstance(options, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in options.items())):
        raise UserError(f"{at}: field 'options' is not an object of letter -> option text")
    choices = row.get("choices")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        raise UserError(f"{at}: field 'choices' is not a list of strings")
    doc = {"options": options} if options else {}
    return ScoreInput(id=str(ident), response=response, target="", prompt=prompt, choices=tuple(choices) if choices else None, doc=doc, kind=kind)


def judge_items(items: list[tuple[Any, ScoreInput]], task: Any, names: tuple[str, ...], config: JudgeConfig) -> Iterator[dict[str, Any]]:
    """One output object per item, in input order (``task``: a :class:`~vlmbench.taskconfig.TaskConfig`)."""
    outcomes = run_judges([item for _, item in items], names or tuple(task.judges), task.scorer, task.scorer_args, config, task.name)
    for original_id, item in items:
        verdicts: dict[str, Any] = {}
        for outcome in outcomes:
            verdict = outcome.verdicts.get(item.id)
            failed = verdict is not None and bool(verdict.detail.get("error"))  # the call failed: the judge said nothing
            entry: dict[str, Any] = {"verdict": ERROR if failed else label(verdict.parsed if verdict else None)}
            if verdict and verdict.detail:
                entry["detail"] = dict(verdict.detail)
            verdicts[outcome.name] = entry
        headline = outcomes[0]
        yield {"id": original_id, "verdict": verdicts[headline.name]["verdict"], "judge": headline.name, "verdicts": verdicts}


def verdict_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The output lines, one JSON object each: text stays readable (non-ASCII letters as they are), but every
    character that is not printable (C1 controls such as U+009B, bidirectional overrides, U+2028, lone
    surrogates) is written as its JSON escape, so ids and judges' replies can never act on a terminal."""
    return [_escape_unprintable(json.dumps(row, ensure_ascii=False)) + "\n" for row in rows]


def _escape_unprintable(text: str) -> str:
    """``text`` (JSON) with every unprintable character as its ``\\uXXXX`` escape (JSON keeps them only in strings)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)
