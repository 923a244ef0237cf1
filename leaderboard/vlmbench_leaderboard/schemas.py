"""The schemas of an entry's ``results.json`` and ``metadata.json``: config paths are checked against them,
stored entries are validated with them."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from vlmbench.errors import UserError

CATEGORY = "{category}"
PLACEHOLDERS = ("*", CATEGORY)


# Private copies, read from the package: schema compilers rewrite the dicts they are given.
@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json``."""
    schema: dict[str, Any] = json.loads(resources.files("vlmbench.schemas").joinpath("results.schema.json").read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=1)
def metadata_schema() -> dict[str, Any]:
    """The JSON Schema of an entry's ``metadata.json`` (the bundle schema's ``metadata``)."""
    schema = json.loads(resources.files("vlmbench.schemas").joinpath("bundle.schema.json").read_text(encoding="utf-8"))
    return {"$defs": schema["$defs"], **schema["properties"]["metadata"]}


@lru_cache(maxsize=1)
def metadata_validator() -> Any:
    """A jsonschema validator of metadata (its errors name the field)."""
    import jsonschema

    return jsonschema.Draft7Validator(copy.deepcopy(metadata_schema()))


@lru_cache(maxsize=1)
def results_validator() -> Callable[[Any], Any]:
    """A compiled (fast) validator of results, raising ``fastjsonschema.JsonSchemaException``."""
    from vlmbench.results import results_validator as compiled

    validate: Callable[[Any], Any] = compiled()
    return validate


def _resolve_ref(root: dict[str, Any], node: Any) -> dict[str, Any]:
    """Follow local ``$ref``s (``#/$defs/x``) until a concrete schema node."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = root
        for part in node["$ref"].partition("#")[2].strip("/").split("/"):
            target = target[part]
        node = target
    return node if isinstance(node, dict) else {}


def schema_node(root: dict[str, Any], segments: tuple[str, ...], where: str) -> dict[str, Any] | None:
    """The schema node a path leads to; None where the schema is free-form below some segment.

    ``*`` and ``{category}`` match any key; a field the schema forbids is a one-line UserError.
    """
    node = _resolve_ref(root, root)
    for depth, segment in enumerate(segments):
        here = ".".join(segments[:depth]) or "the top level"
        types = _types(node)
        if types and "object" not in types:
            raise UserError(f"{where}: path {'.'.join(segments)!r} goes past a value at {here!r}; shorten it")
        properties = node.get("properties", {})
        patterns = node.get("patternProperties", {})
        extra = node.get("additionalProperties", True)
        if segment not in PLACEHOLDERS and segment in properties:
            node = _resolve_ref(root, properties[segment])
        elif segment not in PLACEHOLDERS and any(re.search(p, segment) for p in patterns):
            node = _resolve_ref(root, next(s for p, s in patterns.items() if re.search(p, segment)))
        elif isinstance(extra, dict):
            node = _resolve_ref(root, extra)
        elif extra is True:
            return None  # free-form below here: nothing more to check
        else:
            known = ", ".join([*properties, *(f"/{p}/" for p in patterns)])
            raise UserError(f"{where}: {segment!r} is not a field of {here!r} (known: {known}); fix the path")
    return node


def check_schema_path(root: dict[str, Any], segments: tuple[str, ...], where: str, leaf: str) -> None:
    """Walk ``segments`` through a JSON Schema; a field the schema forbids or a wrong leaf type is an error.

    ``leaf`` is ``"number"`` or ``"text"`` (text also accepts numbers); ``*`` and ``{category}`` match any key.
    """
    node = schema_node(root, segments, where)
    types = _types(node) if node is not None else []
    allowed = {"number", "integer"} | ({"string"} if leaf == "text" else set())
    if types and not allowed & set(types):
        raise UserError(
            f"{where}: path {'.'.join(segments)!r} leads to {'/'.join(sorted(types))}, not a {leaf}; "
            "extend the path (e.g. .value), or give the statistic's path as stat"
        )


def _types(node: dict[str, Any]) -> list[str]:
    types = node.get("type", [])
    return [types] if isinstance(types, str) else list(types)
