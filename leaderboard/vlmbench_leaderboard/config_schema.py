"""Validation of ``leaderboard.yaml`` against the shipped ``leaderboard.schema.json``.

The schema holds every structural rule (keys, types, allowed values, path syntax). A violation becomes
one line: the file, the field, the value, what is wrong and the fix, taken from the violated node's
``x-fix`` annotation.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from vlmbench.errors import UserError

SCHEMA_FILE = "leaderboard.schema.json"
TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}
MAX_VALUE_CHARS = 80


@lru_cache(maxsize=1)
def config_schema() -> dict[str, Any]:
    """The shipped JSON Schema of the leaderboard configuration."""
    text = resources.files("vlmbench_leaderboard").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_config(raw: Any, where: str) -> None:
    """Check a decoded config against the schema; the first problem raises a one-line UserError."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(raw))
    if error is not None:
        raise UserError(f"{where}: {describe(error, raw)}")


def field_name(path: Sequence[Any], document: Any) -> str:
    """A config field as people read it: ``sort.column``, ``columns[4] (perception_image): category.value``."""
    text, node = "", document
    for segment in path:
        if isinstance(segment, int):
            node = node[segment] if isinstance(node, list) and 0 <= segment < len(node) else None
            label = f" ({node['id']})" if isinstance(node, dict) and isinstance(node.get("id"), str) and node["id"].isprintable() else ""
            text += f"[{segment}]{label}:"
            continue
        node = node.get(segment) if isinstance(node, dict) else None
        text += (" " if text.endswith(":") else "." if text else "") + str(segment)
    return text.rstrip(":") or "top level"


def value_text(value: Any) -> str:
    """A value on one line, shortened: ``'datetime'``, ``5``, ``{'a': 1}``."""
    text = " ".join((value.isoformat() if isinstance(value, datetime.date) else repr(value)).split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def describe(error: Any, document: Any) -> str:
    """One line for a jsonschema error: field, value, problem and fix."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    fix = schema.get("x-fix", "see the shipped leaderboard.yaml")
    field = field_name(list(error.absolute_path), document)
    value, keyword = error.instance, error.validator
    if keyword == "additionalProperties":
        known = list(schema.get("properties", {}))
        extra = sorted((k for k in value if k not in known), key=str)[0]
        return f"{field}: unknown key {extra!r} (known: {', '.join(known)}); fix or remove it"
    if keyword == "required":
        missing = next(k for k in error.validator_value if k not in value)
        return f"{field}: {missing!r} is required; {fix}"
    if keyword == "type":
        return f"{field}: {value_text(value)} is {_type_name(value)}, not {_expected(error.validator_value)}; {fix}"
    if keyword == "not":
        return f"{field}: {value_text(value)} is not allowed here; {fix}"
    if keyword in ("contains", "minContains", "maxContains"):
        matches = sum(1 for item in value if _validator().evolve(schema=schema["contains"]).is_valid(item))
        return f"{field}: {matches} of its {len(value)} items {schema.get('x-contains', 'match')}; {fix}"
    if keyword == "minItems":
        return f"{field}: a list of {len(value)} is too short; {fix}"
    return f"{field}: {value_text(value)} is not valid; {fix}"


def _type_name(value: Any) -> str:
    for name, kinds in (
        ("empty", type(None)),
        ("true or false", bool),
        ("a whole number", int),
        ("a number", float),
        ("text", str),
        ("a list", list),
        ("a mapping", dict),
        ("a date", datetime.date),
    ):
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def _expected(types: str | Iterable[str]) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return " or ".join(TYPE_NAMES.get(name, name) for name in names)
