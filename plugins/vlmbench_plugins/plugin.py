"""The hooks of the built-in backends (``random``, ``always-safe``, ``always-unsafe``, ``openai``, ``hf``)
and of the ``paper-classifier`` judge, registered through a ``vlmbench`` entry point as a third party's
plugin is.

Each backend's module is imported only when the backend is built, so ``vlmbench --help`` loads none
of them. A plugin that defines its backend classes in the module its entry point names pays for
that module's imports at every start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vlmbench.hookspecs import hookimpl

if TYPE_CHECKING:
    from vlmbench.backend import BackendSpec
    from vlmbench.scoring.base import ScorerSpec

BASELINES = "vlmbench_plugins.baselines"


def built_by(module: str, function: str) -> Callable[..., Any]:
    """A factory that imports ``module`` when it is called and hands its arguments to ``module.function``."""

    def build(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    build.__qualname__ = build.__name__ = f"{module}.{function}"
    return build


@hookimpl
def vlmbench_backends() -> list[BackendSpec]:
    """The three reference baselines, the OpenAI-compatible API backend and the local transformers backend."""
    from vlmbench.backend import BackendSpec

    return [
        BackendSpec("random", "baseline: a uniformly random answer from the task's answer choices", built_by(BASELINES, "random_backend")),
        BackendSpec("always-safe", "baseline: answers 'Yes.' (judges everything safe)", built_by(BASELINES, "always_safe_backend")),
        BackendSpec("always-unsafe", "baseline: answers 'No.' (judges everything unsafe)", built_by(BASELINES, "always_unsafe_backend")),
        BackendSpec(
            "openai",
            "OpenAI API or an OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, ...); model=NAME[,base_url=URL]",
            built_by("vlmbench_plugins.openai_api", "factory"),
            check_args=built_by("vlmbench_plugins.openai_api", "check_model_args"),
        ),
        BackendSpec(
            "hf",
            "local transformers vision-language model (AutoModelForImageTextToText); pretrained=ID_OR_DIR",
            built_by("vlmbench_plugins.hf", "factory"),
            check_args=built_by("vlmbench_plugins.hf_args", "check_model_args"),
        ),
    ]


@hookimpl
def vlmbench_scorers() -> list[ScorerSpec]:
    """The ``paper-classifier`` judge (the study's RoBERTa classifiers; torch is imported only when it is built)."""
    from vlmbench.scoring.base import ScorerSpec
    from vlmbench_plugins.paper_classifier import VERSION

    return [
        ScorerSpec(
            "paper-classifier",
            "model judge: the study's RoBERTa response classifiers (hub yiting/*_classifier, or local)",
            VERSION,
            built_by("vlmbench_plugins.paper_classifier", "factory"),
            calls_model=True,
        )
    ]
