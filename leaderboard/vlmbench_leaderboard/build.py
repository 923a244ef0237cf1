"""Build the static leaderboard site from a data folder: tables (md/csv/json), index.html and SVG plots.

Input: ``DATA_DIR/<entry id>/metadata.json`` and ``results.json``, one folder per accepted model and
revision (as ``vlmbench leaderboard add`` writes them). Everything in those files is third-party input:
it is validated against the shipped schemas and escaped in every output (HTML through Jinja2
autoescape, the page's data as JSON with ``<``, ``>``, ``&`` escaped, Markdown by backslash/entity
escaping, CSV against spreadsheet formulas). Output is deterministic: equal input, equal bytes.

The table is declared in ``leaderboard.yaml`` (shipped default; see its header for the keys).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError

Z95 = 1.96
FORMATS = ("percent", "signed_percent", "number", "text")
PATH_KEYS = ("value", "stderr", "ci_low", "ci_high", "weight")
COLUMN_KEYS = ("id", "name", "group", "description", "kind", "source", "format", "digits", "aggregate", "category", *PATH_KEYS)
TOP_KEYS = ("title", "description", "sort", "columns", "detail")
DETAIL_KEYS = ("name", "task", "metric", "gap")
COLUMN_ID = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
CATEGORY = "{category}"
MISSING = object()  # a path that does not exist, as opposed to one that leads to null

# The plots show fixed views of the benchmark's headline numbers.
GAP_ALIGNMENT, GAP_PERCEPTION, HEATMAP_TASK, HEATMAP_METRIC = "alignment-text", "perception-text", "alignment-image", "recall_unsafe"


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Paths:
    """Where a column finds its value (and uncertainty) in a document; each path is a tuple of segments."""

    value: tuple[str, ...]
    stderr: tuple[str, ...] | None = None
    ci_low: tuple[str, ...] | None = None
    ci_high: tuple[str, ...] | None = None
    weight: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Column:
    """One table column, as declared in the config."""

    id: str
    name: str
    group: str
    description: str
    kind: str
    source: str
    format: str
    digits: int
    aggregate: str | None
    paths: Paths
    category: Paths | None

    @property
    def numeric(self) -> bool:
        """Whether values are numbers (sorted numerically, shown formatted)."""
        return self.format != "text"

    @property
    def title(self) -> str:
        """Header text with its group, for flat tables (Markdown)."""
        return f"{self.group}: {self.name}" if self.group else self.name


@dataclass(frozen=True)
class DetailMetric:
    """One column of a model's per-category / per-concept tables: a task's metric, or a modality gap."""

    name: str
    task: str | None
    metric: str | None
    gap: str | None

    @property
    def key(self) -> str:
        """Stable identifier in leaderboard.json."""
        return f"gap:{self.gap}" if self.gap else f"{self.task}:{self.metric}"


@dataclass(frozen=True)
class Config:
    """The parsed, validated table configuration."""

    title: str
    description: str
    sort_column: str
    descending: bool
    category_sort_column: str
    columns: tuple[Column, ...]
    detail: tuple[DetailMetric, ...]

    def column(self, column_id: str) -> Column:
        """The column with this id."""
        return next(c for c in self.columns if c.id == column_id)


def default_config_path() -> Path:
    """The shipped ``leaderboard.yaml``."""
    return Path(str(resources.files("vlmbench_leaderboard").joinpath("leaderboard.yaml")))


def load_config(path: Path | None = None) -> Config:
    """Read and validate a table configuration (the shipped default when ``path`` is None)."""
    import yaml

    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise UserError(f"--config {path}: no such file; pass a leaderboard YAML file or leave --config out for the default")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise UserError(f"{path}: not valid YAML ({where}{_one_line(getattr(exc, 'problem', None) or exc)}); fix the syntax") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    return parse_config(raw, str(path))


def parse_config(raw: Any, where: str) -> Config:
    """Validate a decoded config mapping; every problem is a one-line UserError naming the field."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with keys {', '.join(TOP_KEYS)}; see the shipped leaderboard.yaml")
    _check_keys(raw, TOP_KEYS, where)
    for key in ("columns", "sort"):
        if key not in raw:
            raise UserError(f"{where}: '{key}' is required; see the shipped leaderboard.yaml")
    if not isinstance(raw["columns"], list) or not raw["columns"]:
        raise UserError(f"{where}: columns: expected a non-empty list of column mappings")
    columns = tuple(_parse_column(item, f"{where}: columns[{i}]") for i, item in enumerate(raw["columns"]))
    ids = [c.id for c in columns]
    for column_id in ids:
        if ids.count(column_id) > 1:
            raise UserError(f"{where}: columns: id '{column_id}' is used twice; give each column its own id")
    if [c.kind for c in columns].count("model") != 1:
        raise UserError(f"{where}: columns: exactly one column needs 'kind: model' (the model name, linked to its detail)")
    sort_column, descending, category_sort_column = _parse_sort(raw["sort"], columns, where)
    detail = tuple(_parse_detail(item, f"{where}: detail[{i}]") for i, item in enumerate(_list(raw.get("detail", []), f"{where}: detail")))
    return Config(title=_text(raw.get("title", "vlmbench leaderboard"), f"{where}: title"),
                  description=_text(raw.get("description", ""), f"{where}: description"),
                  sort_column=sort_column, descending=descending, category_sort_column=category_sort_column,
                  columns=columns, detail=detail)


