"""Reads task and group YAML files: ``include`` resolution, JSON Schema validation, variants.

Every problem becomes one :class:`UserError` line naming the file, the field, the offending value
and what is expected.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vlmbench.errors import UserError
from vlmbench.pluginmanager import did_you_mean
from vlmbench.safeyaml import YamlRefused, load_yaml_file
from vlmbench.schemacache import quick_validator

if TYPE_CHECKING:
    import jsonschema

SCHEMA_FILE = "task.schema.json"
PATH_FIELDS = ("concepts_file", "dataset_path")


@lru_cache(maxsize=1)
def task_schema() -> dict[str, Any]:
    """The JSON Schema for task and group files, as shipped in the package."""
    schema: dict[str, Any] = json.loads(resources.files("vlmbench.schemas").joinpath(SCHEMA_FILE).read_text())
    return schema


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
    def scorer(self) -> str:
        """The name of the scorer that turns this task's responses into verdicts."""
        return str(self.fields["scorer"])

    @property
    def scorer_args(self) -> dict[str, str]:
        """Arguments for the scorer's factory (text values)."""
        return {str(k): str(v) for k, v in (self.fields.get("scorer_args") or {}).items()}

    @property
    def judges(self) -> list[str]:
        """The task's default judges, headline first (``judge:``; default ``rules``, i.e. its scorer)."""
        judge = self.fields.get("judge") or "rules"
        return [judge] if isinstance(judge, str) else [str(j) for j in judge]

    @property
    def metric_names(self) -> list[str]:
        """The metrics of ``metric_list``, in order."""
        return [str(m["metric"]) for m in self.fields["metric_list"]]

    @property
    def cluster_key(self) -> str:
        """The document field whose values are the clusters for standard errors (default ``concept``)."""
        return str(self.fields.get("cluster_key", "concept"))

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
        if fields.get("process_docs"):  # a step's options_file (e.g. from --options_file) enters by its content too
            fields["process_docs"] = [_step_by_content(self, step) for step in fields["process_docs"]]
        from vlmbench.pluginmanager import scorer_specs

        spec = scorer_specs().get(self.scorer)
        return _sha256_json({"task": self.name, "variant": self.variant, **fields, "scorer_version": spec.version if spec else None})

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


STEP_FILE_ARGS = ("options_file", "questions")  # step arguments naming a data file: they enter the config hash by content


def _step_by_content(task: TaskConfig, step: Any) -> Any:
    """A ``process_docs`` entry whose file arguments (``STEP_FILE_ARGS``) are replaced by the files' sha256 (when readable)."""
    if not isinstance(step, dict) or len(step) != 1:
        return step
    name, args = next(iter(step.items()))
    if not isinstance(args, dict):
        return step
    paths = {key: task.resolve_path(args[key]) for key in STEP_FILE_ARGS if isinstance(args.get(key), str)}
    hashed = {key: "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() for key, path in paths.items() if path.is_file()}
    return {name: {**args, **hashed}} if hashed else step


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping, with one-line errors (see :mod:`vlmbench.safeyaml`)."""
    try:
        data = load_yaml_file(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except YamlRefused as exc:
        raise UserError(f"{path}: {exc}") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply; flatten the file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}:{where}: invalid YAML ({problem}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of fields at the top level, got {type(data).__name__}")
    non_finite = _non_finite(data)
    if non_finite is not None:
        field, value = non_finite
        raise UserError(f"{path}: field '{field}' = {value}: expected a finite number; write a number (such as 0.7) or remove the field")
    return data


def _non_finite(data: dict[str, Any]) -> tuple[str, str] | None:
    """The first NaN or infinity (``.nan``, ``.inf``, ``1.0e999``) in a file's data, anywhere: its field (the path of
    keys, as ``generation_kwargs.temperature``, each key cut to 60 characters) and how YAML writes it. No setting can
    mean one, and no JSON file (run.json, results.json) or request can hold one. Walked with a list, not by
    recursion; each value waits with its parent's place, and the path is spelled only for the value found (a long
    key above many items would otherwise be copied into every item's path)."""
    places: list[tuple[int, Any]] = []  # (parent place, key)
    pending: list[tuple[Any, int]] = []
    for key, value in reversed(data.items()):  # the next one last
        places.append((-1, key))
        pending.append((value, len(places) - 1))
    while pending:
        value, place = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return _field(places, place), ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
        children = reversed(value.items()) if isinstance(value, dict) else reversed(list(enumerate(value))) if isinstance(value, list) else ()
        for key, item in children:
            places.append((place, key))
            pending.append((item, len(places) - 1))
    return None


