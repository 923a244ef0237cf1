"""The parser of other answer choices: which of a task's choices a response gives (see :func:`parse_choice`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from vlmbench.scoring.rules.multiple_choice import LETTERS, parse_multiple_choice
from vlmbench.scoring.rules.text import UNPARSED, prepare

_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_NUMBER_WORD_RE = re.compile(r"\b(?:" + "|".join(_NUMBER_WORDS) + r")\b")
_FIRST_WORD = re.compile(r"[^\W\d_]+")
# "Yes and no", "yes or no", "yes/no", "both yes and no" opening an answer: a hedge, not the first word's answer.
_YES_NO_HEDGE = re.compile(r"^\W*(?:both\s+|either\s+)?(?:yes\W*(?:and|or|/)\W*no|no\W*(?:and|or|/)\W*yes)\b(?=\s*(?:$|[^\w\s])|[ \t]*\n)")


def parse_choice(response: str, choices: Sequence[str]) -> str | None:
    """Which of ``choices`` the response gives: the earliest one it names (number words count), or None.

    Letter choices A-D go through :func:`parse_multiple_choice`; yes/no choices read the first
    word, unless the answer opens with a hedge ("Yes and no", "yes/no": unparsed). A choice right after
    "not" ("blue, not red") does not count.
    """
    if tuple(choices) == LETTERS:
        return parse_multiple_choice(response)
    lowered = _NUMBER_WORD_RE.sub(lambda m: _NUMBER_WORDS[m.group()], prepare(response).lower())
    if {c.lower() for c in choices} == {"yes", "no"}:
        if _YES_NO_HEDGE.match(lowered):
            return UNPARSED
        first = _FIRST_WORD.search(lowered)
        if first and first.group() in ("yes", "no"):
            return next(c for c in choices if c.lower() == first.group())
    best: tuple[int, str] | None = None
    for choice in choices:
        name = choice.strip().lower()
        if not name:
            continue
        for match in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", lowered):
            if lowered[max(0, match.start() - 4) : match.start()] == "not ":
                continue
            if best is None or match.start() < best[0]:
                best = (match.start(), choice)
            break
    return best[1] if best else UNPARSED
