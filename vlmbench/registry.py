"""Finds every task and group the plugins provide and resolves ``--tasks`` selections."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from vlmbench.errors import UserError, printable
from vlmbench.pluginmanager import did_you_mean, task_dirs
from vlmbench.taskconfig import GroupConfig, TaskConfig, load_file

ALL = "all"


@dataclass
class TaskRegistry:
    """Tasks and groups by name. The group ``all`` always means every registered task."""

    tasks: dict[str, TaskConfig]
    groups: dict[str, GroupConfig]

    def select(self, spec: str) -> list[str]:
        """Task names for a ``--tasks`` value: comma-separated task names, group names or globs."""
        chosen: list[str] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item in self.tasks:
                names = [item]
            elif item in self.groups:
                names = self._expand(item, ())
            elif any(ch in item for ch in "*?["):
                names = sorted(fnmatch.filter(self.tasks, item))
                if not names:
                    raise UserError(f"--tasks: pattern '{item}' matches no task; `vlmbench ls tasks` lists them")
            else:
                known = [*self.tasks, *self.groups]
                raise UserError(f"--tasks: unknown task or group '{item}'{did_you_mean(item, known)}; `vlmbench ls tasks` lists them")
            chosen.extend(n for n in names if n not in chosen)
        if not chosen:
            raise UserError("--tasks: no task named; try --tasks all")
        return chosen

    def _expand(self, group: str, seen: tuple[str, ...]) -> list[str]:
        if group in seen:
            raise UserError(f"group '{group}' includes itself ({' -> '.join((*seen, group))}); fix {self.groups[group].path}")
        names: list[str] = []
        for member in self.groups[group].tasks:
            if member in self.tasks:
                names.append(member)
            elif member in self.groups:
                names.extend(self._expand(member, (*seen, group)))
            else:
                where = self.groups[group].path or "group"
                raise UserError(f"{where}: group '{group}' lists unknown task '{member}'{did_you_mean(member, self.tasks)}")
        return names


def _task_files(directory: Path) -> list[Path]:
    """YAML files under ``directory``, except include-only templates (``_*.yaml``) and ``data/`` folders.

    Walked with a list of folders to visit, not by recursion (``Path.rglob`` recurses once per level: a folder
    from elsewhere a thousand levels deep ended it with RecursionError); links to folders are not followed and an
    unreadable folder is left out, and a missing one holds no task (a plugin may name a folder it did not ship),
    as with ``rglob``."""
    found, folders = [], [directory]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except (PermissionError, FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise UserError(f"task folder {printable(str(folder))[:300]}: cannot be listed ({exc.strerror}); fix it or remove it") from None
        for entry in entries:
            path = folder / entry.name
            if path.suffix in (".yaml", ".yml") and not entry.name.startswith("_") and "data" not in path.relative_to(directory).parts[:-1]:
                found.append(path)
            if entry.is_dir(follow_symlinks=False):
                folders.append(path)
    return sorted(found)


def _check_declared_group(task: TaskConfig, group: str, builtin: set[str], tasks: dict[str, TaskConfig]) -> None:
    """Refuse a group a task file may not join: ``all`` (reserved), a task's name, or (``builtin``, for a task
    outside the shipped task folders) a group the shipped tasks define, which an outside task must not change."""
    if group == ALL:
        raise UserError(f"{task.path}: field 'group': the group name 'all' is reserved (it means every task); remove it or use another name")
    if group in tasks:
        raise UserError(f"{task.path}: field 'group': '{group}' is the name of a task; use another group name")
    if group in builtin:
        raise UserError(
            f"{task.path}: field 'group': '{group}' is a group of the installed tasks (built-in or a plugin's), which a task from "
            "--include_path cannot join; use another group name"
        )


def _check_include(directory: Path) -> None:
    """Refuse an ``--include_path`` that is no folder, or one that cannot be listed (a folder inside it that
    cannot be is left out, see :func:`_task_files`): its tasks would be missing without a word."""
    shown = printable(str(directory))[:300]
    try:
        with os.scandir(directory):
            pass
    except FileNotFoundError:
        raise UserError(f"--include_path: '{shown}': no such folder; pass a folder of task YAML files") from None
    except NotADirectoryError:
        raise UserError(f"--include_path: '{shown}' is not a folder; pass a folder of task YAML files") from None
    except OSError as exc:
        raise UserError(
            f"--include_path: '{shown}': cannot list the folder ({exc.strerror or type(exc).__name__}); make it readable, or pass another folder"
        ) from None


def discover(include: list[Path] | None = None) -> TaskRegistry:
    """Load every task and group file from every plugin's task directories, plus ``include`` folders."""
    tasks: dict[str, TaskConfig] = {}
    groups: dict[str, GroupConfig] = {}
    for directory in include or []:
        _check_include(Path(directory))
    shipped = task_dirs()
    outside: set[str] = set()  # tasks and group files from --include_path folders
    for directory in [*shipped, *(Path(d) for d in include or [])]:
        for path in _task_files(directory):
            config = load_file(path, root=directory)
            if config is None:  # a template file
                continue
            if config.name in tasks or config.name in groups:
                other = tasks[config.name].path if config.name in tasks else groups[config.name].path
                raise UserError(f"{path}: name '{config.name}' is already used by {other}; rename one of them")
            if isinstance(config, GroupConfig):
                groups[config.name] = config
            else:
                tasks[config.name] = config
            if directory not in shipped:
                outside.add(config.name)
    builtin = {name for name in groups if name not in outside} | {
        group for task in tasks.values() if task.name not in outside for group in task.groups
    }
    for task in tasks.values():  # membership declared on the task side (`group:` in a task file)
        for group in task.groups:
            _check_declared_group(task, group, builtin if task.name in outside else set(), tasks)
            if group not in groups:
                groups[group] = GroupConfig(group, None, [], f"tasks declaring group '{group}'")
            if task.name not in groups[group].tasks:
                groups[group].tasks.append(task.name)
    if ALL in groups:
        raise UserError(f"{groups[ALL].path}: the group name 'all' is reserved (it means every task); rename the group")
    groups[ALL] = GroupConfig(ALL, None, sorted(n for n, t in tasks.items() if not t.get("standalone")), "every registered task but standalone ones")
    return TaskRegistry(tasks, dict(sorted(groups.items())))
