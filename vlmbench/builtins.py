"""The core's own registrations (scorers, metrics, document steps), made through the same hooks a plugin uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from vlmbench.hookspecs import hookimpl

if TYPE_CHECKING:  # the hooks import what they register: `vlmbench --help` needs none of it
    from vlmbench.data.steps import DocStepSpec
    from vlmbench.scoring.base import Scorer, ScorerOptions, ScorerSpec
    from vlmbench.scoring.metrics import MetricSpec


@hookimpl
def vlmbench_scorers() -> list[ScorerSpec]:
    """The rule scorers (multiple_choice, safety, refusal, choice, and ``rules`` for any of them), ``llm-judge``, and
    ``relative-judge`` with its answer format ``relative_score`` (free-form answers rated against a reference)."""
    from vlmbench.scoring.base import ScorerSpec
    from vlmbench.scoring.llm_judge import VERSION as LLM_JUDGE_VERSION
    from vlmbench.scoring.llm_judge import check_args as check_llm_judge_args
    from vlmbench.scoring.relative_judge import FORMAT_VERSION as RELATIVE_FORMAT_VERSION
    from vlmbench.scoring.relative_judge import KIND as RELATIVE_KIND
    from vlmbench.scoring.relative_judge import NAME as RELATIVE_JUDGE
    from vlmbench.scoring.relative_judge import VERSION as RELATIVE_JUDGE_VERSION
    from vlmbench.scoring.relative_judge import check_args as check_relative_judge_args
    from vlmbench.scoring.scorers import rule_scorer_specs

    return [
        *rule_scorer_specs(),
        ScorerSpec(
            "llm-judge",
            "model judge: any backend (--judge_args backend=NAME,...) states each verdict",
            LLM_JUDGE_VERSION,
            _llm_judge,
            check_llm_judge_args,
            calls_model=True,
        ),
        ScorerSpec(
            RELATIVE_JUDGE,
            "model judge: rates a free-form answer and the reference 1-10 (LLaVA-Bench's relative score; --judge_args backend=NAME,...)",
            RELATIVE_JUDGE_VERSION,
            _relative_judge,
            check_relative_judge_args,
            calls_model=True,
        ),
        ScorerSpec(
            RELATIVE_KIND,
            f"answer format: free-form answers rated against a reference answer; read only by the model judge '{RELATIVE_JUDGE}'",
            RELATIVE_FORMAT_VERSION,
            _answer_format,
        ),
    ]


def _llm_judge(args: Mapping[str, str], options: ScorerOptions) -> Scorer:
    from vlmbench.scoring.llm_judge import LLMJudge

    return LLMJudge(args, options)


def _relative_judge(args: Mapping[str, str], options: ScorerOptions) -> Scorer:
    from vlmbench.scoring.relative_judge import RelativeJudge

    return RelativeJudge(args, options)


def _answer_format(args: Mapping[str, str]) -> Scorer:
    from vlmbench.scoring.relative_judge import AnswerFormat

    return AnswerFormat()


@hookimpl
def vlmbench_metrics() -> list[MetricSpec]:
    """accuracy, recall_unsafe, specificity, balanced_accuracy; the context and over-refusal rates; the judge-rating scores."""
    from vlmbench.scoring.context_metrics import CONTEXT_METRICS
    from vlmbench.scoring.metrics import BUILTIN_METRICS
    from vlmbench.scoring.rating_metrics import RATING_METRICS

    return [*BUILTIN_METRICS, *CONTEXT_METRICS, *RATING_METRICS]


@hookimpl
def vlmbench_doc_steps() -> list[DocStepSpec]:
    """keep_unsafe, unique_concepts, catalog_safe_concepts, describe_scene, multiple_choice_options, attach_questions, category_from."""
    from vlmbench.data.questions import QUESTION_STEPS
    from vlmbench.data.steps import BUILTIN_STEPS

    return [*BUILTIN_STEPS, *QUESTION_STEPS]
