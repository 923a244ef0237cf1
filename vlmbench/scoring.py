"""Scores one response: parse it with the task's parser and compare with the target."""

from __future__ import annotations

from typing import Any

from vlmbench.metrics import REFUSAL, Scored
from vlmbench.parsing import parse_choice, parse_multiple_choice, parse_safety
from vlmbench.samples import Sample


def parse(parser: str, sample: Sample, text: str) -> str | None:
    """The parsed answer of ``text`` under the task's ``answer_parser``."""
    if parser == "multiple_choice":
        return parse_multiple_choice(text, sample.doc.get("options"))
    if parser == "safety":
        return parse_safety(text)
    return parse_choice(text, sample.choices or ())


def score(parser: str, sample: Sample, text: str | None) -> tuple[str | None, bool | None]:
    """``(parsed, correct)``; ``correct`` is None when the answer is unparsed, a refusal or missing."""
    if text is None:
        return None, None
    parsed = parse(parser, sample, text)
    if parsed is None or parsed == REFUSAL:
        return parsed, None
    return parsed, parsed.lower() == sample.target.strip().lower()


def scored(sample: Sample, parsed: str | None, correct: bool | None, error: bool) -> Scored:
    """The metric view of a scored sample; concepts are the clusters for standard errors."""
    doc: dict[str, Any] = sample.doc
    cluster = doc.get("concept") or f"doc{doc.get('_source', 0)}:{doc.get('_row', sample.id)}"
    return Scored(cluster=str(cluster), category=str(doc.get("category", "all")), label=doc.get("label"),
                  parsed=parsed, correct=correct, error=error)
