"""The entry points of one group, read from the installed distributions' ``entry_points.txt`` files.

``importlib.metadata`` finds the same files, but importing it costs about 20 ms (it brings in the e-mail
parser and ``zipfile``), a sixth of ``vlmbench --help``. For the usual case, every ``sys.path`` entry a
folder and no finder of distributions besides the standard one, this module reads the folders itself,
in the order and with the precedence ``importlib.metadata.entry_points()`` uses: the first distribution
of a name on ``sys.path`` wins. Anything else (a zip file on ``sys.path``, a finder that provides
distributions of its own) goes through ``importlib.metadata``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

# As importlib.metadata reads an entry point's value: ``module[:attr.attr] [extras]``.
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


@dataclass(frozen=True)
class EntryPoint:
    """One entry point: its name, its value (``module:attr``) and its distribution's lower-cased name."""

    name: str
    value: str
    distribution: str

    def load(self) -> Any:
        """Import the module the value names and return the attribute it names (or the module)."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"entry point value {self.value!r} is not 'module:attribute'")
        found: Any = importlib.import_module(match.group("module"))
        attribute = match.group("attr")
        for part in attribute.split(".") if attribute else ():
            found = getattr(found, part)
        return found


def entry_points(group: str) -> list[EntryPoint]:
    """The group's entry points over the installed distributions, in ``sys.path`` order."""
    folders = _path_folders()
    if folders is None:
        return _from_importlib_metadata(group)
    found, seen = [], set[str]()
    for folder in folders:
        for info in _metadata_folders(folder):
            key = _normalise(os.path.splitext(os.path.basename(info))[0].partition("-")[0])  # as importlib.metadata names it
            if key in seen:
                continue
            seen.add(key)
            entries = _group_entries(_read(info, "entry_points.txt"), group)
            if entries:
                distribution = _distribution_name(info)
                found += [EntryPoint(name, value, distribution) for name, value in entries]
    return found


def _path_folders() -> list[str] | None:
    """The folders of ``sys.path`` to read, or None when only importlib.metadata can say what is installed."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and callable(getattr(finder, "find_distributions", None)):
            return None
    folders = []
    for entry in sys.path:
        folder = entry or "."
        if folder.lower().endswith(".egg") or (os.path.exists(folder) and not os.path.isdir(folder)):
            return None  # an egg, a zip file or another importable archive
        if os.path.isdir(folder):
            folders.append(folder)
    return folders


def _metadata_folders(folder: str) -> list[str]:
    """The ``*.dist-info`` and ``*.egg-info`` folders directly in ``folder``: dist-info first, as importlib.metadata orders them."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    infos = [n for n in names if n.lower().endswith(".dist-info")]
    eggs = [n for n in names if n.lower().endswith(".egg-info")]
    return [os.path.join(folder, n) for n in infos + eggs if os.path.isdir(os.path.join(folder, n))]


def _read(info: str, name: str) -> str:
    try:
        with open(os.path.join(info, name), encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return ""


def _distribution_name(info: str) -> str:
    """The distribution's lower-cased name, from the ``Name:`` header of its metadata file."""
    return _name_header(_read(info, "METADATA") or _read(info, "PKG-INFO"))


def _name_header(metadata_text: str) -> str:
    """The lower-cased value of the ``Name:`` header (the file is not parsed as e-mail: one line is enough)."""
    return next((line[5:].strip() for line in metadata_text.split("\n") if line.startswith("Name:")), "").lower()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _group_entries(text: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of section ``[group]`` of an ``entry_points.txt``."""
    entries, section = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            name, _, value = line.partition("=")
            entries.append((name.strip(), value.strip()))
    return entries


def _from_importlib_metadata(group: str) -> list[EntryPoint]:
    from importlib import metadata

    found = []
    for point in metadata.entry_points(group=group):
        dist = getattr(point, "dist", None)
        text = (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "") if dist is not None else ""
        found.append(EntryPoint(point.name, point.value, _name_header(text)))
    return found