def _field(places: list[tuple[int, Any]], place: int) -> str:
    keys: list[str] = []
    while place >= 0:
        place, key = places[place]
        keys.append(str(key)[:60])
    return ".".join(reversed(keys))


MAX_INCLUDE_DEPTH = 8


def _include_target(path: Path, include: str, root: Path | None) -> Path | None:
    """The file an ``include`` names: next to the including file, else in a registered task folder.

    Only a YAML file inside the including file's folder, the task folder it was found in (``root``: an
    ``--include_path`` folder or a plugin's) or a registered task folder can be named (links and ``..``
    resolved first): a task file from elsewhere must not read, and show in an error line, a file of the
    user's such as a credentials file."""
    from vlmbench.pluginmanager import task_dirs

    registered = [folder.resolve() for folder in task_dirs()]
    folders = [path.parent, *([root.resolve()] if root else []), *registered]
    candidates = [path.parent / include]
    if not Path(include).is_absolute():
        candidates += [folder / include for folder in registered]
    found = next((c for c in candidates if _is_file(c)), None)
    if found is None:
        return None
    try:
        target = found.resolve()
    except (OSError, RuntimeError):
        return found  # a link loop: reported by the caller
    if target.suffix not in (".yaml", ".yml") or not any(target.is_relative_to(folder) for folder in folders):
        raise UserError(
            f"{path}: field 'include' = '{include}': only a .yaml file in this file's folder, its task folder or a registered "
            "task folder can be included; copy the file you meant next to this task file"
        )
    return target


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the system cannot look up (too long, say)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _with_includes(path: Path, seen: tuple[Path, ...] = (), root: Path | None = None) -> dict[str, Any]:
    """The file's fields merged over those of the file it ``include``s (recursively); ``root``: the task folder
    the first file was found in."""
    try:
        path = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link that leads back to itself (RuntimeError before Python 3.13)
        raise UserError(f"{path}: cannot be followed ({type(exc).__name__}: a symbolic link loop?); point the link at a task file") from None
    if path in seen:
        raise UserError(f"{path}: field 'include' forms a cycle ({' -> '.join(p.name for p in (*seen, path))}); remove one include")
    if len(seen) >= MAX_INCLUDE_DEPTH:
        raise UserError(f"{seen[0]}: field 'include' chains more than {MAX_INCLUDE_DEPTH} files; include fewer levels")
    data = read_yaml(path)
    if "answer_parser" in data and "scorer" not in data:  # the field's earlier name
        data["scorer"] = data.pop("answer_parser")
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise UserError(f"{path}: field 'include' = {include!r}: expected a file name relative to this file")
    base_path = _include_target(path, include, root)
    if base_path is None:
        raise UserError(f"{path}: field 'include' = '{include}': no such file next to it or in the built-in task folders; fix the file name")
    merged = _with_includes(base_path, (*seen, path), root)
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
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[str(validator)]
        return f"expected a number {op} {value}"
    if validator == "pattern":
        description = error.schema.get("description") if isinstance(error.schema, dict) else None
        return f"expected {description}" if description else f"expected text matching {value}"
    if validator in ("minItems", "minLength"):
        return f"expected at least {value} {'items' if validator == 'minItems' else 'characters'}"
    if validator == "required":
        return "add the missing field"
    return str(error.message)


def _schema_error(path: Path, error: jsonschema.ValidationError, allowed: list[str]) -> str:
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - known)
        name = extra[0] if extra else "?"
        where = _field_path(error)
        prefix = "" if where == "(top level)" else f"{where}."
        hint = did_you_mean(name, known or allowed)
        return f"{path}: field '{prefix}{name}': unknown field{hint}; remove or rename it"
    if error.validator == "required":
        missing = [r for r in error.validator_value if r not in error.instance]
        where = _field_path(error)
        prefix = "" if where == "(top level)" else f"{where}."
        return f"{path}: field '{prefix}{missing[0]}' is missing; add it (see `vlmbench validate` docs)"
    if error.validator == "oneOf" and error.context:
        # Report the alternative that got furthest (deepest path) rather than "not valid under any".
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(error.absolute_path):
            return _schema_error(path, best, allowed)
        return f"{path}: field '{_field_path(error)}' = {json.dumps(error.instance, default=str)[:80]}: {_oneof_expectation(error)}"
    value = json.dumps(error.instance, default=str)
    if len(value) > 80:
        value = value[:77] + "..."
    return f"{path}: field '{_field_path(error)}' = {value}: {_expected(error)}"


