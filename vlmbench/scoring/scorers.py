"""Scores sample records: parse each response with the task's parser and compare with the target."""

from __future__ import annotations

from typing import Any

from vlmbench.scoring.metrics import REFUSAL, Scored
from vlmbench.scoring.rules import parse_choice, parse_multiple_choice, parse_safety


def parse(parser: str, record: dict[str, Any]) -> str | None:
    """The parsed answer of a record's response under the task's ``answer_parser``."""
    text = record["response"] or ""
    if parser == "multiple_choice":
        return parse_multiple_choice(text, record["doc"].get("options"))
    if parser == "safety":
        return parse_safety(text)
    return parse_choice(text, record.get("choices") or ())


def score_record(parser: str, record: dict[str, Any]) -> tuple[str | None, bool | None]:
    """``(parsed, correct)``; ``correct`` is None when the answer is unparsed, a refusal or missing."""
    if record.get("response") is None:
        return None, None
    parsed = parse(parser, record)
    if parsed is None or parsed == REFUSAL:
        return parsed, None
    return parsed, parsed.lower() == str(record["target"]).strip().lower()


def scored(record: dict[str, Any], parsed: str | None, correct: bool | None) -> Scored:
    """The metric view of a record; concepts are the clusters for standard errors."""
    doc = record["doc"]
    cluster = doc.get("concept") or f"doc:{record['id']}"
    return Scored(cluster=str(cluster), category=str(doc.get("category", "all")), label=doc.get("label"),
                  parsed=parsed, correct=correct, error=record.get("error") is not None)