def _parse_sort(raw: Any, columns: Sequence[Column], where: str) -> tuple[str, bool, str]:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: sort: expected a mapping with 'column' and 'direction'")
    _check_keys(raw, ("column", "direction", "category_column"), f"{where}: sort")
    numeric = [c.id for c in columns if c.numeric]
    if raw.get("column") not in numeric:
        raise UserError(f"{where}: sort.column: {raw.get('column')!r} is not a numeric column id (choose one of: {', '.join(numeric)})")
    direction = raw.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise UserError(f"{where}: sort.direction: {direction!r} is not valid; use asc or desc")
    per_category = [c.id for c in columns if c.numeric and c.category is not None]
    category_column = raw.get("category_column", raw["column"])
    if category_column not in per_category and (category_column != raw["column"] or "category_column" in raw):
        raise UserError(f"{where}: sort.category_column: {category_column!r} is not a column with per-category values "
                        f"(choose one of: {', '.join(per_category)})")
    return raw["column"], direction == "desc", category_column


def _parse_column(raw: Any, where: str) -> Column:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with id, name and value")
    column_id = raw.get("id")
    if not isinstance(column_id, str) or not COLUMN_ID.match(column_id) or column_id == "rank":
        raise UserError(f"{where}: id: {column_id!r} is not valid; use lower-case letters, digits and '_' (not 'rank')")
    where = f"{where} ({column_id})"
    _check_keys(raw, COLUMN_KEYS, where)
    fmt = raw.get("format", "number")
    if fmt not in FORMATS:
        raise UserError(f"{where}: format: {fmt!r} is not valid; use one of {', '.join(FORMATS)}")
    source = raw.get("source", "results")
    if source not in ("results", "metadata"):
        raise UserError(f"{where}: source: {source!r} is not valid; use results or metadata")
    kind = raw.get("kind", "value")
    if kind not in ("value", "model"):
        raise UserError(f"{where}: kind: {kind!r} is not valid; use model, or leave it out")
    aggregate = raw.get("aggregate")
    if aggregate not in (None, "mean"):
        raise UserError(f"{where}: aggregate: {aggregate!r} is not valid; use mean, or leave it out")
    digits = raw.get("digits", 1)
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 6:
        raise UserError(f"{where}: digits: {digits!r} is not valid; use a whole number from 0 to 6")
    if "value" not in raw:
        raise UserError(f"{where}: 'value' is required: a path into results.json such as tasks.alignment-image.metrics.balanced_accuracy.value")
    schema = _metadata_schema() if source == "metadata" else _results_schema()
    paths = _parse_paths(raw, where, schema, fmt, aggregate, category=False)
    category = None
    if raw.get("category") is not None:
        if not isinstance(raw["category"], dict):
            raise UserError(f"{where}: category: expected a mapping of paths (value, stderr, ...) holding {CATEGORY}")
        _check_keys(raw["category"], PATH_KEYS, f"{where}: category")
        if "value" not in raw["category"]:
            raise UserError(f"{where}: category: 'value' is required, a path holding {CATEGORY}")
        category = _parse_paths(raw["category"], f"{where}: category", schema, fmt, aggregate, category=True)
    return Column(id=column_id, name=_text(raw.get("name", column_id), f"{where}: name"),
                  group=_text(raw.get("group", ""), f"{where}: group"),
                  description=_text(raw.get("description", ""), f"{where}: description"),
                  kind=kind, source=source, format=fmt, digits=digits, aggregate=aggregate, paths=paths, category=category)


def _parse_paths(raw: dict, where: str, schema: dict, fmt: str, aggregate: str | None, category: bool) -> Paths:
    if raw.get("weight") is not None and aggregate is None:
        raise UserError(f"{where}: weight: only meaningful with 'aggregate: mean'; add it or remove weight")
    parsed: dict[str, tuple[str, ...] | None] = {}
    for key in PATH_KEYS:
        if raw.get(key) is None:
            parsed[key] = None
            continue
        segments = _parse_path(raw[key], f"{where}: {key}", aggregate is not None, category)
        leaf = "text" if key == "value" and fmt == "text" else "number"
        _check_schema_path(schema, segments, f"{where}: {key}", leaf)
        parsed[key] = segments
    return Paths(**parsed)  # type: ignore[arg-type]


def _parse_path(text: Any, where: str, star: bool, category: bool) -> tuple[str, ...]:
    if not isinstance(text, str) or not text:
        raise UserError(f"{where}: expected a dotted path such as tasks.alignment-image.metrics.recall_unsafe.value")
    segments = tuple(text.split("."))
    for segment in segments:
        if segment not in ("*", CATEGORY) and not SEGMENT.match(segment):
            raise UserError(f"{where}: path {text!r} has an invalid segment {segment!r}; use letters, digits, '-', '_', '*' or {CATEGORY}")
    if segments.count("*") != (1 if star else 0):
        need = "exactly one '*' segment (aggregate: mean)" if star else "no '*' (add 'aggregate: mean' to average over matches)"
        raise UserError(f"{where}: path {text!r} needs {need}")
    if segments.count(CATEGORY) != (1 if category else 0):
        need = f"exactly one {CATEGORY} segment" if category else f"no {CATEGORY} (that belongs under 'category:')"
        raise UserError(f"{where}: path {text!r} needs {need}")
    return segments


