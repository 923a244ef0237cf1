"""The hooks of ``vlmbench align``: the command, the ``study_split`` document step and the
``alignment-test-split`` task (the study's held-out test images)."""

from __future__ import annotations

from pathlib import Path

from vlmbench import CommandSpec, DocStepSpec, hookimpl


@hookimpl
def vlmbench_cli_commands() -> list[CommandSpec]:
    """``vlmbench align``."""
    from vlmbench_plugins.align.command import COMMAND

    return [COMMAND]


@hookimpl
def vlmbench_doc_steps() -> list[DocStepSpec]:
    """``study_split``: the study's per-concept 80/20 split (seed 2024) with balanced safe images."""
    from vlmbench_plugins.align.split import ARGS_SCHEMA, STEP, split_step

    return [DocStepSpec(STEP, "the UnsafeConcepts study's fine-tuning split (part: test|train|all)", split_step, ARGS_SCHEMA)]


@hookimpl
def vlmbench_task_dirs() -> list[Path]:
    """The folder holding ``alignment-test-split``."""
    return [Path(__file__).resolve().parent / "tasks"]
