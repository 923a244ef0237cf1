"""The state of an align run in its ``--output_dir`` (``align.json``) and what ``--resume`` continues from: the
same method, data, split and settings, and the newest checkpoint the trainer finished writing."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmbench import UserError

if TYPE_CHECKING:
    from vlmbench_plugins.align.trainers import Settings

STATE_FILE = "align.json"
CHECKPOINTS = "checkpoints"

STATE_MAX_BYTES = 64 * 1024
"""The largest align.json read: the file holds a few short fields (a few hundred bytes)."""
STATE_TEXT_CHARS = 100
"""The longest value a field of align.json may hold (a method, a data variant, a sha256, a status)."""
_JSON_KINDS = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}


@dataclasses.dataclass(frozen=True)
class Resume:
    """The run ``--resume`` continues: the sha256 of its split file, and its last checkpoint (None: it wrote
    none yet, so training starts from the first step in the same folder)."""

    split_sha256: str
    checkpoint: Path | None


def read_state(out_dir: Path) -> dict[str, Any]:
    """The fields of ``out_dir``'s align.json. The folder may come from elsewhere: the file is read only if it
    is a regular file of at most :data:`STATE_MAX_BYTES`, must be a JSON object whose ``method``, ``data``,
    ``split_sha256`` (and ``status``, if given) are short printable text, and anything else is one line
    naming the file that never repeats what it holds."""
    from vlmbench import FileRefused, read_regular_file
    from vlmbench.backend import inert_line

    path = out_dir / STATE_FILE
    state: Any = None
    problem: str | None = None
    try:
        state = json.loads(read_regular_file(path, STATE_MAX_BYTES, STATE_FILE).decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"--resume: {out_dir} holds no align run ({STATE_FILE} missing); start one without --resume") from None
    except FileRefused as exc:  # a folder, a FIFO, a device (a link to /dev/zero), or over the cap: never waited on
        problem = exc.reason.split(";")[0]
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror})"
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    except ValueError:  # JSONDecodeError, or an integer of more digits than Python reads
        problem = "not JSON, or holds a number too long to read"
    except RecursionError:
        problem = "JSON nested too deeply"
    if problem is None and not isinstance(state, dict):
        problem = f"holds {_JSON_KINDS.get(type(state), 'a number')}, not a JSON object"
    if problem is None:
        wanted = ("method", "data", "split_sha256", *(("status",) if "status" in state else ()))
        bad = next(
            (name for name in wanted if not isinstance(state.get(name), str) or inert_line(state[name], STATE_TEXT_CHARS) != state[name]), None
        )
        if bad:
            problem = f"field '{bad}' is missing or not a line of text of at most {STATE_TEXT_CHARS} characters"
    if problem is None and not isinstance(state.get("config", {}), dict):
        problem = "field 'config' is not a JSON object"
    if problem is not None:
        raise UserError(f"--resume: {path}: {problem}; not a state file of vlmbench align: remove {out_dir} or choose a new --output_dir")
    return {name: value for name, value in state.items() if name in ("method", "data", "split_sha256", "status", "config")}


def run_config(settings: Settings, model_args: dict[str, str], judge: str | None, judge_args: dict[str, str]) -> dict[str, Any]:
    """What decides a run's training, as align.json records it (secrets masked) so that ``--resume`` refuses a
    command that differs: continuing a run under other settings would mix two trainings in one adapter."""
    from vlmbench.redact import redact

    record = {name: value for name, value in settings.record().items() if name not in MAY_CHANGE_ON_RESUME}
    config: dict[str, Any] = json.loads(
        json.dumps({"settings": record, "model": redact(model_args), "judge": judge, "judge_args": redact(judge_args)})
    )
    return config  # as JSON gives it back from align.json, to compare with it


MAY_CHANGE_ON_RESUME = frozenset({"save_steps", "gradient_checkpointing", "max_steps", "epochs"})
"""Settings ``--resume`` may change: how often checkpoints are written, memory for compute, and how long to train
(a run may be continued further; its learning-rate schedule then follows the new length from the checkpoint on)."""


def _first_difference(recorded: Any, wanted: Any, path: str = "") -> str | None:
    """The first place two JSON values differ, as ``field = recorded, not wanted``; None when they are equal."""
    from vlmbench.backend import inert_line

    if isinstance(recorded, dict) and isinstance(wanted, dict):
        for key in sorted(set(recorded) | set(wanted), key=str):
            found = _first_difference(recorded.get(key), wanted.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if recorded == wanted:
        return None
    return f"{path} = {inert_line(json.dumps(recorded), 80)}, not {inert_line(json.dumps(wanted), 80)}"


def check_output(out_dir: Path, resume: bool, method: str, data: str, config: dict[str, Any]) -> Resume | None:
    """The run to resume (None for a fresh run); one-line errors for a folder in the way, or a command whose
    settings differ from the run's (``config``, see :func:`run_config`; a run recorded before it was kept is not checked)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output_dir {out_dir} is a file, not a folder; choose a new folder")
    if not resume:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise UserError(f"--output_dir {out_dir} is not empty; pass --resume to continue the align run there, or choose a new folder")
        return None
    state = read_state(out_dir)
    for name, value in (("method", method), ("data", data)):
        if state[name] != value:
            raise UserError(f"--resume: {out_dir} was trained with --{name} {state[name]}, not {value}; resume with the same --{name}")
    difference = _first_difference(state["config"], config) if "config" in state else None
    if difference:
        raise UserError(
            f"--resume: {out_dir} was trained with {difference}; resume with the same flags, or choose a new --output_dir to train with these"
        )
    checkpoints = out_dir / CHECKPOINTS
    last = last_complete_checkpoint(checkpoints)
    if last is None and state.get("status") == "trained":  # finished, its checkpoints removed: training again would replace its adapter
        raise UserError(f"--resume: {out_dir} finished training and holds no checkpoint in {checkpoints}; choose a new --output_dir to train again")
    return Resume(state["split_sha256"], Path(last) if last else None)


TRAINER_STATE_MAX_BYTES = 64 * 2**20
"""The largest trainer_state.json read (a step's log line is about 1 KB)."""


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` in ``folder`` that the trainer finished writing: its ``trainer_state.json`` a
    regular file holding a JSON object whose ``global_step`` is N. A newer one that is not (a run killed while
    writing it, a damaged file) is passed over with one line saying so; with checkpoints but none complete, a
    one-line error. None when there is no checkpoint."""
    from vlmbench import FileRefused, read_regular_file, whole_number

    found = []
    for entry in folder.iterdir() if folder.is_dir() and not folder.is_symlink() else ():
        name, _, number = entry.name.partition("-")
        step = whole_number(number) if name == "checkpoint" else None
        if step is not None and entry.is_dir() and not entry.is_symlink():
            found.append((step, entry))
    for step, entry in sorted(found, reverse=True):
        try:
            trainer_state = json.loads(read_regular_file(entry / "trainer_state.json", TRAINER_STATE_MAX_BYTES, "trainer state"))
        except (OSError, FileRefused, ValueError, RecursionError):
            trainer_state = None
        if isinstance(trainer_state, dict) and trainer_state.get("global_step") == step:
            return entry
        print(f"align: --resume: {entry.name} is incomplete or damaged (its trainer_state.json); passed over", file=sys.stderr)
    if found:
        raise UserError(f"--resume: no complete checkpoint in {folder}; remove its checkpoint-* folders to train from the first step")
    return None


def write_state(out_dir: Path, state: dict[str, Any]) -> None:
    (out_dir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
