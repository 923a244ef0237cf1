"""Turns a task's documents into samples: processing steps, then prompt templates (Jinja2).

The document-processing steps (``process_docs`` in task YAML) are a registry filled through the
``vlmbench_doc_steps`` hook; the built-in ones are in :mod:`vlmbench.data.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlmbench.data.concepts import ConceptCatalog
from vlmbench.data.sources import DocTable
from vlmbench.errors import UserError
from vlmbench.taskconfig import TaskConfig
from vlmbench.templates import render


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


def spread(items: list[Any], limit: int | None) -> list[Any]:
    """``limit`` items evenly spaced over ``items`` (all when ``limit`` is None or large)."""
    if limit is None or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def build_samples(
    task: TaskConfig, table: DocTable, catalog: ConceptCatalog | None, seed: int, limit: int | None = None, overrides: dict[str, Any] | None = None
) -> list[Sample]:
    """All samples of a task, in a stable order; ``limit`` keeps that many documents, spread evenly."""
    from vlmbench.pluginmanager import doc_step_specs

    steps = doc_step_specs()
    docs = [dict(row) for row in table.rows]
    for step in task.get("process_docs", []):
        name, args = (step, {}) if isinstance(step, str) else next(iter(step.items()))
        args = {**(args or {}), **(overrides or {}).get(name, {})}
        docs = steps[name].apply(docs, catalog=catalog, task=task, seed=seed, **args)
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
        target = render(task.path, "doc_to_target", task.get("doc_to_target"), doc)
        for variant, template in enumerate(task.templates):
            samples.append(
                Sample(
                    id=f"{task.name}/{doc_index}.{variant}",
                    doc=doc,
                    variant=variant,
                    prompt=render(task.path, "doc_to_text", template, doc),
                    image=image,
                    choices=choices,
                    target=target,
                )
            )
    return samples
