"""Rewards computed from each sampled response, for the online RL methods (GRPO, RLOO).

A reward reads the decoded response the way the benchmark does: a judge (any registered scorer that
reads the ``safety`` answer format) gives a verdict against the image's label.

- **Verdict judges** (``rules``, the default, or ``llm-judge`` or a plugin's): +1 for a right verdict,
  -1 for a wrong one, 0 when the judge cannot read one (unparsed, a refusal). A judge that fails on every
  response of a batch (its calls failed: a wrong key, a server's garbage) stops training in one line rather
  than reward zeros. A scorer with a ``reward(items) -> list[float]`` method gives a dense reward instead.
- **The study's classifier reward** (``paper-classifier``): minus the cross-entropy of the alignment
  classifier's prediction (Safe / Unsafe / NA logits) against the image's label, min-max normalised
  over the batch, plus a length bonus (``length_bonus`` x response tokens / ``max_completion_length``;
  the study used 4.0), with ``no_stop_penalty`` (the study's -8) replacing the judged reward of a
  response that never stops.

Every judge gets the no-stop penalty; the length bonus is 0 unless set (the study's 4.0 with
``paper-classifier`` or ``--preset paper``). Under GRPO's per-group normalisation the min-max step
changes nothing; the length bonus and the penalty do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlmbench import ScoreInput, ScorerOptions, UserError
from vlmbench.pluginmanager import did_you_mean, scorer_specs
from vlmbench.scoring.base import Scorer, build_scorer, scorer_identity

CLASSIFIER = "paper-classifier"
KIND = "safety"
STUDY_LENGTH_BONUS = 4.0
STUDY_NO_STOP_PENALTY = -8.0
LABEL_INDEX = {"safe": 0, "unsafe": 1}  # the alignment classifier's label order: Safe, Unsafe, NA


def check_judge(name: str, flag: str = "--judge") -> None:
    """A one-line error naming ``flag`` unless ``name`` is a registered judge (checked before any data or model loads)."""
    specs = scorer_specs()
    if name not in specs:
        raise UserError(f"{flag}: unknown judge '{name}'{did_you_mean(name, specs)}; registered: {', '.join(sorted(specs))}")


def make_reward_judge(name: str, args: Mapping[str, str]) -> Scorer:
    """Build a registered judge for rewards; it must read ``safety`` answers. One-line errors otherwise."""
    check_judge(name)
    specs = scorer_specs()
    scorer = build_scorer(specs[name], args, ScorerOptions(store=None))
    kinds = getattr(scorer, "kinds", None)
    if kinds is not None and KIND not in kinds:
        raise UserError(
            f"--judge {name}: it does not read alignment (safety) answers, so it cannot reward them; pick rules, paper-classifier or llm-judge"
        )
    return scorer


def text_of(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion or []:
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, Sequence):
            parts.extend(str(c.get("text") or "") for c in content if isinstance(c, Mapping))
    return "".join(parts)


@dataclass
class ResponseReward:
    """A TRL reward function: ``reward(prompts=, completions=, completion_ids=, label=, question=, ...) -> list[float]``."""

    judge: Scorer
    judge_name: str
    max_completion_length: int
    eos_ids: frozenset[int]
    length_bonus: float = 0.0
    no_stop_penalty: float | None = STUDY_NO_STOP_PENALTY
    calls: int = 0

    @property
    def __name__(self) -> str:  # TRL names the reward's logged metrics after it
        return "judge"

    def identity(self) -> dict[str, Any]:
        """The judge and the shaping, for the model card."""
        return {
            "judge": scorer_identity(self.judge),
            "formulation": "classifier: -CE min-max per batch" if self.judge_name == CLASSIFIER else "verdict: +1 right, -1 wrong, 0 unread",
            "length_bonus": self.length_bonus,
            "no_stop_penalty": self.no_stop_penalty,
            "max_completion_length": self.max_completion_length,
        }

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Sequence[int]] | None = None,
        label: Sequence[str] = (),
        question: Sequence[str] = (),
        concept: Sequence[str] | None = None,
        category: Sequence[str] | None = None,
        **_: Any,
    ) -> list[float]:
        """One reward per completion."""
        self.calls += 1
        texts = [text_of(c) for c in completions]
        items = [
            ScoreInput(
                id=str(i),
                response=text,
                target=label[i],
                prompt=question[i] if question else "",
                doc={"label": label[i], "concept": (concept or [""] * len(texts))[i], "category": (category or [""] * len(texts))[i]},
                kind=KIND,
            )
            for i, text in enumerate(texts)
        ]
        judged = self._classifier(items) if self.judge_name == CLASSIFIER else self._verdicts(items)
        ids = list(completion_ids) if completion_ids is not None else [[] for _ in texts]
        rewards = []
        for value, tokens in zip(judged, ids):
            stopped = len(tokens) < self.max_completion_length or bool(self.eos_ids & set(tokens))
            reward = value if stopped or self.no_stop_penalty is None else self.no_stop_penalty
            rewards.append(reward + self.length_bonus * len(tokens) / self.max_completion_length)
        return rewards

    def _verdicts(self, items: list[ScoreInput]) -> list[float]:
        dense = getattr(self.judge, "reward", None)
        if callable(dense):
            return [float(v) for v in dense(items)]
        verdicts = {v.id: v for v in self.judge.score(items)}
        failed = [str((verdicts[i.id].detail or {}).get("error")) for i in items if (verdicts[i.id].detail or {}).get("error")]
        if failed and len(failed) == len(items):  # a judge that fails every call (a wrong key, a server's garbage) would train on zeros
            from vlmbench.backend import inert_line

            raise UserError(
                f"align: the reward judge '{self.judge_name}' failed on every response of a batch ({inert_line(failed[0], 160)}); "
                "training stopped, its checkpoints are kept: fix the judge, then rerun the same command with --resume"
            )
        return [0.0 if verdicts[i.id].correct is None else (1.0 if verdicts[i.id].correct else -1.0) for i in items]

    def _classifier(self, items: list[ScoreInput]) -> list[float]:
        """The study's reward: -CE(classifier logits, label), min-max normalised over the batch."""
        import torch

        logits = classifier_logits(self.judge, [i.response for i in items])
        targets = torch.tensor([LABEL_INDEX[i.target] for i in items], device=logits.device)
        loss = -torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        low, high = float(loss.min()), float(loss.max())
        if not math.isfinite(high - low) or high - low < 1e-12:
            return [0.0] * len(items)  # one value for the whole batch: nothing to prefer
        return [float(v) for v in ((loss - low) / (high - low)).tolist()]

    def close(self) -> None:
        """Release the judge."""
        close = getattr(self.judge, "close", None)
        if callable(close):
            close()


def classifier_logits(judge: Any, texts: list[str]) -> Any:
    """The alignment classifier's logits (Safe, Unsafe, NA) for ``texts``, from the ``paper-classifier`` judge."""
    return judge.logits(KIND, texts)


def build_reward(
    name: str, args: Mapping[str, str], max_completion_length: int, eos_ids: set[int], length_bonus: float | None, no_stop_penalty: float | None
) -> ResponseReward:
    """The reward of ``--judge NAME``: the study's length bonus by default with its classifier, none with other judges."""
    judge = make_reward_judge(name, args)
    bonus = length_bonus if length_bonus is not None else (STUDY_LENGTH_BONUS if name == CLASSIFIER else 0.0)
    return ResponseReward(judge, name, max_completion_length, frozenset(eos_ids), bonus, no_stop_penalty)
