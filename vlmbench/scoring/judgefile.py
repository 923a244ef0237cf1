"""Judging a file of responses: how users check a judge on their own labelled data.

Input: JSON Lines, one object per response with ``id`` and ``response`` and, when known,
``prompt`` (the question the model answered), ``options`` (letter -> option text) and
``choices``. Output: one object per input line, in order, with the same ``id``, the headline
judge's ``verdict`` (``A``-``D``, ``safe``, ``unsafe``, ``refusal``, a choice, ``unparsed``, or ``error``
when the judge's call failed: no verdict, and never one the judge could not tell) and every judge's
verdict and details under ``verdicts``. The file is treated as hostile: every
bad line is a one-line error naming the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from vlmbench.errors import UserError
from vlmbench.scoring.agreement import label
from vlmbench.scoring.base import ScoreInput
from vlmbench.scoring.judging import JudgeConfig, run_judges

MAX_LINE_CHARS = 1_000_000
ERROR = "error"
"""The verdict of a response whose judge call failed (see ``detail.error``)."""


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
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise UserError(f"{at}: not a JSON object; write one object per line with 'id' and 'response'") from None
        if not isinstance(row, dict):
            raise UserError(f"{at}: not a JSON object; write one object per line with 'id' and 'response'")
        item = _item(row, at, kind)
        if item.id in seen:
            raise UserError(f"{at}: field 'id' = {json.dumps(item.id)} repeats an earlier line; give every response its own id")
        seen.add(item.id)
        items.append((row["id"], item))
    return items


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