def _oneof_expectation(error: jsonschema.ValidationError) -> str:
    description = error.schema.get("description")
    if description:
        return f"expected {description}"
    return "expected " + " or ".join(sorted({_expected(e).removeprefix("expected ") for e in error.context}))


_PROBLEMS: OrderedDict[tuple[str, str, bool, str], list[str]] = OrderedDict()  # the last files checked: every command loads the tasks


def _schema_problems(path: Path, data: dict[str, Any], definition: str, partial: bool = False) -> list[str]:
    """One line per schema problem of ``data`` (for a template file, required fields are not required).
    The same data of the same file is checked once per process (``repr`` tells YAML's plain types apart)."""
    key = (str(path), definition, partial, repr(data))
    if len(key[3]) > 64_000:  # not a task file's size: checked, not kept
        return _check_schema(path, data, definition, partial)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = _check_schema(path, data, definition, partial)
        if len(_PROBLEMS) > 256:
            _PROBLEMS.popitem(last=False)
    return list(_PROBLEMS[key])


def _pattern_to_the_end(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    """JSON Schema's ``pattern`` with a final ``$`` read as ECMA-262 reads it, the end of the text: Python's
    ``$`` also matches before a last newline, which would let "all\n" pass as a name."""
    import jsonschema

    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    if re.search(pattern, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=1)
def task_validator() -> Any:
    """The validator class task files and step arguments are explained with: Draft 2020-12, patterns anchored
    as the schema's standard says. (Imported only for a document that fails the quick check.)"""
    import jsonschema

    return jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern_to_the_end})


@lru_cache(maxsize=8)
def _definition_schema(definition: str, partial: bool) -> dict[str, Any]:
    schema = task_schema()
    target = dict(schema["$defs"][definition])
    if partial:
        target.pop("required", None)
    return {"$defs": schema["$defs"], **target}


def _check_schema(path: Path, data: dict[str, Any], definition: str, partial: bool) -> list[str]:
    document = _definition_schema(definition, partial)
    quick = quick_validator(document)
    if quick is not None and quick(data):
        return []
    import jsonschema

    validator = task_validator()(document)
    allowed = list(document.get("properties", {}))
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        best = jsonschema.exceptions.best_match([error])
        line = _schema_error(path, best if best is not None else error, allowed)
        if line not in problems:
            problems.append(line)
    return problems


def _registry_problems(path: Path, data: dict[str, Any], where: str = "") -> list[str]:
    """Names in the file that no plugin registers (scorer, metrics, steps), and bad step arguments."""
    from vlmbench.pluginmanager import doc_step_specs, metric_specs, scorer_specs

    problems = []
    scorer = data.get("scorer")
    scorers = scorer_specs()
    if isinstance(scorer, str) and scorer not in scorers:
        problems.append(
            f"{path}: field '{where}scorer' = \"{scorer}\": unknown scorer{did_you_mean(scorer, scorers)}; registered: {', '.join(scorers)}"
        )
    judges = data.get("judge")
    for index, judge in enumerate([judges] if isinstance(judges, str) else judges if isinstance(judges, list) else []):
        if isinstance(judge, str) and judge not in scorers:
            field = f"{where}judge" if isinstance(judges, str) else f"{where}judge.{index}"
            problems.append(f"{path}: field '{field}' = \"{judge}\": unknown judge{did_you_mean(judge, scorers)}; registered: {', '.join(scorers)}")
    metrics = metric_specs()
    for index, item in enumerate(data.get("metric_list") or []):
        name = item.get("metric") if isinstance(item, dict) else None
        if isinstance(name, str) and name not in metrics:
            problems.append(
                f"{path}: field '{where}metric_list.{index}.metric' = \"{name}\": unknown metric{did_you_mean(name, metrics)}; "
                f"registered: {', '.join(metrics)}"
            )
    steps = doc_step_specs()
    for index, step in enumerate(data.get("process_docs") or []):
        name, args = (step, None) if isinstance(step, str) else next(iter(step.items()), (None, None)) if isinstance(step, dict) else (None, None)
        if not isinstance(name, str):
            continue
        if name not in steps:
            problems.append(
                f"{path}: field '{where}process_docs.{index}' = \"{name}\": unknown document step{did_you_mean(name, steps)}; "
                f"registered: {', '.join(steps)}"
            )
            continue
        error = _step_args_error(steps[name].args_schema, args or {})
        if error is not None:
            field = ".".join([f"{where}process_docs.{index}.{name}", *(str(p) for p in error.absolute_path)])
            if error.validator == "additionalProperties":
                problems.append(f"{path}: field '{field}': {error.message}; see the step's arguments in the README")
            else:
                problems.append(f"{path}: field '{field}' = {json.dumps(error.instance, default=str)[:60]}: {_expected(error)}")
    return problems


