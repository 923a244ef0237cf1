"""Turns a task's documents into samples: processing steps, then prompt templates (Jinja2).

The document-processing steps (``process_docs`` in task YAML) are a registry filled through the
``vlmbench_doc_steps`` hook; the built-in ones are in :mod:`vlmbench.data.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlmbench.backend import inert_line
from vlmbench.data.concepts import ConceptCatalog
from vlmbench.data.sources import DocTable
from vlmbench.errors import UserError
from vlmbench.taskconfig import TaskConfig
from vlmbench.templates import MAX_RENDERED_CHARS, PromptTooLong, ShowsNoText, render


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


def spread(items: list[Any], limit: int | float | None) -> list[Any]:
    """``limit`` items evenly spaced over ``items`` (all when ``limit`` is None or large); a float
    ``limit`` is a fraction of them. Documents with a ``label`` keep one of each label (a safe control
    next to the unsafe items) whenever ``limit`` allows."""
    from vlmbench.overrides import documents_kept

    count = documents_kept(limit, len(items))
    if count >= len(items):
        return items
    picked = [i * len(items) // count for i in range(count)]
    labels = [item.get("label") if isinstance(item, dict) else None for item in items]
    for label in dict.fromkeys(labels):  # labels in order of first appearance
        shown = [labels[i] for i in picked]
        if label is None or label in shown:
            continue
        commonest = max(set(shown), key=shown.count)
        if shown.count(commonest) < 2:
            break  # no room: every kept document is the only one of its label
        members = [i for i, value in enumerate(labels) if value == label]
        picked[max(j for j, i in enumerate(picked) if labels[i] == commonest)] = members[len(members) // 2]
    return [items[i] for i in sorted(picked)]


def build_samples(
    task: TaskConfig,
    table: DocTable,
    catalog: ConceptCatalog | None,
    seed: int,
    limit: int | float | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[Sample]:
    """All samples of a task, in a stable order; ``limit`` keeps that many documents, spread evenly."""
    from vlmbench.pluginmanager import doc_step_specs

    steps = doc_step_specs()
    docs = [dict(row) for row in table.rows]
    for step in task.get("process_docs", []):
        name, args = (step, {}) if isinstance(step, str) else next(iter(step.items()))
        args = {**(args or {}), **(overrides or {}).get(name, {})}
        docs = steps[name].apply(docs, catalog=catalog, task=task, seed=seed, **args)
        if not isinstance(docs, list) or not all(isinstance(doc, dict) for doc in docs):  # a plugin's step, mistaken
            what = (
                type(docs).__name__
                if not isinstance(docs, list)
                else "a list holding " + next(type(d).__name__ for d in docs if not isinstance(d, dict))
            )
            raise UserError(f"{task.path}: document step '{name}' gave {what}, not a list of documents (mappings); fix the plugin that registers it")
    if not docs:
        raise UserError(f"{task.path}: no documents left after process_docs; check the dataset and the steps")
    _check_cluster_key(task, table, docs)
    docs = spread(docs, limit)
    image = task.get("doc_to_image", "image")
    choice_spec = task.get("doc_to_choice")
    samples = []
    for doc_index, doc in enumerate(docs):
        if isinstance(choice_spec, str):
            if choice_spec not in doc:
                raise UserError(
                    f"{task.path}: field 'doc_to_choice' = '{choice_spec}': {_dataset_of(table, doc)} has no such column; use a column name or a list"
                )
            listed = doc[choice_spec]
            if not isinstance(listed, (list, tuple)) or not listed or not all(isinstance(c, str) and c.strip() for c in listed):
                raise UserError(
                    f"{task.path}: field 'doc_to_choice' = '{choice_spec}': {_dataset_of(table, doc)} holds {str(listed)[:60]!r} in a row, "
                    "not a list of choices (text); fix the data or give the choices as a list"
                )
            choices: tuple[str, ...] | None = tuple(listed)
        else:
            choices = tuple(choice_spec) if choice_spec else None
        target = _render(task, table, "doc_to_target", task.get("doc_to_target"), doc)
        for variant, template in enumerate(task.templates):
            samples.append(
                Sample(
                    id=f"{task.name}/{doc_index}.{variant}",
                    doc=doc,
                    variant=variant,
                    prompt=_render(task, table, "doc_to_text", template, doc),
                    image=image,
                    choices=choices,
                    target=target,
                )
            )
    return samples


def _check_cluster_key(task: TaskConfig, table: DocTable, docs: list[dict[str, Any]]) -> None:
    """A ``cluster_key`` the task names that no document holds is a mistyped column: every item would be a cluster
    of its own, and the intervals would treat a concept's images as independent."""
    key = task.get("cluster_key")
    if key is None or any(doc.get(key) not in (None, "") for doc in docs):
        return
    columns = sorted({str(column) for doc in docs[:100] for column in doc if not str(column).startswith("_")})
    raise UserError(
        f"{task.path}: field 'cluster_key' = '{inert_line(str(key), 60)}': {_dataset_of(table, docs[0])} has no such column "
        f"(or it is empty in every row); columns: {', '.join(columns)[:300]}"
    )


def _dataset_of(table: DocTable, doc: dict[str, Any]) -> str:
    """Which dataset a document came from, for error lines."""
    source = doc.get("_source")
    if not isinstance(source, int) or not 0 <= source < len(table.infos):
        return "the documents"
    info = table.infos[source]
    return f"dataset {info.path}" + (f" (loaded from {info.loaded_from})" if info.loaded_from not in (None, "hub", "generated", info.path) else "")


def _render(task: TaskConfig, table: DocTable, field: str, template: str, doc: dict[str, Any]) -> str:
    """Render a template; a missing field's error line also names the dataset the document came from, and a
    prompt made too long by a document's own field blames that field, not the template."""
    try:
        return render(task.path, field, template, doc)
    except PromptTooLong:
        huge = next(
            (name for name, value in doc.items() if not name.startswith("_") and isinstance(value, str) and len(value) > MAX_RENDERED_CHARS), None
        )
        if huge is None:
            raise
        row = doc.get("_row")
        where = f"{_dataset_of(table, doc)}" + (f" row {row}" if isinstance(row, int) else "")
        raise UserError(
            f"{where}: column '{huge}' holds {len(doc[huge]):,} characters, more than a prompt may have ({MAX_RENDERED_CHARS:,}); "
            "fix the data or leave the row out"
        ) from None
    except ShowsNoText as exc:  # the data's fault: say where the value is
        row = doc.get("_row")
        where = f"{_dataset_of(table, doc)}" + (f" row {row}" if isinstance(row, int) else "")
        raise UserError(f"{exc} (in {where}" + (f", column '{exc.column}')" if exc.column else ")")) from None
    except UserError as exc:
        if "is undefined" not in str(exc):
            raise
        raise UserError(f"{exc} (in {_dataset_of(table, doc)})") from None
