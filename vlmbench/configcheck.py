"""An :class:`~vlmbench.evaluation.EvalConfig` checked before anything runs: each field's type and value.

The command line checks its flags as it reads them; a program calling the library passes Python values,
which may be of any type (``None``, a NumPy integer, a float where a count belongs, a bare path where a
list of folders belongs). Each wrong one is a one-line :class:`~vlmbench.errors.UserError` naming the field
and what it takes, before a folder is made or a model is asked; a NumPy or other integer type becomes a
plain ``int`` (it is written to ``run.json``).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vlmbench.errors import UserError

if TYPE_CHECKING:
    from vlmbench.evaluation import EvalConfig

MAX_SEED = 2**63 - 1


def checked_config(config: EvalConfig) -> EvalConfig:
    """``config`` with every field checked (and integers made plain ``int``), or the first mistake as a :class:`UserError`."""
    if not isinstance(config, _config_class()):
        raise UserError(f"evaluate() takes an EvalConfig, not {type(config).__name__}; build one with EvalConfig(model=..., tasks=...)")
    _text(config.model, "EvalConfig.model")
    for name in ("data", "protocol"):  # text: an unknown one (the empty one too) is named with the ones there are, later
        if not isinstance(getattr(config, name), str):
            raise UserError(f"EvalConfig.{name} = {_shown(getattr(config, name))}: expected text")
    for name in ("model_args", "judge_args"):
        _settings(getattr(config, name), f"EvalConfig.{name}")
    _settings(config.gen_kwargs, "EvalConfig.gen_kwargs", values=(str, int, float, bool, list))
    _names(config.tasks, "EvalConfig.tasks", allow_none=False)
    _names(config.judge, "EvalConfig.judge", allow_none=True)
    if isinstance(config.include_path, (str, bytes, os.PathLike)) or not _is_sequence(config.include_path):
        raise UserError(f"EvalConfig.include_path = {_shown(config.include_path)}: expected a list of folders, e.g. ['my-tasks']")
    for folder in config.include_path:
        _path(folder, "EvalConfig.include_path")
    _path(config.output_path, "EvalConfig.output_path")
    for name in ("options_file", "store"):
        if getattr(config, name) is not None:
            _path(getattr(config, name), f"EvalConfig.{name}")
    if not isinstance(config.data_files, Mapping):
        raise UserError(
            f"EvalConfig.data_files = {_shown(config.data_files)}: expected a mapping of hub id to local path, e.g. {{'yiting/UnsafeConcepts': 'copy/'}}"
        )
    for hub_id, local in config.data_files.items():
        _text(hub_id, "EvalConfig.data_files (a hub id)")
        _path(local, f"EvalConfig.data_files[{hub_id!r}]")
    for name in ("use_store", "reuse_sampled", "predict_only"):
        if not isinstance(getattr(config, name), bool):
            raise UserError(f"EvalConfig.{name} = {_shown(getattr(config, name))}: expected True or False")
    if config.system_instruction is not None and not isinstance(config.system_instruction, str):
        raise UserError(f"EvalConfig.system_instruction = {_shown(config.system_instruction)}: expected text or None")
    return dataclasses.replace(config, limit=_limit(config.limit), seed=_seed(config.seed), batch_size=_batch_size(config.batch_size))


def check_score_args(run_dir: Any, judge: Any, judge_args: Any, store: Any, use_store: Any) -> None:
    """The arguments of :func:`vlmbench.evaluation.score`, checked as :func:`checked_config` checks a run's."""
    _path(run_dir, "score(): run_dir")
    _names(judge, "score(): judge", allow_none=True)
    if judge_args is not None:
        _settings(judge_args, "score(): judge_args")
    if store is not None:
        _path(store, "score(): store")
    if not isinstance(use_store, bool):
        raise UserError(f"score(): use_store = {_shown(use_store)}: expected True or False")


def _config_class() -> type:
    from vlmbench.evaluation import EvalConfig

    return EvalConfig


def _shown(value: Any) -> str:
    return repr(value)[:60]


def _integer(value: Any) -> int | None:
    """``value`` as a plain int when it is an integer of any type but bool (a NumPy integer included); else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _limit(value: Any) -> int | float | None:
    if value is None:
        return None
    number = _integer(value)
    if number is not None and number >= 1:
        return number
    if number is None and isinstance(value, float) and math.isfinite(value) and 0 < value < 1:
        return float(value)
    raise UserError(
        f"EvalConfig.limit = {_shown(value)}: expected a number of documents per task (an int of 1 or more), "
        "a fraction of each task's between 0 and 1 (e.g. 0.1), or None for all"
    )


def _seed(value: Any) -> int:
    number = _integer(value)
    if number is None or abs(number) > MAX_SEED:
        raise UserError(f"EvalConfig.seed = {_shown(value)}: expected an int (e.g. 0)")
    return number


def _batch_size(value: Any) -> int | str | None:
    if value is None or value == "auto":
        return value  # type: ignore[no-any-return]
    number = _integer(value)
    if number is None or number < 1:
        raise UserError(f"EvalConfig.batch_size = {_shown(value)}: expected an int of 1 or more, 'auto', or None for the backend's default")
    return number


def _text(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{name} = {_shown(value)}: expected non-empty text")


def _path(value: Any, name: str) -> None:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
        raise UserError(f"{name} = {_shown(value)}: expected a path (text or pathlib.Path), not empty")


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _names(value: Any, name: str, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, str) or (_is_sequence(value) and all(isinstance(item, str) for item in value)):
        return
    raise UserError(f"{name} = {_shown(value)}: expected comma-separated text or a list of names, e.g. ['perception-image']")


def _settings(value: Any, name: str, values: tuple[type, ...] = (str, int, float, bool)) -> None:
    """Text (``k=v,k2=v2``) or a mapping of names to plain values; numbers finite."""
    if isinstance(value, str):
        return
    if not isinstance(value, Mapping):
        raise UserError(f"{name} = {_shown(value)}: expected a mapping of settings or text 'k=v,k2=v2'")
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{name}: key {_shown(key)} is not a setting name (text)")
        if not isinstance(item, values):  # its type only: the value may be a secret
            raise UserError(f"{name}[{key!r}] is {type(item).__name__}: expected text or a number")
        if isinstance(item, float) and not math.isfinite(item):
            raise UserError(f"{name}[{key!r}] = {item}: expected a finite number")
