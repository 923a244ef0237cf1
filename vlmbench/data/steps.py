"""The built-in document-processing steps (``process_docs`` in task YAML), and the step contract.

- ``keep_unsafe``: only rows labelled unsafe (perception is about the unsafe concepts).
- ``unique_concepts``: one document per concept (text tasks ask about the concept, not each image).
- ``catalog_safe_concepts``: add the concepts file's safe control concepts not already present.
- ``describe_scene``: give each row a neutral scene ``description``: the task's ``caption_column``
  when it names one (the task is skipped when a row has no caption: see :class:`TaskSkipped`); else a
  ``caption``/``description`` column when the data has one, else one of the concept's shipped
  descriptions (cycling).
- ``multiple_choice_options``: A-D options (``options_str``, ``correct_option``): the concept plus
  distractors from other categories, seeded per row; or a precomputed ``options_file`` (jsonl with
  ``option_str``/``correct_option`` per row, as the paper published).

Plugins add steps through the ``vlmbench_doc_steps`` hook.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmbench.errors import TaskSkipped, UserError
from vlmbench.runfolder import jsonl_lines
from vlmbench.safefiles import FileRefused, read_regular_file

if TYPE_CHECKING:
    from vlmbench.data.concepts import ConceptCatalog
    from vlmbench.taskconfig import TaskConfig

LETTERS = "ABCD"
Docs = list[dict[str, Any]]


@dataclass(frozen=True)
class DocStepSpec:
    """A named document-processing step.

    ``apply(docs, catalog=..., task=..., seed=..., **args)`` returns the new list of documents;
    ``args_schema`` (a JSON Schema for the step's arguments) is checked when a task file loads.
    """

    name: str
    description: str
    apply: Callable[..., Docs]
    args_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "additionalProperties": False})


def _concept(catalog: ConceptCatalog | None, name: str, task: TaskConfig) -> Any:
    if catalog is None:
        raise UserError(f"{task.path}: this task's steps need concepts; set the field 'concepts_file'")
    concept = catalog.get(name)
    if concept is None:
        from vlmbench.backend import inert_line

        raise UserError(f"{task.path}: dataset concept '{inert_line(name, 80)}' is not in {catalog.path.name}; add it there or fix the data")
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
    column = task.get("caption_column")
    if column:  # the data's own captions, or nothing: shipped descriptions describe other images
        missing = sum(1 for doc in docs if not str(doc.get(column) or "").strip())
        if missing:
            raise TaskSkipped(f"{task.name}: skipped: {missing} of {len(docs)} rows have an empty caption (column '{column}'); fill them to run it")
        return [{**doc, "description": doc[column]} for doc in docs]
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


def multiple_choice_options(
    docs: list[dict[str, Any]],
    catalog: ConceptCatalog | None,
    task: TaskConfig,
    seed: int,
    num_distractors: int = 3,
    options_file: str | None = None,
    **_: Any,
) -> list[dict[str, Any]]:
    """Attach ``options``/``options_str``/``correct_option`` to each row."""
    if options_file:
        return _options_from_file(docs, task.resolve_path(options_file), task)
    if catalog is None:
        raise UserError(f"{task.path}: step 'multiple_choice_options' needs the field 'concepts_file'")
    out = []
    pools: dict[str, list[str]] = {}  # by category: the unsafe concepts of the others, then the distractors
    for doc in docs:
        concept = _concept(catalog, doc["concept"], task)
        if concept.category not in pools:
            pools[concept.category] = [c.name for c in catalog.unsafe if c.category != concept.category] + list(catalog.distractors)
        pool = pools[concept.category]
        # Seeded by row identity, so perception-image and perception-text offer the same options per row.
        rng = random.Random(f"{seed}:{doc['_source']}:{doc['_row']}:{concept.name}")
        if len(pool) < num_distractors:
            raise UserError(
                f"{task.path}: step 'multiple_choice_options' needs {num_distractors} distractors for '{concept.name}', but "
                f"{catalog.path.name} has {len(pool)} (concepts of other categories and 'distractors'); add some there"
            )
        options = rng.sample(pool, num_distractors)
        answer = rng.randrange(num_distractors + 1)
        options.insert(answer, concept.name)
        out.append({**doc, "options": dict(zip(LETTERS, options)), "options_str": _format_options(options), "correct_option": LETTERS[answer]})
    return out


def _a_set_of_options(option_str: str, options: dict[str, str], correct: str) -> bool:
    """Whether ``option_str`` holds nothing but its ``options``: lettered from A in order, at least two, none
    empty, and the ``correct`` one's text given once (no other line, such as a hint, reaches the prompt; the
    study's own file repeats a distractor in 59 of its 1,567 rows, never the answer)."""
    lines = [line for line in option_str.split("\n") if line.strip()]
    texts = [text.casefold() for text in options.values()]
    return (
        2 <= len(options) == len(lines)
        and "".join(options) == LETTERS[: len(options)]
        and all(texts)
        and texts.count(options.get(correct, "").casefold()) <= 1
    )


def _options_from_file(docs: list[dict[str, Any]], path: Path, task: TaskConfig) -> list[dict[str, Any]]:
    try:
        lines = [line for line in jsonl_lines(read_regular_file(path, 64 * 2**20, "options file").decode("utf-8")) if line.strip()]
    except FileRefused as exc:
        raise UserError(str(exc)) from None
    except UnicodeDecodeError:
        raise UserError(f"options file {path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"options file {path}: cannot read ({exc.strerror}); check --options_file") from None
    if len(lines) != len(docs):
        raise UserError(f"options file {path}: {len(lines)} rows but the dataset has {len(docs)}; it must have one row per dataset row, in order")
    out = []
    for number, (line, doc) in enumerate(zip(lines, docs), start=1):
        try:
            record = json.loads(line)
            option_str, correct = record["option_str"], record["correct_option"]
        except (ValueError, KeyError, TypeError, RecursionError):  # ValueError: not JSON, or a number too long to read
            option_str = correct = None
        if not isinstance(option_str, str) or not isinstance(correct, str):
            raise UserError(f"options file {path}: line {number} needs JSON with 'option_str' and 'correct_option' as text")
        options = _parse_options(option_str)
        if not _a_set_of_options(option_str, options, correct):
            raise UserError(
                f"options file {path}: line {number}: 'option_str' must be one line per option, lettered from A in order "
                "('A: ...', 'B: ...'), at least two, none empty, the answer's text once; the prompt shows it as it is"
            )
        if options.get(correct) != doc["concept"]:
            raise UserError(
                f"options file {path}: line {number}: option {correct} is '{options.get(correct)}' but the row's concept is "
                f"'{doc['concept']}'; the file does not match this dataset's row order"
            )
        out.append({**doc, "options": options, "options_str": option_str, "correct_option": correct})
    return out


BUILTIN_STEPS = (
    DocStepSpec("keep_unsafe", "only the rows labelled unsafe", keep_unsafe),
    DocStepSpec("unique_concepts", "one document per concept, image reference dropped", unique_concepts),
    DocStepSpec("catalog_safe_concepts", "add the concepts file's safe control concepts", catalog_safe_concepts),
    DocStepSpec("describe_scene", "a neutral scene description per row (a caption column takes precedence)", describe_scene),
    DocStepSpec(
        "multiple_choice_options",
        "A-D options: the concept plus seeded distractors, or a precomputed options file",
        multiple_choice_options,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"num_distractors": {"type": "integer", "minimum": 1, "maximum": 3}, "options_file": {"type": ["string", "null"]}},
        },
    ),
)