def _step_args_error(schema: Mapping[str, Any], args: Any) -> jsonschema.ValidationError | None:
    """The error that best explains why a step's arguments fail its schema, or None when they pass."""
    quick = quick_validator(schema)
    if quick is not None and quick(args):
        return None
    import jsonschema

    error: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(task_validator()(dict(schema)).iter_errors(args))
    return error


def _template_problems(path: Path, data: dict[str, Any], where: str = "") -> list[str]:
    """Templates that do not compile (checked at load, so `validate` catches them before a run)."""
    from vlmbench.templates import compile_template

    problems = []
    texts = data.get("doc_to_text")
    for index, text in enumerate([texts] if isinstance(texts, str) else texts if isinstance(texts, list) else []):
        field = f"{where}doc_to_text" + ("" if isinstance(texts, str) else f".{index}")
        try:
            compile_template(path, field, text) if isinstance(text, str) else None
        except UserError as exc:
            problems.append(str(exc))
    if isinstance(data.get("doc_to_target"), str):
        try:
            compile_template(path, f"{where}doc_to_target", data["doc_to_target"])
        except UserError as exc:
            problems.append(str(exc))
    return problems


def _task_problems(path: Path, data: dict[str, Any], partial: bool = False) -> list[str]:
    problems = _schema_problems(path, data, "task", partial)
    if problems:
        return problems
    problems = _registry_problems(path, data) + _template_problems(path, data)
    for name, overrides in (data.get("variants") or {}).items():
        merged = {k: v for k, v in data.items() if k != "variants"} | overrides
        variant_problems = _schema_problems(path, merged, "task", partial)  # a variant must still make a whole valid task
        problems += variant_problems or _registry_problems(path, overrides, f"variants.{name}.") + _template_problems(
            path, overrides, f"variants.{name}."
        )
    return problems


def is_template(path: Path) -> bool:
    """Include-only files (``_*.yaml``) are templates: partial tasks, not tasks."""
    return Path(path).name.startswith("_")


def load_file(path: Path, root: Path | None = None) -> TaskConfig | GroupConfig | None:
    """Load and validate one task or group YAML file; a template file (``_*.yaml``) is checked
    as a partial task and gives None. Every problem of the file is reported, one line each.
    ``root``: the task folder the file was found in, whose files its ``include:`` may name."""
    path = Path(path)
    data = _with_includes(path, root=root)
    if "group" in data and isinstance(data.get("task"), list):
        problems = _schema_problems(path, data, "group")
        if problems:
            raise UserError("\n".join(problems))
        return GroupConfig(data["group"], path, list(data["task"]), data.get("description", ""))
    problems = _task_problems(path, data, partial=is_template(path))
    if problems:
        raise UserError("\n".join(problems))
    if is_template(path):
        return None
    if str(data.get("dataset_path", "")).startswith(BUILTIN_CONCEPT_DATA) and not data.get("concepts_file"):
        data["concepts_file"] = str(_builtin_concepts_file(path))
    return TaskConfig(data["task"], path, data)


BUILTIN_CONCEPT_DATA = "builtin:typographic"


def _builtin_concepts_file(path: Path) -> Path:
    """The concept catalogue shipped with the built-in tasks (the default for the built-in data)."""
    from vlmbench.pluginmanager import task_dirs

    for folder in task_dirs():
        candidate = folder / "data" / "concepts.yaml"
        if candidate.is_file():
            return candidate.resolve()
    raise UserError(f"{path}: field 'concepts_file' is missing and no built-in concept catalogue is installed; set concepts_file")
