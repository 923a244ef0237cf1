"""Reads task and group YAML files: ``include`` resolution, JSON Schema validation, variants.

Every problem becomes one :class:`UserError` line naming the file, the field, the offending value
and what is expected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from vlmbench.errors import UserError
from vlmbench.pluginmanager import did_you_mean

SCHEMA_FILE = "task.schema.json"
PATH_FIELDS = ("concepts_file", "dataset_path")


@lru_cache(maxsize=1)
def task_schema() -> dict[str, Any]:
    """The JSON Schema for task and group files, as shipped in the package."""
    return json.loads(resources.files("vlmbench.schemas").joinpath(SCHEMA_FILE).read_text())


def _validator(definition: str) -> jsonschema.Draft202012Validator:
    schema = task_schema()
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"})


@dataclass(frozen=True)
class TaskConfig:
    """A validated task: the YAML's fields, plus where it came from."""

    name: str
    path: Path
    fields: dict[str, Any]
    variant: str = "builtin"

    def get(self, key: str, default: Any = None) -> Any:
        """A field's value, or ``default`` when the YAML leaves it out."""
        return self.fields.get(key, default)

    @property
    def description(self) -> str:
        """The one-line description shown by ``vlmbench ls tasks``."""
        return str(self.fields["description"])

    @property
    def version(self) -> str:
        """The task's version (``metadata.version``); bump it when results stop being comparable."""
        return str(self.fields["metadata"]["version"])

    @property
    def groups(self) -> list[str]:
        """Groups the task declares itself a member of."""
        group = self.fields.get("group", [])
        return [group] if isinstance(group, str) else list(group)

    @property
    def templates(self) -> list[str]:
        """The prompt templates (``doc_to_text`` as a list)."""
        text = self.fields["doc_to_text"]
        return [text] if isinstance(text, str) else list(text)

    @property
    def config_hash(self) -> str:
        """sha256 of the resolved configuration: equal hashes mean the same task, on any machine.

        The concepts file enters by its content, not its (machine-specific) path.
        """
        fields = dict(self.fields)
        if fields.get("concepts_file"):
            concepts = self.resolve_path(fields["concepts_file"])
            fields["concepts_file"] = hashlib.sha256(concepts.read_bytes()).hexdigest() if concepts.is_file() else fields["concepts_file"]
        return _sha256_json({"task": self.name, "variant": self.variant, **fields})

    @property
    def prompt_hash(self) -> str:
        """sha256 of the prompt templates alone."""
        return _sha256_json(self.templates)

    def resolve_path(self, relative: str) -> Path:
        """A path from the YAML, relative to the YAML file's directory."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.path.parent / path)

    def with_variant(self, variant: str) -> TaskConfig:
        """This task with the overrides of ``variants.<variant>`` applied; itself when it has none."""
        overrides = self.fields.get("variants", {}).get(variant)
        if not overrides:
            return self
        merged = {k: v for k, v in self.fields.items() if k != "variants"}
        merged.update(overrides)
        return TaskConfig(self.name, self.path, merged, variant)


@dataclass(frozen=True)
class GroupConfig:
    """A named list of tasks."""

    name: str
    path: Path | None
    tasks: list[str]
    description: str = ""


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping, with one-line errors."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}:{where}: invalid YAML ({problem}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of fields at the top level, got {type(data).__name__}")
    return data


def _with_includes(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's fields merged over those of the file it ``include``s (recursively)."""
    path = path.resolve()
    if path in seen:
        raise UserError(f"{path}: field 'include' forms a cycle ({' -> '.join(p.name for p in (*seen, path))}); remove one include")
    data = read_yaml(path)
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise UserError(f"{path}: field 'include' = {include!r}: expected a file name relative to this file")
    base_path = path.parent / include
    if not base_path.is_file():
        raise UserError(f"{path}: field 'include' = '{include}': no such file next to it; fix the file name")
    merged = _with_includes(base_path, (*seen, path))
    for field_name in PATH_FIELDS:  # a path is relative to the file that declares it
        value = merged.get(field_name)
        if isinstance(value, str) and not Path(value).is_absolute() and (base_path.parent / value).exists():
            merged[field_name] = str((base_path.parent / value).resolve())
    merged.update(data)
    return merged


def _field_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _expected(error: jsonschema.ValidationError) -> str:
    """What the schema wanted, in words."""
    validator, value = error.validator, error.validator_value
    if validator == "type":
        types = value if isinstance(value, list) else [value]
        return "expected " + " or ".join("null" if t == "null" else f"a{'n' if t[0] in 'aeiou' else ''} {t}" for t in types)
    if validator == "enum":
        return "expected one of " + ", ".join(repr(v) for v in value)
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[validator]
        return f"expected a number {op} {value}"
    if validator == "pattern":
        return f"expected text matching {value}"
    if validator in ("minItems", "minLength"):
        return f"expected at least {value} {'items' if validator == 'minItems' else 'characters'}"
    if validator == "required":
        return "add the missing field"
    return error.message


def _schema_error(path: Path, error: jsonschema.ValidationError, allowed: list[str]) -> UserError:
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - known)
        name = extra[0] if extra else "?"
        where = _field_path(error)
        prefix = "" if where == "(top level)" else f"{where}."
        hint = did_you_mean(name, known or allowed)
        return UserError(f"{path}: field '{prefix}{name}': unknown field{hint}; remove or rename it")
    if error.validator == "required":
        missing = [r for r in error.validator_value if r not in error.instance]
        where = _field_path(error)
        prefix = "" if where == "(top level)" else f"{where}."
        return UserError(f"{path}: field '{prefix}{missing[0]}' is missing; add it (see `vlmbench validate` docs)")
    if error.validator == "oneOf" and error.context:
        # Report the alternative that got furthest (deepest path) rather than "not valid under any".
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(error.absolute_path):
            return _schema_error(path, best, allowed)
        return UserError(f"{path}: field '{_field_path(error)}' = {json.dumps(error.instance, default=str)[:80]}: "
                         f"{_oneof_expectation(error)}")
    value = json.dumps(error.instance, default=str)
    if len(value) > 80:
        value = value[:77] + "..."
    return UserError(f"{path}: field '{_field_path(error)}' = {value}: {_expected(error)}")


def _oneof_expectation(error: jsonschema.ValidationError) -> str:
    description = error.schema.get("description")
    if description:
        return f"expected {description}"
    return "expected " + " or ".join(sorted({_expected(e).removeprefix("expected ") for e in error.context}))


def _validate(path: Path, data: dict[str, Any], definition: str) -> None:
    validator = _validator(definition)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        allowed = list(task_schema()["$defs"][definition].get("properties", {}))
        raise _schema_error(path, error, allowed)


def load_file(path: Path) -> TaskConfig | GroupConfig:
    """Load and validate one task or group YAML file."""
    path = Path(path)
    data = _with_includes(path)
    if "group" in data and isinstance(data.get("task"), list):
        _validate(path, data, "group")
        return GroupConfig(data["group"], path, list(data["task"]), data.get("description", ""))
    _validate(path, data, "task")
    for overrides in data.get("variants", {}).values():
        merged = {k: v for k, v in data.items() if k != "variants"} | overrides
        _validate(path, merged, "task")  # a variant must still make a whole valid task
    return TaskConfig(data["task"], path, data)
