"""``leaderboard verify`` per headline judge: who made a task's numbers, and how they are checked.

* ``rules`` (each task's own rule scorer): the leaderboard re-scores the answers itself, as it always did.
* A model judge (``paper-classifier``, ``llm-judge``, a plugin's): re-scoring with rules would give
  other numbers, so instead the judge's recorded identity must match one the leaderboard pins
  (``judges:`` in ``leaderboard.yaml``), and the numbers are recomputed from the judge's submitted
  per-sample verdicts (``verdicts[JUDGE]`` of each record) through the one scoring path; a verdict's
  ``correct`` is recomputed from its answer and this vlmbench's target. Numbers therefore cannot be
  forged even where verdicts could be; ``--rejudge`` makes the verdicts again with the maintainer's
  own judge (``--judge_args``) and compares them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmbench.errors import UserError
from vlmbench.records import SampleRecord
from vlmbench.scoring.aggregate import JudgeConfig, JudgeOutcome, ScoringPlan, score_records
from vlmbench.scoring.base import ScoreInput, Verdict, verdict_from_answer
from vlmbench.taskconfig import TaskConfig
from vlmbench_leaderboard.bundle import Bundle
from vlmbench_leaderboard.judges import DEFAULT_PINS, RULES, JudgePin, headline_identities, headline_identity, is_rules, pin_problem
from vlmbench_leaderboard.problems import Rejected
from vlmbench_leaderboard.text import terminal


@dataclass(frozen=True)
class JudgePolicy:
    """What ``verify`` accepts as headline judges, and whether it judges model-judged answers again.

    ``rejudge``: the maintainer's judge arguments and store (its ``names`` are ignored: each task's
    submitted headline judge is run); ``max_disagreement``: the share of verdicts that may differ.
    """

    pins: tuple[JudgePin, ...] = DEFAULT_PINS
    rejudge: JudgeConfig | None = None
    max_disagreement: float = 0.0


@dataclass
class Rejudged:
    """The tally of ``--rejudge`` over a bundle: verdicts compared and those that differ, per task."""

    judges: dict[str, None] = field(default_factory=dict)
    compared: int = 0
    differ: dict[str, int] = field(default_factory=dict)
    example: str = ""

    def line(self) -> str:
        """One line: how many verdicts the maintainer's judge gave differently, where, and an example."""
        judges = ", ".join(self.judges)
        total = sum(self.differ.values())
        if not total:
            return f"rejudged with {judges}: all {self.compared} verdicts agree with the submitted ones"
        where = ", ".join(f"{task} {n}" for task, n in self.differ.items() if n)
        return f"rejudged with {judges}: {total} of {self.compared} verdicts differ from the submitted ones ({where}); e.g. {self.example}"

    def share(self) -> float:
        """The share of compared verdicts that differ."""
        return sum(self.differ.values()) / self.compared if self.compared else 0.0


def check_recorded_judges(bundle: Bundle, run: Mapping[str, Any], results: Mapping[str, Any]) -> None:
    """What ``submit`` can check of the judges: the manifest's copy agrees with results.json, and every
    sample of a model-judged task holds its headline judge's verdict. Raises :class:`Rejected`."""
    recorded = headline_identities(results)
    listed = bundle.manifest.get("judges")
    if listed is not None and listed != recorded:
        raise Rejected(["manifest.json: judges differ from results.json's headline judges; repack with `vlmbench submit`"])
    for name, entry in run["tasks"].items():
        judge = str(headline_identity(results["tasks"][name]).get("judge"))
        if is_rules(judge, str(entry.get("scorer") or "")):
            continue
        where = entry["samples_file"]
        for record in bundle.lines(where):
            if not isinstance((record.get("verdicts") or {}).get(judge), dict):
                raise Rejected(
                    [
                        f"{where}: sample {terminal(record.get('id'), 60)} has no verdict of its headline judge {terminal(judge, 60)}; "
                        "score the run again (`vlmbench score RUN_DIR`) and resubmit"
                    ]
                )


def score_task(
    task: TaskConfig,
    rebuilt: list[SampleRecord],
    submitted: Sequence[Mapping[str, Any]],
    entry: Mapping[str, Any],
    policy: JudgePolicy,
    tally: Rejudged,
) -> tuple[dict[str, Any], str]:
    """A task's numbers as this leaderboard recomputes them, and what they come from (for messages).

    ``rebuilt``: this vlmbench's samples with the submitted answers; ``submitted``: the bundle's
    records in the same order; ``entry``: the task's results. Raises :class:`Rejected` (one line).
    """
    identity = headline_identity(entry)
    judge = str(identity.get("judge"))
    problem = pin_problem(policy.pins, identity, task.scorer)
    if problem:
        raise Rejected([f"results.json: tasks.{task.name}: {terminal(problem, 300)}"])
    if is_rules(judge, task.scorer):
        scores = score_records(rebuilt, ScoringPlan.of_task(task, (RULES,)))
        _check_rules_identity(task.name, identity, scores["judges"][0])
        return scores, "the responses"
    outcome = submitted_outcome(task, judge, identity, rebuilt, submitted)
    scores = score_records(rebuilt, ScoringPlan.of_task(task, (judge,)), recorded=[outcome])
    if policy.rejudge is not None:
        _rejudge(task, judge, outcome, rebuilt, policy, tally)
    return scores, f"the verdicts of {terminal(judge, 60)}"


