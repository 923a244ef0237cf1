"""The scorer contract: a batch of responses in, one verdict per response out.

A scorer is what stands between a model's free-form answer and a number: the rule parsers are
the built-in scorers, and a model judge is a scorer that holds a backend. Scorers are registered
through the ``vlmbench_scorers`` hook and named by a task's ``scorer`` field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

REFUSAL = "refusal"


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees of one sample: the response, and what a right answer is.

    ``doc`` is the sample's document (without private ``_`` fields): ``options`` (letter to text)
    for multiple choice, ``label`` and ``concept`` for the UnsafeConcepts tasks.
    """

    id: str
    response: str
    target: str
    prompt: str = ""
    choices: tuple[str, ...] | None = None
    doc: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """A scorer's reading of one response.

    ``parsed`` is the answer read from the response (a letter, ``safe``/``unsafe``, a choice,
    ``refusal``) or None when it cannot be read. ``correct`` is None when there is no answer to
    judge (unparsed or a refusal).
    """

    id: str
    parsed: str | None
    correct: bool | None
    scorer: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    """Turns responses into verdicts, a batch at a time (a model judge streams its verdicts)."""

    @property
    def name(self) -> str:
        """The scorer's registered name (recorded with every verdict)."""
        ...

    @property
    def version(self) -> str:
        """Changes whenever a verdict can change; enters the config hash of tasks using it."""
        ...

    def score(self, items: Sequence[ScoreInput]) -> Iterable[Verdict]:
        """One verdict per item; any order, each naming its item's id."""
        ...


ScorerFactory = Callable[[Mapping[str, str]], Scorer]


@dataclass(frozen=True)
class ScorerSpec:
    """A named scorer a plugin registers. ``version`` enters every using task's config hash."""

    name: str
    description: str
    version: str
    factory: ScorerFactory


def verdict_from_answer(item: ScoreInput, parsed: str | None, scorer: str) -> Verdict:
    """The verdict for a parsed answer: correct when it equals the target (case-insensitive)."""
    if parsed is None or parsed == REFUSAL:
        return Verdict(item.id, parsed, None, scorer)
    return Verdict(item.id, parsed, parsed.strip().lower() == item.target.strip().lower(), scorer)
