"""Compiled JSON Schema validators whose generated code is kept in the cache folder, and quick checks.

``fastjsonschema.compile`` writes a Python function for a schema and compiles it: 58 ms for the results
schema, on every run, before the results can be checked. The same code is kept here as a module in
``$VLMBENCH_CACHE_DIR/validators/``, named by a digest of the schema, the options and the fastjsonschema
version, so a later process imports it (with Python's own bytecode cache) in about a millisecond. Where the
cache folder cannot be written, the code is compiled in memory, as before.

:func:`quick_validator` gives a compiled yes/no check for schemas whose keywords fastjsonschema reads
exactly as ``jsonschema`` does; task files are checked with it first, and ``jsonschema`` (50-100 ms to
import, 35 ms for the built-in tasks) is only imported to explain a document that fails.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import py_compile
import re
from collections.abc import Callable, Mapping
from typing import Any

from vlmbench.cache import cache_dir
from vlmbench.safefiles import replace_file

_ROOT = re.compile(r"^def (\w+)\(", re.MULTILINE)  # the generated code defines the schema's own function first
_LAYOUT = 1  # of the kept module (the options it is generated with): part of its name


def compiled_validator(schema: Mapping[str, Any], *, use_formats: bool = True) -> Callable[[Any], Any]:
    """What ``fastjsonschema.compile(schema, use_formats=use_formats, use_default=False)`` gives: a function
    that returns the value (never edited: defaults are not filled in) or raises
    ``fastjsonschema.JsonSchemaValueException``. Remote ``$ref`` are never fetched."""
    import fastjsonschema

    digest = hashlib.sha256(json.dumps([dict(schema), use_formats, fastjsonschema.VERSION, _LAYOUT], sort_keys=True).encode()).hexdigest()[:32]
    name = f"vlmbench_validator_{digest}"
    path = cache_dir() / "validators" / f"{name}.py"
    if path.is_file():
        try:
            return _load(name, str(path))
        except Exception:  # damaged or from elsewhere: written again below
            pass
    # A copy: fastjsonschema edits the schema it is given.
    code = fastjsonschema.compile_to_code(copy.deepcopy(dict(schema)), handlers=_NO_REMOTE, use_formats=use_formats, use_default=False)
    root = _ROOT.search(code)
    if root is None:  # not the code this module knows: compile as fastjsonschema does
        return fastjsonschema.compile(copy.deepcopy(dict(schema)), handlers=_NO_REMOTE, use_formats=use_formats, use_default=False)
    code += f"\n\nvalidate = {root.group(1)}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, code)
        # Its bytecode too, now: an environment that sets PYTHONDONTWRITEBYTECODE would compile it on every import.
        py_compile.compile(str(path), doraise=True)
        return _load(name, str(path))
    except (OSError, py_compile.PyCompileError):  # a read-only or full cache folder: this process compiles its own copy
        namespace: dict[str, Any] = {}
        exec(compile(code, f"<{name}>", "exec"), namespace)
        validate: Callable[[Any], Any] = namespace["validate"]
        return validate


def _load(name: str, path: str) -> Callable[[Any], Any]:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    validate: Callable[[Any], Any] = module.validate
    return validate


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"remote schema references are not fetched ({uri})")


_NO_REMOTE = {"http": _refuse_remote, "https": _refuse_remote, "file": _refuse_remote, "ftp": _refuse_remote}


# Keywords that fastjsonschema and jsonschema (Draft 2020-12, with :mod:`vlmbench.taskconfig`'s anchored
# patterns) read alike, for a document that passes: a quick "valid" is never a document jsonschema would
# refuse. (The other way round may differ: fastjsonschema refuses 1.0 as an integer, jsonschema does not;
# such a document goes to jsonschema, whose verdict is the one given.)
_QUICK_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties", "additionalProperties", "required", "items",
        "minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "pattern", "enum", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "oneOf", "anyOf", "allOf",
    }
)  # fmt: skip
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_QUICK: dict[str, Callable[[Any], bool] | None] = {}


def quick_validator(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """A compiled check that says True only for documents valid under ``schema`` as ``jsonschema`` reads it
    (a trailing ``$`` in a pattern is the end of the text), or None when the schema uses a keyword or form
    outside those both libraries read alike. False means "ask jsonschema": it is not a verdict."""
    key = json.dumps(schema, sort_keys=True, default=repr)
    if key not in _QUICK:
        _QUICK[key] = _quick(schema) if _readable_alike(schema) else None
    return _QUICK[key]


def _quick(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    validate = compiled_validator(schema, use_formats=False)

    def passes(document: Any) -> bool:
        if _holds_tuple(document):  # an array to fastjsonschema, not to jsonschema: jsonschema decides
            return False
        try:
            validate(document)
        except Exception:  # a refusal, or a document too deep for the generated code: jsonschema decides
            return False
        return True

    return passes


def _holds_tuple(document: Any, limit: int = 100_000) -> bool:
    """Whether a tuple is anywhere in the document (a library caller's; YAML gives lists)."""
    pending, seen = [document], 0
    while pending and seen < limit:
        value = pending.pop()
        seen += 1
        if isinstance(value, tuple):
            return True
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return seen >= limit  # too large to look through: jsonschema decides


def _readable_alike(schema: Mapping[str, Any]) -> bool:
    """Whether the schema, and every node it reaches (through local ``$ref`` too), uses only keywords and
    forms that both libraries read alike."""
    seen: set[int] = set()
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children = _node_children(node, root=node is schema)
        if children is None:
            return False
        for child in children:
            if isinstance(child, str):  # a local reference
                target = _pointer(schema, child)
                if target is None:
                    return False
                child = target
            pending.append(child)
    return True


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    """The node a local reference (``#/$defs/x/y``) names, or None."""
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _node_children(node: Any, root: bool) -> list[Any] | None:
    """The sub-schemas of one node (a local reference as its text), or None when the node itself uses a
    keyword or form outside those both libraries read alike."""
    if not isinstance(node, dict) or not set(node) <= _QUICK_KEYWORDS:
        return None
    if ("$schema" in node or "$id" in node) and not root:
        return None
    children: list[Any] = []
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or set(node) - {"$ref", "title", "description"}:
            return None  # a remote reference, or siblings that older drafts ignore beside $ref
        children.append(ref)
    kinds = node.get("type", "object")
    if not all(isinstance(k, str) and k in _TYPES for k in (kinds if isinstance(kinds, list) else [kinds])):
        return None
    pattern = node.get("pattern")
    if pattern is not None and (not isinstance(pattern, str) or "$" in re.sub(r"\\.", "", pattern).removesuffix("$")):
        return None  # fastjsonschema turns every $ into the end of the text; jsonschema here only a last one
    if "enum" in node and not (isinstance(node["enum"], list) and all(isinstance(v, str) for v in node["enum"])):
        return None  # 1, 1.0 and True are one value to Python's `in`, three to jsonschema
    for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and (isinstance(node[bound], bool) or not isinstance(node[bound], (int, float))):
            return None
    if "properties" in node:
        if not isinstance(node["properties"], dict):
            return None
        children.extend(node["properties"].values())
    for group in ("oneOf", "anyOf", "allOf"):
        if group in node:
            if not isinstance(node[group], list) or not node[group]:
                return None
            children.extend(node[group])
    if "items" in node:
        children.append(node["items"])
    extra = node.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        children.append(extra)
    return children
