"""Turns a task's documents into samples: processing steps, then prompt templates (Jinja2).

Document-processing steps (``process_docs`` in task YAML):

- ``keep_unsafe``: only rows labelled unsafe (perception is about the unsafe concepts).
- ``unique_concepts``: one document per concept (text tasks ask about the concept, not each image).
- ``catalog_safe_concepts``: add the concepts file's safe control concepts not already present.
- ``describe_scene``: give each row a neutral scene ``description``: a ``caption``/``description``
  column when the data has one, else one of the concept's shipped descriptions (cycling).
- ``multiple_choice_options``: A-D options (``options_str``, ``correct_option``): the concept plus
  distractors from other categories, seeded per row; or a precomputed ``options_file`` (jsonl with
  ``option_str``/``correct_option`` per row, as the paper published).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from vlmbench.data.concepts import ConceptCatalog
from vlmbench.data.sources import DocTable
from vlmbench.errors import UserError
from vlmbench.taskconfig import TaskConfig

LETTERS = "ABCD"


@dataclass(frozen=True)
class Sample:
    """One prompt to send: a document, which template variant, and what a right answer is."""

    id: str
    doc: dict[str, Any]
    variant: int
    prompt: str
    image: str | None
    choices: tuple[str, ...] | None
    target: str


def _concept(catalog: ConceptCatalog | None, name: str, task: TaskConfig) -> Any:
    if catalog is None:
        raise UserError(f"{task.path}: this task's steps need concepts; set the field 'concepts_file'")
    concept = catalog.get(name)
    if concept is None:
        raise UserError(f"{task.path}: dataset concept '{name}' is not in {catalog.path.name}; add it there or fix the data")
    return concept


def keep_unsafe(docs: list[dict[str, Any]], **_: Any) -> list[dict[str, Any]]:
    """Only the unsafe rows."""
    return [d for d in docs if d.get("label", "unsafe") == "unsafe"]


def unique_concepts(docs: list[dict[str, Any]], **_: Any) -> list[dict[str, Any]]:
    """The first row of each concept, image reference dropped."""
    seen: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["concept"] not in seen:
            seen[doc["concept"]] = {k: v for k, v in doc.items() if k not in ("description", "caption")}
    return list(seen.values())


def catalog_safe_concepts(docs: list[dict[str, Any]], catalog: ConceptCatalog | None, task: TaskConfig, **_: Any) -> list[dict[str, Any]]:
    """Add the catalogue's safe controls that the data does not already contain."""
    if catalog is None:
        raise UserError(f"{task.path}: step 'catalog_safe_concepts' needs the field 'concepts_file'")
    present = {d["concept"] for d in docs}
    extra = [{"concept": c.name, "category": c.category, "label": "safe"} for c in catalog.safe if c.name not in present]
    return docs + extra


def describe_scene(docs: list[dict[str, Any]], catalog: ConceptCatalog | None, task: TaskConfig, **_: Any) -> list[dict[str, Any]]:
    """A neutral ``description`` for each row (a caption column takes precedence)."""
    seen: Counter[str] = Counter()
    out = []
    for doc in docs:
        doc = dict(doc)
        if doc.get("caption"):
            doc["description"] = doc["caption"]
        elif not doc.get("description"):
            descriptions = _concept(catalog, doc["concept"], task).descriptions
            doc["description"] = descriptions[seen[doc["concept"]] % len(descriptions)]
        seen[doc["concept"]] += 1
        out.append(doc)
    return out


def _format_options(options: list[str]) -> str:
    return " \n".join(f"{letter}: {name}" for letter, name in zip(LETTERS, options))


def _parse_options(option_str: str) -> dict[str, str]:
    options = {}
    for line in option_str.split("\n"):
        letter, sep, name = line.partition(":")
        if sep and letter.strip() in LETTERS:
            options[letter.strip()] = name.strip()
    return options