def _parse_detail(raw: Any, where: str) -> DetailMetric:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with name and task+metric, or name and gap")
    _check_keys(raw, DETAIL_KEYS, where)
    name = _text(raw.get("name", ""), f"{where}: name")
    if raw.get("gap") is not None:
        if raw.get("task") is not None or raw.get("metric") is not None:
            raise UserError(f"{where}: give either gap or task+metric, not both")
        gap = _text(raw["gap"], f"{where}: gap")
        _check_schema_path(_results_schema(), ("modality_gaps", gap, "by_category", "x", "gap"), f"{where}: gap", "number")
        return DetailMetric(name or gap, None, None, gap)
    task, metric = raw.get("task"), raw.get("metric")
    if not isinstance(task, str) or not isinstance(metric, str) or not SEGMENT.match(task):
        raise UserError(f"{where}: needs task and metric (e.g. task: alignment-image, metric: recall_unsafe), or gap")
    _check_schema_path(_results_schema(), ("tasks", task, "by_category", "x", metric, "value"), f"{where}: metric", "number")
    return DetailMetric(name or f"{task} {metric}", task, metric, None)


def _check_keys(raw: dict, known: Sequence[str], where: str) -> None:
    for key in raw:
        if key not in known:
            raise UserError(f"{where}: unknown key {key!r} (known: {', '.join(known)}); fix or remove it")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where}: expected text, got {value!r}")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise UserError(f"{where}: expected a list")
    return value


# --------------------------------------------------------------------------------------------------
# Schemas: config paths are checked against them; entries are validated with them.