def _check_rules_identity(task: str, recorded: Mapping[str, Any], rescored: Mapping[str, Any]) -> None:
    """A rules-judged task's recorded scorer name and version, when recorded, are this vlmbench's."""
    for key in ("name", "version"):
        if key in recorded and recorded[key] != rescored.get(key):
            raise Rejected(
                [
                    f"results.json: tasks.{task}.judges: the headline rule scorer's {key} is {terminal(recorded[key], 40)}, "
                    f"this vlmbench's is {terminal(rescored.get(key), 40)}; score the run again with this vlmbench and resubmit"
                ]
            )


def submitted_outcome(
    task: TaskConfig, judge: str, identity: Mapping[str, Any], rebuilt: Sequence[SampleRecord], submitted: Sequence[Mapping[str, Any]]
) -> JudgeOutcome:
    """The headline judge's submitted verdicts, each ``correct`` checked against this vlmbench's target."""
    verdicts: dict[str, Verdict] = {}
    where = f"samples/{task.name}.jsonl"
    for record, original in zip(rebuilt, submitted):
        shown = terminal(record["id"], 60)
        given = (original.get("verdicts") or {}).get(judge)
        if not isinstance(given, Mapping):
            raise Rejected([f"{where}: sample {shown} has no verdict of its headline judge {terminal(judge, 60)}; score the run again and resubmit"])
        parsed, detail = given.get("parsed"), given.get("detail")
        if parsed is not None and not isinstance(parsed, str):
            raise Rejected([f"{where}: sample {shown}: the verdict of {terminal(judge, 60)} is not text; submit the files `vlmbench` wrote"])
        item = ScoreInput(id=record["id"], response=str(record["response"]), target=str(record["target"]), kind=task.scorer)
        expected = verdict_from_answer(item, parsed, judge)
        if given.get("correct") != expected.correct:
            raise Rejected(
                [
                    f"{where}: sample {shown}: the verdict of {terminal(judge, 60)} says correct={terminal(given.get('correct'), 10)}, "
                    f"but its answer {terminal(repr(parsed), 40)} against the target gives {expected.correct}"
                ]
            )
        error = detail.get("error") if isinstance(detail, Mapping) else None
        verdicts[record["id"]] = Verdict(record["id"], parsed, expected.correct, judge, {"error": str(error)} if error else {})
    return JudgeOutcome(judge, dict(identity), verdicts)


def _rejudge(task: TaskConfig, judge: str, outcome: JudgeOutcome, rebuilt: list[SampleRecord], policy: JudgePolicy, tally: Rejudged) -> None:
    """Judge the answers again with the maintainer's judge of the same name, and count the verdicts that differ."""
    assert policy.rejudge is not None
    config = JudgeConfig((judge,), policy.rejudge.args, policy.rejudge.options)
    try:
        mine = score_records(rebuilt, ScoringPlan.of_task(task, (judge,)), config)
    except UserError as exc:
        raise Rejected([f"--rejudge: {terminal(exc, 300)}"]) from None
    identity = headline_identity(mine)
    problem = pin_problem(policy.pins, identity, task.scorer)
    if problem:
        raise Rejected([f"--rejudge: your judge is not the one this leaderboard pins ({terminal(problem, 300)}); fix --judge_args"])
    failed = [r["id"] for r in rebuilt if ((r.get("verdicts") or {}).get(judge) or {}).get("detail", {}).get("error")]
    if failed:
        raise Rejected([f"--rejudge: {len(failed)} calls of your judge failed on {task.name} (e.g. {terminal(failed[0], 60)}); retry"])
    tally.judges[judge] = None
    differ = 0
    for record in rebuilt:
        submitted = outcome.verdicts.get(record["id"])
        again = record["verdicts"][judge]["parsed"]
        tally.compared += 1
        if submitted is None or submitted.parsed != again:
            differ += 1
            if not tally.example:
                before = None if submitted is None else submitted.parsed
                tally.example = f"{terminal(record['id'], 60)}: submitted {terminal(repr(before), 30)}, rejudged {terminal(repr(again), 30)}"
    tally.differ[task.name] = differ