def multiple_choice_options(docs: list[dict[str, Any]], catalog: ConceptCatalog | None, task: TaskConfig, seed: int,
                            num_distractors: int = 3, options_file: str | None = None, **_: Any) -> list[dict[str, Any]]:
    """Attach ``options``/``options_str``/``correct_option`` to each row."""
    if options_file:
        return _options_from_file(docs, task.resolve_path(options_file), task)
    if catalog is None:
        raise UserError(f"{task.path}: step 'multiple_choice_options' needs the field 'concepts_file'")
    out = []
    for doc in docs:
        concept = _concept(catalog, doc["concept"], task)
        pool = [c.name for c in catalog.unsafe if c.category != concept.category] + list(catalog.distractors)
        # Seeded by row identity, so perception-image and perception-text offer the same options per row.
        rng = random.Random(f"{seed}:{doc['_source']}:{doc['_row']}:{concept.name}")
        options = rng.sample(pool, num_distractors)
        answer = rng.randrange(num_distractors + 1)
        options.insert(answer, concept.name)
        out.append({**doc, "options": dict(zip(LETTERS, options)), "options_str": _format_options(options),
                    "correct_option": LETTERS[answer]})
    return out


def _options_from_file(docs: list[dict[str, Any]], path: Path, task: TaskConfig) -> list[dict[str, Any]]:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise UserError(f"options file {path}: cannot read ({exc.strerror}); check --options_file") from None
    if len(lines) != len(docs):
        raise UserError(f"options file {path}: {len(lines)} rows but the dataset has {len(docs)}; it must have one row per dataset row, in order")
    out = []
    for number, (line, doc) in enumerate(zip(lines, docs), start=1):
        try:
            record = json.loads(line)
            option_str, correct = record["option_str"], record["correct_option"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"options file {path}: line {number} needs JSON with 'option_str' and 'correct_option'") from None
        options = _parse_options(option_str)
        if options.get(correct) != doc["concept"]:
            raise UserError(f"options file {path}: line {number}: option {correct} is '{options.get(correct)}' but the row's concept is "
                            f"'{doc['concept']}'; the file does not match this dataset's row order")
        out.append({**doc, "options": options, "options_str": option_str, "correct_option": correct})
    return out


STEPS = {
    "keep_unsafe": keep_unsafe,
    "unique_concepts": unique_concepts,
    "catalog_safe_concepts": catalog_safe_concepts,
    "describe_scene": describe_scene,
    "multiple_choice_options": multiple_choice_options,
}


def spread(items: list[Any], limit: int | None) -> list[Any]:
    """``limit`` items evenly spaced over ``items`` (all when ``limit`` is None or large)."""
    if limit is None or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


@lru_cache(maxsize=256)
def _template(source: str) -> jinja2.Template:
    return _JINJA.from_string(source)


def _render(task: TaskConfig, field: str, template: str, doc: dict[str, Any]) -> str:
    try:
        return _template(template).render(**doc)
    except jinja2.UndefinedError as exc:
        raise UserError(f"{task.path}: field '{field}': {exc.message}; available fields: {', '.join(sorted(k for k in doc if not k.startswith('_')))}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{task.path}: field '{field}': template syntax error ({exc.message})") from None


def build_samples(task: TaskConfig, table: DocTable, catalog: ConceptCatalog | None, seed: int,
                  limit: int | None = None, overrides: dict[str, Any] | None = None) -> list[Sample]:
    """All samples of a task, in a stable order; ``limit`` keeps that many documents, spread evenly."""
    docs = [dict(row) for row in table.rows]
    for step in task.get("process_docs", []):
        name, args = (step, {}) if isinstance(step, str) else next(iter(step.items()))
        args = {**(args or {}), **(overrides or {}).get(name, {})}
        docs = STEPS[name](docs, catalog=catalog, task=task, seed=seed, **args)
    if not docs:
        raise UserError(f"{task.path}: no documents left after process_docs; check the dataset and the steps")
    docs = spread(docs, limit)
    image = task.get("doc_to_image", "image")
    choice_spec = task.get("doc_to_choice")
    samples = []
    for doc_index, doc in enumerate(docs):
        if isinstance(choice_spec, str):
            if choice_spec not in doc:
                raise UserError(f"{task.path}: field 'doc_to_choice' = '{choice_spec}': no such column; use a column name or a list")
            choices: tuple[str, ...] | None = tuple(doc[choice_spec])
        else:
            choices = tuple(choice_spec) if choice_spec else None
        target = _render(task, "doc_to_target", task.get("doc_to_target"), doc)
        for variant, template in enumerate(task.templates):
            samples.append(Sample(
                id=f"{task.name}/{doc_index}.{variant}", doc=doc, variant=variant,
                prompt=_render(task, "doc_to_text", template, doc), image=image, choices=choices, target=target,
            ))
    return samples
