"""vlmbench: does a vision-language model recognise unsafe concepts, and judge them, in images and in text?

The public API:

- running: :func:`evaluate` with an :class:`EvalConfig` (returns a :class:`RunResult`), :func:`score`,
  :func:`task_documents` (a task's samples as a run sees them, for tools such as ``vlmbench align``);
  :func:`parse_key_values` and :func:`parse_data_files` read ``--model_args``-style and
  ``--data_files`` values as the core's commands do (one-line errors, secrets never shown);
- plugin hooks: the ``hookimpl`` marker; every hook is documented in :mod:`vlmbench.hookspecs`;
- backends: :class:`Request`, :class:`Response`, :class:`Backend` (the contract),
  :class:`BackendBase` (its defaults), :class:`BackendSpec`, :class:`BackendOptions`;
- scorers, judges and metrics: :class:`ScorerSpec`, :class:`ScoreInput`, :class:`Verdict`,
  :class:`ScorerOptions`, :class:`JudgeCalls` (a model judge's calls in the response store),
  :class:`MetricSpec`, :class:`DocStepSpec`, :class:`CommandSpec`;
- :class:`UserError` for mistakes a user can fix (printed as one line); :class:`BadImage` for an
  image that cannot be read (a per-sample error, never an answer); :func:`png_pixels_complete`: whether a
  PNG's stored pixel data is whole (for a backend that sends stored bytes as they are);
- :func:`cache_dir`: the folder where a plugin may keep what it can make again; :class:`FileHashes`:
  the sha256 of whole files kept there between runs while each file is unchanged (a local model's weights);
  :func:`read_regular_file` (:class:`FileRefused`): a file read only if it is a regular file under a size cap
  (a FIFO or a device never blocks or floods a run); :func:`replace_file`: a file written whole into a new
  file beside it and renamed over it (a link or a pipe planted there is replaced, never written through);
  :func:`whole_number`: a whole number read from text others wrote (ASCII digits, bounded: ``"²"`` or
  5,000 digits give None, never a traceback).

Heavy names load on first use, so ``vlmbench --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vlmbench.errors import UserError
from vlmbench.hookspecs import hookimpl

if TYPE_CHECKING:
    from vlmbench.backend import (
        Backend,
        BackendBase,
        BackendOptions,
        BackendSpec,
        GenerationSettings,
        ImagePart,
        Message,
        Request,
        Response,
        TextPart,
    )
    from vlmbench.cache import cache_dir
    from vlmbench.cli.commands import CommandSpec
    from vlmbench.data.hashcache import FileHashes
    from vlmbench.data.images import BadImage, png_pixels_complete
    from vlmbench.data.steps import DocStepSpec
    from vlmbench.evaluation import EvalConfig, RunResult, evaluate, parse_data_files, parse_key_values, score, task_documents
    from vlmbench.numbers import whole_number
    from vlmbench.safefiles import FileRefused, read_regular_file, replace_file
    from vlmbench.scoring.base import ScoreInput, Scorer, ScorerOptions, ScorerSpec, Verdict
    from vlmbench.scoring.judgecache import JudgeCalls
    from vlmbench.scoring.metrics import MetricSpec, Scored

__version__ = "0.1.0"

_LAZY = {
    "vlmbench.backend": (
        "Backend",
        "BackendBase",
        "BackendOptions",
        "BackendSpec",
        "GenerationSettings",
        "ImagePart",
        "Message",
        "Request",
        "Response",
        "TextPart",
    ),
    "vlmbench.cache": ("cache_dir",),
    "vlmbench.cli.commands": ("CommandSpec",),
    "vlmbench.data.steps": ("DocStepSpec",),
    "vlmbench.evaluation": ("EvalConfig", "RunResult", "evaluate", "parse_data_files", "parse_key_values", "score", "task_documents"),
    "vlmbench.data.images": ("BadImage", "png_pixels_complete"),
    "vlmbench.data.hashcache": ("FileHashes",),
    "vlmbench.safefiles": ("FileRefused", "read_regular_file", "replace_file"),
    "vlmbench.numbers": ("whole_number",),
    "vlmbench.scoring.base": ("ScoreInput", "Scorer", "ScorerOptions", "ScorerSpec", "Verdict"),
    "vlmbench.scoring.judgecache": ("JudgeCalls",),
    "vlmbench.scoring.metrics": ("MetricSpec", "Scored"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'vlmbench' has no attribute '{name}'")


__all__ = [
    "Backend",
    "BackendBase",
    "BackendOptions",
    "BackendSpec",
    "BadImage",
    "CommandSpec",
    "DocStepSpec",
    "EvalConfig",
    "FileHashes",
    "FileRefused",
    "GenerationSettings",
    "ImagePart",
    "JudgeCalls",
    "Message",
    "MetricSpec",
    "Request",
    "Response",
    "RunResult",
    "ScoreInput",
    "Scored",
    "Scorer",
    "ScorerOptions",
    "ScorerSpec",
    "TextPart",
    "UserError",
    "Verdict",
    "__version__",
    "cache_dir",
    "evaluate",
    "hookimpl",
    "parse_data_files",
    "parse_key_values",
    "png_pixels_complete",
    "read_regular_file",
    "replace_file",
    "score",
    "task_documents",
    "whole_number",
]
