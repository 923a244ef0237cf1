"""The concept catalogue a task ships (``concepts_file``): categories, concepts, descriptions, distractors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench.taskconfig import read_yaml


@dataclass(frozen=True)
class Concept:
    """One concept: its exact name, category, whether it is unsafe, and neutral scene descriptions."""

    name: str
    category: str
    unsafe: bool
    descriptions: tuple[str, ...]


@dataclass(frozen=True)
class ConceptCatalog:
    """All concepts of a task, plus the extra names used only as wrong multiple-choice options."""

    path: Path
    sha256: str
    categories: tuple[str, ...]
    concepts: tuple[Concept, ...]
    distractors: tuple[str, ...]

    def get(self, name: str) -> Concept | None:
        """The concept with exactly this name, if any."""
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, Concept]:
        return {c.name: c for c in self.concepts}

    @property
    def unsafe(self) -> list[Concept]:
        """The unsafe concepts, in file order."""
        return [c for c in self.concepts if c.unsafe]

    @property
    def safe(self) -> list[Concept]:
        """The safe control concepts, in file order."""
        return [c for c in self.concepts if not c.unsafe]


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"'{field}' is not a list")
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"'{field}' is not text")
    return value


def _texts(value: Any, field: str) -> tuple[str, ...]:
    """A list of text (a single text is not a list of one: it would be read character by character)."""
    return tuple(_text(item, field) for item in _list(value, field))


@lru_cache(maxsize=8)
def load_catalog(path: Path) -> ConceptCatalog:
    """Read and check a concepts file (see ``tasks/data/concepts.yaml`` for the format)."""
    data = read_yaml(path)
    try:
        categories = _texts(data["categories"], "categories")
        concepts = tuple(
            Concept(_text(entry["concept"], "concept"), _text(entry["category"], "category"), unsafe, _texts(entry["descriptions"], "descriptions"))
            for key, unsafe in (("unsafe", True), ("safe", False))
            for entry in _list(data.get(key, []), key)
        )
        distractors = _texts(data.get("distractors", []), "distractors")
    except KeyError as exc:
        raise UserError(f"{path}: malformed concepts file (missing field {exc}); see tasks/data/concepts.yaml") from None
    except TypeError as exc:
        raise UserError(f"{path}: malformed concepts file ({exc}); see tasks/data/concepts.yaml") from None
    for concept in concepts:
        if concept.unsafe and concept.category not in categories:
            raise UserError(f"{path}: concept '{concept.name}' has category '{concept.category}', which is not in 'categories'")
        if not concept.descriptions:
            raise UserError(f"{path}: concept '{concept.name}' has no descriptions; add at least one")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ConceptCatalog(path, sha, categories, concepts, distractors)
