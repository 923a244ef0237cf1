"""The core's own registrations (scorers, metrics, document steps), made through the same hooks a plugin uses."""

from __future__ import annotations

from vlmbench.data.steps import BUILTIN_STEPS, DocStepSpec
from vlmbench.hookspecs import hookimpl
from vlmbench.scoring.base import ScorerSpec
from vlmbench.scoring.metrics import BUILTIN_METRICS, MetricSpec
from vlmbench.scoring.scorers import rule_scorer_specs


@hookimpl
def vlmbench_scorers() -> list[ScorerSpec]:
    """The rule scorers: multiple_choice, safety, choice."""
    return rule_scorer_specs()


@hookimpl
def vlmbench_metrics() -> list[MetricSpec]:
    """accuracy, recall_unsafe, specificity, balanced_accuracy."""
    return list(BUILTIN_METRICS)


@hookimpl
def vlmbench_doc_steps() -> list[DocStepSpec]:
    """keep_unsafe, unique_concepts, catalog_safe_concepts, describe_scene, multiple_choice_options."""
    return list(BUILTIN_STEPS)
