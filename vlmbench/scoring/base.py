"""The scorer contract: a batch of responses in, one verdict per response out.

A scorer is what stands between a model's free-form answer and a number: the rule parsers are
the built-in scorers, and a model judge is a scorer that holds a backend. Scorers are registered
through the ``vlmbench_scorers`` hook and named by a task's ``scorer`` field.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vlmbench.errors import UserError

REFUSAL = "refusal"


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees of one sample: the response, and what a right answer is.

    ``doc`` is the sample's document (without private ``_`` fields): ``options`` (letter to text)
    for multiple choice, ``label`` and ``concept`` for the UnsafeConcepts tasks. ``kind`` is the
    task's answer format, named by its rule scorer (``multiple_choice``, ``safety``, ``choice``):
    a judge that serves several tasks (rules, a classifier, a model judge) reads it to know what
    kind of verdict to give.
    """

    id: str
    response: str
    target: str
    prompt: str = ""
    choices: tuple[str, ...] | None = None
    doc: Mapping[str, Any] = field(default_factory=dict)
    kind: str = ""


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


@dataclass(frozen=True)
class ScorerOptions:
    """Run-wide settings a scorer factory may use (a model judge does; rules do not).

    ``store`` is the response store file a model judge caches its calls in (None: no caching),
    ``device`` where a local judge model runs (None: its own default).
    """

    store: Path | None = None
    device: str | None = None
    seed: int = 0


ScorerFactory = Callable[..., Scorer]
"""``(args)`` or ``(args, options: ScorerOptions)`` -> a :class:`Scorer`."""


@dataclass(frozen=True)
class ScorerSpec:
    """A named scorer a plugin registers. ``version`` enters every using task's config hash."""

    name: str
    description: str
    version: str
    factory: ScorerFactory
    check_args: Callable[[Mapping[str, str]], None] | None = None
    """Optional: checks a judge's arguments (raising a one-line ``UserError``) without building it. A run calls it
    for each judge it will use before the model answers, so that a mistake there costs nothing."""
    calls_model: bool = False
    """Whether the scorer calls a model (a backend, a checkpoint): ``vlmbench score`` then runs it only when the
    command names it, never because a run folder (which may come from elsewhere) records it."""


def build_scorer(spec: ScorerSpec, args: Mapping[str, str], options: ScorerOptions | None = None) -> Scorer:
    """Call a scorer factory; factories that take only ``args`` are called without the options."""
    try:
        parameters = inspect.signature(spec.factory).parameters.values()
        takes_options = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters) >= 2 or any(
            p.kind is p.VAR_POSITIONAL for p in parameters
        )
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        takes_options = False
    scorer = spec.factory(args, options or ScorerOptions()) if takes_options else spec.factory(args)
    problem = (
        f"its factory returned {type(scorer).__name__}, not a scorer (an object with a score method)"
        if not callable(getattr(scorer, "score", None))
        else next(
            (
                f"the scorer it built has a {field} of type {type(getattr(scorer, field, None)).__name__}, not text"
                for field in ("name", "version")
                if not isinstance(getattr(scorer, field, None), str)
            ),
            "",
        )
    )
    if problem:
        raise UserError(f"scorer '{spec.name}': {problem}; this is a bug in the plugin that registers it")
    return scorer


def scorer_identity(scorer: Scorer) -> dict[str, Any]:
    """What a scorer is, for results and stores: name, version, plus its own ``identity()`` when it has one
    (a model judge adds its model's identity and the hash of its prompt)."""
    identity: dict[str, Any] = {"name": scorer.name, "version": scorer.version}
    extra = getattr(scorer, "identity", None)
    if callable(extra):
        more = extra()
        if isinstance(more, Mapping):
            identity.update({str(k): v for k, v in more.items() if k not in identity})
    return identity


def verdict_from_answer(item: ScoreInput, parsed: str | None, scorer: str) -> Verdict:
    """The verdict for a parsed answer: correct when it equals the target (case-insensitive)."""
    if parsed is None or parsed == REFUSAL:
        return Verdict(item.id, parsed, None, scorer)
    return Verdict(item.id, parsed, parsed.strip().lower() == item.target.strip().lower(), scorer)
