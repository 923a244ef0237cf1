"""The hooks of ``vlmbench align``: the command, the ``study_split`` document step and the
``alignment-test-split`` task (the study's held-out test images)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vlmbench import hookimpl
from vlmbench_plugins.plugin import built_by

if TYPE_CHECKING:
    from vlmbench import CommandSpec, DocStepSpec


@hookimpl
def vlmbench_cli_commands() -> list[CommandSpec]:
    """``vlmbench align`` (its module is imported when the command is configured: not for ``vlmbench --help``)."""
    from vlmbench import CommandSpec

    return [
        CommandSpec(
            "align",
            "fine-tune a model to judge unsafe images (GRPO/RLOO from judged responses, SFT, DPO), then evaluate it",
            built_by("vlmbench_plugins.align.command", "add_arguments"),
            stopped="training stopped, its checkpoints are kept: rerun the same command with --resume to continue",
        )
    ]


@hookimpl
def vlmbench_doc_steps() -> list[DocStepSpec]:
    """``study_split``: the study's per-concept 80/20 split (seed 2024) with balanced safe images."""
    from vlmbench import DocStepSpec
    from vlmbench_plugins.align.split import ARGS_SCHEMA, STEP, split_step

    return [DocStepSpec(STEP, "the UnsafeConcepts study's fine-tuning split (part: test|train|all)", split_step, ARGS_SCHEMA)]


@hookimpl
def vlmbench_task_dirs() -> list[Path]:
    """The folder holding ``alignment-test-split``."""
    return [Path(__file__).resolve().parent / "tasks"]
