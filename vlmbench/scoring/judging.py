"""Judges: which scorers read a task's responses, with which arguments, and what each one said.

A judge is any registered scorer. ``rules`` (the default) is each task's own rule scorer;
``paper-classifier`` and ``llm-judge`` are model judges. A run may name several judges
(``--judge rules,llm-judge``): the first one that can read the task's answer format is the
headline judge, whose verdicts make the task's metrics; every judge's verdicts are kept in the
sample records, and each one's metrics and the agreement between them go into the results.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmbench.collector import few_collections
from vlmbench.errors import UserError
from vlmbench.scoring.base import ScoreInput, Scorer, ScorerOptions, Verdict, build_scorer, scorer_identity
from vlmbench.scoring.scorers import RuleScorer

log = logging.getLogger(__name__)
RULES = "rules"


@dataclass(frozen=True)
class JudgeConfig:
    """The judges of a run. ``names`` empty: each task's default judge (its YAML ``judge``, else its rules).

    ``args`` apply to every judge; a key written ``JUDGE.key`` (e.g. ``llm-judge.model``) to that judge only.
    """

    names: tuple[str, ...] = ()
    args: Mapping[str, str] = field(default_factory=dict)
    options: ScorerOptions = field(default_factory=ScorerOptions)

    def args_for(self, name: str) -> dict[str, str]:
        """The arguments one judge gets: the shared ones, then its own (prefixed) ones."""
        names = set(self.names) | {name}
        shared = {k: v for k, v in self.args.items() if k.partition(".")[0] not in names or "." not in k}
        own = {k.partition(".")[2]: v for k, v in self.args.items() if "." in k and k.partition(".")[0] == name}
        return {**shared, **own}


def parse_judge_names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"rules,llm-judge"`` or a list into judge names (duplicates dropped, order kept)."""
    parts = value.split(",") if isinstance(value, str) else list(value or ())
    names = tuple(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
    return names


@dataclass
class JudgeOutcome:
    """One judge's verdicts on one task, and what it is."""

    name: str
    identity: dict[str, Any]
    verdicts: dict[str, Verdict]
    requests: dict[str, int] | None = None


def scorer_kinds(scorer: Scorer) -> tuple[str, ...] | None:
    """The answer formats a scorer reads (None: any)."""
    kinds = getattr(scorer, "kinds", None)
    return tuple(kinds) if kinds is not None else None


def make_judge(name: str, args: Mapping[str, str], options: ScorerOptions) -> Scorer:
    """Build a registered scorer by name, with the usual one-line error for an unknown name."""
    from vlmbench.pluginmanager import did_you_mean, scorer_specs

    specs = scorer_specs()
    if name not in specs:
        raise UserError(f"unknown judge '{name}'{did_you_mean(name, specs)}; registered: {', '.join(sorted(specs))} (see `vlmbench ls scorers`)")
    return build_scorer(specs[name], args, options)


def _checked_verdicts(name: str, produced: Iterable[Any], asked: set[str]) -> dict[str, Verdict]:
    """A scorer's verdicts by id, each a :class:`Verdict` for an item it was asked about, given once, whose ``parsed``
    is text or None, ``correct`` True, False or None, and ``detail`` a mapping JSON can hold; else a one-line error
    naming the judge (a plugin's bug would otherwise become numbers: a ``correct`` of "no" counted as correct)."""
    verdicts: dict[str, Verdict] = {}
    for verdict in produced:
        if not isinstance(verdict, Verdict):
            raise UserError(f"judge '{name}' gave {type(verdict).__name__}, not a Verdict; fix the scorer")
        problem = (
            f"a verdict for id {verdict.id!r:.60}, which it was not asked about"
            if verdict.id not in asked
            else f"two verdicts for id {verdict.id!r:.60}"
            if verdict.id in verdicts
            else f"parsed = {verdict.parsed!r:.60} (text or None)"
            if verdict.parsed is not None and not isinstance(verdict.parsed, str)
            else f"correct = {verdict.correct!r:.60} (True, False or None)"
            if verdict.correct is not None and not isinstance(verdict.correct, bool)
            else _detail_problem(verdict.detail)
        )
        if problem:
            raise UserError(f"judge '{name}' gave {problem}; fix the scorer")
        verdicts[verdict.id] = verdict
    return verdicts


def _detail_problem(detail: Any) -> str | None:
    if not isinstance(detail, Mapping):
        return f"a detail of type {type(detail).__name__} (a mapping)"
    try:
        json.dumps(detail, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"a detail JSON cannot hold ({str(exc)[:80]})"
    return None


def run_judges(
    items: Sequence[ScoreInput], names: Sequence[str], task_scorer: str, task_scorer_args: Mapping[str, str], config: JudgeConfig, task: str = ""
) -> list[JudgeOutcome]:
    """Every applicable judge's verdicts on ``items`` (the headline judge first).

    ``rules`` means the task's own scorer (with its YAML ``scorer_args``). A judge that cannot read
    the task's answer format is left out with one warning line; if none can, that is an error.
    """
    outcomes: list[JudgeOutcome] = []
    for name in names:
        if name in (RULES, task_scorer):
            scorer = make_judge(task_scorer, task_scorer_args, config.options)
        else:
            scorer = make_judge(name, config.args_for(name), config.options)
        try:
            kinds = scorer_kinds(scorer)
            if kinds is not None and task_scorer not in kinds:
                log.warning("%s: judge '%s' does not read answers of format '%s'; it is left out for this task", task, name, task_scorer)
                continue
            # The core's rules read text in this process and send nothing: their objects may be collected less often.
            if isinstance(scorer, RuleScorer):
                with few_collections():
                    verdicts = {v.id: v for v in scorer.score(items)}
            else:  # a model judge's or a plugin's: what it gives is checked before any of it counts
                verdicts = _checked_verdicts(name, scorer.score(items), {item.id for item in items})
            counts = getattr(scorer, "counts", None)
            outcomes.append(JudgeOutcome(name, scorer_identity(scorer), verdicts, counts() if callable(counts) else None))
        finally:
            close = getattr(scorer, "close", None)
            if callable(close):
                close()
    if not outcomes:
        raise UserError(f"{task}: none of the judges {', '.join(names)} reads answers of format '{task_scorer}'; add --judge rules")
    return outcomes


def judged_in_process(entry: Mapping[str, Any], config: JudgeConfig) -> bool:
    """Whether every judge of a task (a manifest entry) is one of vlmbench's rule scorers, which read text in
    this process, send nothing and keep no state: its scoring may then run in any process."""
    from vlmbench.scoring.aggregate import recorded_scorer

    scorer = recorded_scorer(entry)
    names = config.names or tuple(entry.get("judges") or (RULES,))
    if any(name not in (RULES, scorer) for name in names):
        return False
    try:
        built = make_judge(scorer, dict(entry.get("scorer_args") or {}), config.options)
    except UserError:
        return False
    return isinstance(built, RuleScorer)