# Private copies, read from the package: schema compilers rewrite the dicts they are given.
@lru_cache(maxsize=1)
def _results_schema() -> dict[str, Any]:
    return json.loads(resources.files("vlmbench.schemas").joinpath("results.schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _metadata_schema() -> dict[str, Any]:
    schema = json.loads(resources.files("vlmbench.schemas").joinpath("bundle.schema.json").read_text(encoding="utf-8"))
    return {"$defs": schema["$defs"], **schema["properties"]["metadata"]}


def _resolve_ref(root: dict, node: Any) -> dict:
    """Follow local ``$ref``s (``#/$defs/x``) until a concrete schema node."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = root
        for part in node["$ref"].partition("#")[2].strip("/").split("/"):
            target = target[part]
        node = target
    return node if isinstance(node, dict) else {}


def _check_schema_path(root: dict, segments: tuple[str, ...], where: str, leaf: str) -> None:
    """Walk ``segments`` through a JSON Schema; a field the schema forbids or a wrong leaf type is an error."""
    node = _resolve_ref(root, root)
    for depth, segment in enumerate(segments):
        here = ".".join(segments[:depth]) or "the top level"
        types = _types(node)
        if types and "object" not in types:
            raise UserError(f"{where}: path {'.'.join(segments)!r} goes past a value at {here!r}; shorten it")
        properties = node.get("properties", {})
        patterns = node.get("patternProperties", {})
        extra = node.get("additionalProperties", True)
        if segment not in ("*", CATEGORY) and segment in properties:
            node = _resolve_ref(root, properties[segment])
        elif segment not in ("*", CATEGORY) and any(re.search(p, segment) for p in patterns):
            node = _resolve_ref(root, next(s for p, s in patterns.items() if re.search(p, segment)))
        elif isinstance(extra, dict):
            node = _resolve_ref(root, extra)
        elif extra is True:
            return  # free-form below here: nothing more to check
        else:
            known = ", ".join([*properties, *(f"/{p}/" for p in patterns)])
            raise UserError(f"{where}: {segment!r} is not a field of {here!r} (known: {known}); fix the path")
    types = _types(node)
    allowed = {"number", "integer"} | ({"string"} if leaf == "text" else set())
    if types and not allowed & set(types):
        raise UserError(f"{where}: path {'.'.join(segments)!r} leads to {'/'.join(sorted(types))}, not a {leaf}; extend the path (e.g. .value)")


def _types(node: dict) -> list[str]:
    types = node.get("type", [])
    return [types] if isinstance(types, str) else list(types)


# --------------------------------------------------------------------------------------------------
# Entries


@dataclass(frozen=True)
class Entry:
    """One accepted model+revision: its folder name, page anchor, metadata and results."""

    id: str
    anchor: str
    metadata: dict[str, Any]
    results: dict[str, Any]

    @property
    def name(self) -> str:
        """The model's display name."""
        return self.metadata["name"]

    @property
    def reference(self) -> bool:
        """A built-in baseline, shown but not ranked."""
        return bool(self.metadata.get("reference"))

    def document(self, source: str) -> dict[str, Any]:
        """The document a column's paths point into."""
        return self.metadata if source == "metadata" else self.results


def load_entries(data_dir: Path) -> list[Entry]:
    """Read and validate every entry folder under ``data_dir`` (folders starting with '.' are staging, skipped)."""
    data_dir = Path(data_dir)
    hint = "pass the folder that `vlmbench leaderboard add --data` filled"
    if not data_dir.exists():
        raise UserError(f"{data_dir}: no such data folder; {hint}")
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: not a folder; {hint}")
    folders = sorted((p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if not folders:
        raise UserError(f"{data_dir}: no entries (no entry folders); add bundles with `vlmbench leaderboard add BUNDLE --data {data_dir}`")
    entries, anchors = [], set()
    for folder in folders:
        for name in ("metadata.json", "results.json"):
            if not (folder / name).is_file():
                raise UserError(f"{folder}: no {name}; every entry needs metadata.json and results.json "
                                "(re-add it with `vlmbench leaderboard add`) or remove the folder")
        metadata = _read_json(folder / "metadata.json")
        _validate_metadata(metadata, folder / "metadata.json")
        results = _read_json(folder / "results.json")
        _validate_results(results, folder / "results.json")
        anchor = _unique(f"detail-{re.sub(r'[^A-Za-z0-9_-]+', '-', folder.name)}", anchors)
        entries.append(Entry(folder.name, anchor, metadata, results))
    return entries


def _unique(anchor: str, taken: set[str]) -> str:
    candidate, n = anchor, 1
    while candidate in taken:
        n += 1
        candidate = f"{anchor}-{n}"
    taken.add(candidate)
    return candidate


def _read_json(path: Path) -> Any:
    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=reject)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8; re-add the entry from its bundle with `vlmbench leaderboard add`") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); re-add the entry with `vlmbench leaderboard add`") from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); re-add the entry with `vlmbench leaderboard add`") from None


@lru_cache(maxsize=1)
def _metadata_validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(copy.deepcopy(_metadata_schema()))


def _validate_metadata(metadata: Any, path: Path) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(_metadata_validator().iter_errors(metadata))
    if error is not None:
        field_path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise UserError(f"{path}: field {field_path}: {_one_line(error.message)[:200]}; fix metadata.json")


@lru_cache(maxsize=1)
def _results_validator() -> Any:
    import fastjsonschema

    return fastjsonschema.compile(copy.deepcopy(_results_schema()))


def _validate_results(results: Any, path: Path) -> None:
    import fastjsonschema

    try:
        _results_validator()(results)
    except fastjsonschema.JsonSchemaException as exc:
        raise UserError(f"{path}: does not match the results schema ({_one_line(exc.message)[:200]}); "
                        "re-add the entry from a verified bundle") from None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Cell:
    """A table value with its uncertainty (either a standard error or a 95% CI, or none)."""

    value: float | str | None
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def lookup(document: Any, segments: Sequence[str]) -> Any:
    """The value at a path of keys; ``MISSING`` where a key is absent, None where the path meets null."""
    node = document
    for segment in segments:
        if node is None:
            return None
        if not isinstance(node, dict) or segment not in node:
            return MISSING
        node = node[segment]
    return node


def _fill(segments: tuple[str, ...] | None, category: str | None, star: str | None = None) -> tuple[str, ...] | None:
    if segments is None:
        return None
    return tuple(category if s == CATEGORY else star if s == "*" else s for s in segments)  # type: ignore[misc]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def column_cell(column: Column, entry: Entry, category: str | None = None) -> Cell:
    """The value of ``column`` for ``entry``: overall, or for one category (``column.category`` paths)."""
    paths = column.paths if category is None else column.category
    if paths is None:
        return Cell(None)
    document = entry.document(column.source)
    if column.aggregate == "mean":
        return Cell(_mean(document, paths, category))
    value = lookup(document, _fill(paths.value, category))  # type: ignore[arg-type]
    if column.format == "text":
        return Cell(value if isinstance(value, str) else (None if value in (None, MISSING) else str(value)))
    extra = {key: _number(lookup(document, _fill(getattr(paths, key), category))) if getattr(paths, key) else None  # type: ignore[arg-type]
             for key in ("stderr", "ci_low", "ci_high")}
    number = _number(value)
    return Cell(number, **extra) if number is not None else Cell(None)


def _mean(document: Any, paths: Paths, category: str | None) -> float | None:
    star = paths.value.index("*")
    parent = lookup(document, _fill(paths.value[:star], category))  # type: ignore[arg-type]
    if not isinstance(parent, dict):
        return None
    total = weights = 0.0
    for key in sorted(parent):
        value = _number(lookup(document, _fill(paths.value, category, key)))  # type: ignore[arg-type]
        weight = _number(lookup(document, _fill(paths.weight, category, key))) if paths.weight else 1.0  # type: ignore[arg-type]
        if value is not None and weight:
            total += value * weight
            weights += weight
    return total / weights if weights else None


def _path_found(document: Any, segments: tuple[str, ...]) -> bool:
    """Whether the part of a path before any placeholder exists (null along the way counts as found)."""
    cut = next((i for i, s in enumerate(segments) if s in ("*", CATEGORY)), len(segments))
    return lookup(document, segments[:cut]) is not MISSING


def check_columns_resolve(config: Config, entries: Sequence[Entry], where: str) -> None:
    """A column whose path exists in no entry at all is almost surely a typo (e.g. a task name)."""
    for column in config.columns:
        if column.source == "metadata":
            continue
        if not any(_path_found(e.results, column.paths.value) for e in entries):
            tasks = sorted({t for e in entries for t in e.results.get("tasks", {})})
            raise UserError(f"{where}: column {column.id}: path {'.'.join(column.paths.value)!r} is in no entry's results.json "
                            f"(their tasks: {', '.join(tasks)}); fix the path")


# --------------------------------------------------------------------------------------------------
# Formatting


def format_number(value: float, fmt: str, digits: int) -> str:
    """A value as shown: percent (x100), signed percent, or plain number; never '-0.0'."""
    scaled = value * 100 if fmt in ("percent", "signed_percent") else value
    text = f"{scaled:+.{digits}f}" if fmt == "signed_percent" else f"{scaled:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return text


def format_cell(cell: Cell, fmt: str, digits: int) -> tuple[str, str]:
    """``(main, uncertainty)`` display text: ``("48.8", "± 3.6")``, ``("+1.2", "[-0.4, +2.8]")``, ``("-", "")``."""
    if cell.value is None:
        return "-", ""
    if fmt == "text" or isinstance(cell.value, str):
        return str(cell.value), ""
    main = format_number(cell.value, fmt, digits)
    if cell.stderr is not None:
        half = Z95 * cell.stderr * (100 if fmt in ("percent", "signed_percent") else 1)
        return main, f"± {half:.{digits}f}"
    if cell.ci_low is not None and cell.ci_high is not None:
        return main, f"[{format_number(cell.ci_low, fmt, digits)}, {format_number(cell.ci_high, fmt, digits)}]"
    return main, ""


def cell_text(cell: Cell, fmt: str, digits: int) -> str:
    """Display text in one string, for Markdown and JSON."""
    main, unc = format_cell(cell, fmt, digits)
    return f"{main} {unc}" if unc else main


# --------------------------------------------------------------------------------------------------
# Ranking


def tied(a: Cell, b: Cell) -> bool:
    """Whether two values are indistinguishable: within 1.96*sqrt(se_a²+se_b²), or overlapping 95% CIs.

    Without an uncertainty on both sides only equal values tie.
    """
    if a.value is None or b.value is None:
        return False
    if a.value == b.value:
        return True
    if a.stderr is not None and b.stderr is not None:
        return abs(a.value - b.value) < Z95 * math.sqrt(a.stderr ** 2 + b.stderr ** 2)  # type: ignore[operator]
    if None not in (a.ci_low, a.ci_high, b.ci_low, b.ci_high):
        return a.ci_low <= b.ci_high and b.ci_low <= a.ci_high  # type: ignore[operator]
    return False


def rank_labels(cells: Sequence[Cell]) -> list[tuple[str, int]]:
    """Ranks for cells already sorted best first: ``("1", 1)``, or ``("=2", 2)`` for each of a tied group.

    A model tied with the next better one shares its rank (so ties chain); the rank after a group of k
    models at rank r is r+k.
    """
    ranks: list[int] = []
    for i, cell in enumerate(cells):
        ranks.append(ranks[-1] if i and tied(cells[i - 1], cell) else i + 1)
    return [(f"={r}" if ranks.count(r) > 1 else str(r), r) for r in ranks]


def _sort_key(cell: Cell, entry: Entry, descending: bool) -> tuple:
    value = cell.value if isinstance(cell.value, float) else None
    ordered = 0.0 if value is None else (-value if descending else value)
    meta = entry.metadata
    return (value is None, ordered, meta["name"].casefold(), meta["name"], meta.get("org") or "", meta.get("revision") or "", entry.id)


def ranks_for(cells: dict[str, Cell], entries: Sequence[Entry], descending: bool) -> dict[str, tuple[str, int | None]]:
    """Rank label and number per entry id; reference rows get ``("ref", None)``, rows without a value ``("-", None)``."""
    ranked = sorted((e for e in entries if not e.reference and cells[e.id].value is not None),
                    key=lambda e: _sort_key(cells[e.id], e, descending))
    labels = dict(zip((e.id for e in ranked), rank_labels([cells[e.id] for e in ranked])))
    return {e.id: ("ref", None) if e.reference else labels.get(e.id, ("-", None)) for e in entries}


# --------------------------------------------------------------------------------------------------
# The board: every value the outputs show, computed once.


@dataclass
class Row:
    """One entry's line in the table, in display order."""

    entry: Entry
    cells: dict[str, Cell]
    by_category: dict[str, dict[str, Cell]]
    ranks: dict[str, tuple[str, int | None]]  # "" = overall, else per category
    detail_categories: dict[str, dict[str, Cell]] = field(default_factory=dict)
    detail_concepts: dict[str, dict[str, Cell]] = field(default_factory=dict)


@dataclass
class Board:
    """The whole leaderboard, ready to render."""

    config: Config
    rows: list[Row]
    categories: list[str]


def make_board(config: Config, entries: Sequence[Entry]) -> Board:
    """Compute every cell, rank and detail table, rows in the default order (sort column, then name)."""
    categories = _categories(config, entries)
    sort = config.column(config.sort_column)
    cells = {e.id: {c.id: column_cell(c, e) for c in config.columns} for e in entries}
    by_category = {e.id: {cat: {c.id: column_cell(c, e, cat) for c in config.columns if c.category} for cat in categories}
                   for e in entries}
    overall = ranks_for({k: v[sort.id] for k, v in cells.items()}, entries, config.descending)
    ranks = {e.id: {"": overall[e.id]} for e in entries}
    by = config.column(config.category_sort_column)
    for cat in categories:
        source = {k: (v[cat][by.id] if by.category else cells[k][by.id]) for k, v in by_category.items()}
        for entry_id, label in ranks_for(source, entries, config.descending).items():
            ranks[entry_id][cat] = label
    ordered = sorted(entries, key=lambda e: _sort_key(cells[e.id][sort.id], e, config.descending))
    rows = [Row(e, cells[e.id], by_category[e.id], ranks[e.id], *_detail_tables(config, e)) for e in ordered]
    return Board(config, rows, categories)


def _categories(config: Config, entries: Sequence[Entry]) -> list[str]:
    """The categories the filter offers: the keys found where ``{category}`` stands in a per-category column.

    Aggregate (``*``) columns do not add categories: over every task they would bring in those of
    unrelated tasks (general capability's "colour", "counting"...).
    """
    found: set[str] = set()
    for column in config.columns:
        if column.category is None or column.source != "results" or column.aggregate:
            continue
        stem = column.category.value[:column.category.value.index(CATEGORY)]
        for entry in entries:
            node = lookup(entry.results, stem)
            if isinstance(node, dict):
                found.update(node)
    return sorted(found, key=lambda c: (c.casefold(), c))


def _detail_tables(config: Config, entry: Entry) -> tuple[dict[str, dict[str, Cell]], dict[str, dict[str, Cell]]]:
    """Per-category and per-concept cells of one entry, by row name then detail metric key."""
    results = entry.results
    categories: dict[str, dict[str, Cell]] = {}
    concepts: dict[str, dict[str, Cell]] = {}
    for metric in config.detail:
        if metric.gap:
            gaps = lookup(results, ("modality_gaps", metric.gap, "by_category"))
            for cat, gap in (gaps.items() if isinstance(gaps, dict) else ()):
                if isinstance(gap, dict):
                    categories.setdefault(cat, {})[metric.key] = Cell(_number(gap.get("gap")), None,
                                                                      _number(gap.get("ci_low")), _number(gap.get("ci_high")))
            continue
        for scope, table in (("by_category", categories), ("by_concept", concepts)):
            group = lookup(results, ("tasks", metric.task, scope))  # type: ignore[arg-type]
            for name, summary in (group.items() if isinstance(group, dict) else ()):
                stat = summary.get(metric.metric) if isinstance(summary, dict) else None
                row = table.setdefault(name, {})
                if isinstance(stat, dict):
                    row[metric.key] = Cell(_number(stat.get("value")), _number(stat.get("stderr")))
    key = lambda item: (item[0].casefold(), item[0])  # noqa: E731
    return dict(sorted(categories.items(), key=key)), dict(sorted(concepts.items(), key=key))


def detail_format(metric: DetailMetric) -> str:
    """Gaps are signed, the rest plain percent."""
    return "signed_percent" if metric.gap else "percent"


# --------------------------------------------------------------------------------------------------
# Outputs


def render_markdown(board: Board) -> str:
    """``leaderboard.md``: a GitHub-flavoured table with a legend."""
    from tabulate import tabulate

    config = board.config
    headers = ["Rank", *(_md_escape(c.title) for c in config.columns)]
    body = []
    for row in board.rows:
        line = [row.ranks[""][0]]
        for column in config.columns:
            text = cell_text(row.cells[column.id], column.format, column.digits)
            text = _md_escape(text) if column.format == "text" else text  # numbers and CIs are ours: no markup
            if column.kind == "model" and row.entry.reference:
                text = f"_{text}_ (reference)"
            line.append(text)
        body.append(line)
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    parts = [f"# {_md_escape(config.title)}", ""]
    if config.description:
        parts += [_md_escape(config.description), ""]
    parts += [table, "", _legend(board)]
    return "\n".join(parts) + "\n"


def _legend(board: Board) -> str:
    config = board.config
    sort, by = config.column(config.sort_column), config.column(config.category_sort_column)
    direction = "highest first" if config.descending else "lowest first"
    within = f"; within a category, by {by.title}" if by.id != sort.id else ""
    return (f"Ranked by {sort.title} ({direction}{within}). \"=\" marks a shared rank: the difference to the next better model "
            "is within the 95% confidence interval. \"ref\" rows are reference baselines, not ranked. "
            "\"± x\" is the 95% CI half-width (1.96 × standard error); \"[low, high]\" is a 95% CI; values are percent; "
            "\"-\" means no value.")


def _md_escape(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_csv(board: Board) -> str:
    """``leaderboard.csv``: raw numbers (fractions, not percent) with their uncertainty columns."""
    config = board.config
    header = ["rank", "tied", "reference", "entry"]
    for column in config.columns:
        header.append(column.id)
        header += [f"{column.id}_{key}" for key in ("stderr", "ci_low", "ci_high") if getattr(column.paths, key)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in board.rows:
        label, rank = row.ranks[""]
        line = ["" if rank is None else str(rank), "true" if label.startswith("=") else "false",
                "true" if row.entry.reference else "false", _csv_text(row.entry.id)]
        for column in config.columns:
            cell = row.cells[column.id]
            line.append(_csv_text(cell.value) if isinstance(cell.value, str) else _csv_number(cell.value))
            line += [_csv_number(getattr(cell, key)) for key in ("stderr", "ci_low", "ci_high") if getattr(column.paths, key)]
        writer.writerow(line)
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _csv_text(text: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheet programs; the quote makes it text.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _cell_json(cell: Cell, fmt: str, digits: int) -> dict[str, Any]:
    out: dict[str, Any] = {"value": cell.value, "text": cell_text(cell, fmt, digits)}
    out.update({key: getattr(cell, key) for key in ("stderr", "ci_low", "ci_high") if getattr(cell, key) is not None})
    return out


def board_json(board: Board) -> dict[str, Any]:
    """The content of ``leaderboard.json``: config summary, rows with values, per-category values and details."""
    config = board.config
    columns = [{"id": c.id, "name": c.name, "group": c.group, "format": c.format, "description": c.description,
                "per_category": c.category is not None} for c in config.columns]
    rows = []
    for row in board.rows:
        label, rank = row.ranks[""]
        rows.append({
            "entry": row.entry.id, "rank": rank, "rank_label": label, "reference": row.entry.reference,
            "metadata": row.entry.metadata, "vlmbench_version": row.entry.results.get("vlmbench_version"),
            "created": row.entry.results.get("created"),
            "values": {c.id: _cell_json(row.cells[c.id], c.format, c.digits) for c in config.columns},
            "by_category": {cat: {"rank": row.ranks[cat][1], "rank_label": row.ranks[cat][0],
                                  "values": {c.id: _cell_json(row.by_category[cat][c.id], c.format, c.digits)
                                             for c in config.columns if c.category}} for cat in board.categories},
            "detail": {"by_category": _detail_json(row.detail_categories, config), "by_concept": _detail_json(row.detail_concepts, config)},
        })
    return {"title": config.title, "description": config.description,
            "sort": {"column": config.sort_column, "direction": "desc" if config.descending else "asc",
                     "category_column": config.category_sort_column},
            "columns": columns, "categories": board.categories,
            "detail_columns": [{"key": m.key, "name": m.name} for m in config.detail], "rows": rows}


def _detail_json(table: dict[str, dict[str, Cell]], config: Config) -> dict[str, Any]:
    return {name: {m.key: _cell_json(cells[m.key], detail_format(m), 1) for m in config.detail if m.key in cells}
            for name, cells in table.items()}


def render_json(board: Board) -> str:
    """``leaderboard.json`` as text (sorted keys, so byte-stable)."""
    return json.dumps(board_json(board), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _page_data(board: Board) -> dict[str, Any]:
    """What the page's script needs: per row, the cells of every category view and the ranks."""
    config = board.config
    numeric = [c for c in config.columns if c.numeric]
    rows = []
    for row in board.rows:
        views = {"": {c.id: _js_cell(row.cells[c.id], c) for c in numeric}}
        for cat in board.categories:
            views[cat] = {c.id: _js_cell(row.by_category[cat][c.id], c) if c.category else None for c in numeric}
        rows.append({"views": views, "ranks": {k: [label, rank] for k, (label, rank) in row.ranks.items()}})
    return {"columns": [{"id": c.id, "numeric": c.numeric, "per_category": c.category is not None} for c in config.columns],
            "sort": {"column": config.sort_column, "direction": "desc" if config.descending else "asc",
                     "category_column": config.category_sort_column},
            "categories": board.categories, "rows": rows}


def _js_cell(cell: Cell, column: Column) -> list[Any]:
    main, unc = format_cell(cell, column.format, column.digits)
    return [cell.value, main, unc]


def script_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _header_rows(config: Config) -> list[dict[str, Any]]:
    """Groups of consecutive columns sharing a ``group`` (the page's first header row)."""
    groups: list[dict[str, Any]] = []
    for column in config.columns:
        if groups and column.group and groups[-1]["group"] == column.group:
            groups[-1]["columns"].append(column)
        else:
            groups.append({"group": column.group, "columns": [column]})
    return groups


def render_html(board: Board, plots: Sequence[dict[str, str]]) -> str:
    """``index.html``: the whole page in one file (CSS and JS inline), working from ``file://``."""
    import jinja2

    package = resources.files("vlmbench_leaderboard")
    css = package.joinpath("page.css").read_text(encoding="utf-8")
    js = package.joinpath("page.js").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = lambda cell, fmt, digits: format_cell(cell, fmt, digits)
    env.filters["datavalue"] = _data_value
    template = env.from_string(package.joinpath("page.html").read_text(encoding="utf-8"))
    config = board.config
    return template.render(
        config=config, board=board, groups=_header_rows(config), plots=plots, legend=_legend(board),
        sort_column=config.sort_column, sort_direction="descending" if config.descending else "ascending",
        detail_format=detail_format, css=_markup(css),
        js=_markup(js), data=_markup(script_json(_page_data(board))),
        csp=f"default-src 'none'; img-src 'self'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
            "base-uri 'none'; form-action 'none'",
        versions=sorted({str(r.entry.results.get("vlmbench_version")) for r in board.rows}),
        ranked=sum(1 for r in board.rows if r.ranks[""][1] is not None),
    )


def _markup(text: str) -> Any:
    from markupsafe import Markup

    return Markup(text)


def _csp_hash(text: str) -> str:
    import base64

    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def _data_value(cell: Cell) -> str:
    """The ``data-value`` a cell sorts by: the number, the text, or '' when missing."""
    if cell.value is None:
        return ""
    return repr(cell.value) if isinstance(cell.value, float) else str(cell.value)


# --------------------------------------------------------------------------------------------------
# Plots


PLOTS = (
    {"file": "plots/modality_gap.svg", "title": "Modality gap",
     "alt": "Left: each model's alignment recall on images (x) against on text (y), with the diagonal where both are equal. "
            "Right: the text minus image gap of alignment recall and of perception accuracy per model, with 95% confidence intervals."},
    {"file": "plots/category_heatmap.svg", "title": "Alignment recall by category (images)",
     "alt": "Heat map of each model's alignment recall on unsafe images, per unsafe category, in percent."},
)


def render_plots(board: Board) -> dict[str, bytes]:
    """The SVG plots, by path relative to the site folder."""
    from vlmbench_leaderboard import plots

    models = []
    for row in board.rows:
        gaps = row.entry.results.get("modality_gaps", {})
        models.append(plots.ModelGaps(label=row.entry.name, reference=row.entry.reference,
                                      alignment=_gap(gaps.get(GAP_ALIGNMENT)), perception=_gap(gaps.get(GAP_PERCEPTION))))
    categories, matrix = _heatmap(board)
    return {
        PLOTS[0]["file"]: plots.modality_gap_svg(models),
        PLOTS[1]["file"]: plots.category_heatmap_svg([m.label for m in models], [m.reference for m in models], categories, matrix),
    }


def _gap(raw: Any) -> Any:
    from vlmbench_leaderboard.plots import Gap

    overall = raw.get("overall") if isinstance(raw, dict) else None
    if not isinstance(overall, dict):
        return None
    return Gap(image=overall["image"], text=overall["text"], gap=overall["gap"], ci_low=overall.get("ci_low"), ci_high=overall.get("ci_high"))


def _heatmap(board: Board) -> tuple[list[str], list[list[float | None]]]:
    per_row = []
    for row in board.rows:
        by_category = lookup(row.entry.results, ("tasks", HEATMAP_TASK, "by_category"))
        values = {}
        for cat, summary in (by_category.items() if isinstance(by_category, dict) else ()):
            stat = summary.get(HEATMAP_METRIC)
            if isinstance(stat, dict):
                values[cat] = _number(stat.get("value"))
        per_row.append(values)
    categories = sorted({c for values in per_row for c, v in values.items() if v is not None}, key=lambda c: (c.casefold(), c))
    return categories, [[values.get(c) for c in categories] for values in per_row]


# --------------------------------------------------------------------------------------------------
# The entry point


def build_site(data_dir: Path, out_dir: Path, config_path: Path | None = None) -> dict:
    """Build the leaderboard site from ``data_dir`` into ``out_dir``.

    Writes ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.json``, ``index.html`` and
    ``plots/*.svg``; returns ``{"models": entries, "ranked": ranked entries, "files": [relative paths]}``.
    Raises UserError (one line) for a missing/empty data folder, a bad entry or a bad config.
    """
    config = load_config(config_path)
    entries = load_entries(Path(data_dir))
    check_columns_resolve(config, entries, str(config_path or default_config_path()))
    board = make_board(config, entries)
    files: dict[str, bytes] = {name: data for name, data in _plots_or_error(board).items()}
    files["leaderboard.md"] = render_markdown(board).encode()
    files["leaderboard.csv"] = render_csv(board).encode()
    files["leaderboard.json"] = render_json(board).encode()
    files["index.html"] = render_html(board, PLOTS).encode()
    _write(Path(out_dir), files)
    return {"models": len(entries), "ranked": sum(1 for r in board.rows if r.ranks[""][1] is not None), "files": sorted(files)}


def _plots_or_error(board: Board) -> dict[str, bytes]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("building the leaderboard needs matplotlib for its plots; pip install 'vlmbench[leaderboard]'") from None
    return render_plots(board)


def _write(out_dir: Path, files: dict[str, bytes]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder; choose a folder for the site")
    for name, data in files.items():
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

