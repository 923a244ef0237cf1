"""The built-in UnsafeConcepts tasks, registered through the same hook third parties use."""

from pathlib import Path

from vlmbench.hookspecs import hookimpl

TASK_DIR = Path(__file__).parent


@hookimpl
def vlmbench_task_dirs() -> list[Path]:
    """The directory holding the built-in task YAML files."""
    return [TASK_DIR]
