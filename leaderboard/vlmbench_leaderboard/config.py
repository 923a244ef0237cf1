"""The leaderboard configuration (``leaderboard.yaml``): columns, sort, detail tables, plots and the judges accepted.

Structure is checked by the shipped JSON Schema (``config_schema``); this module adds the checks that
need more than one field or the results schema (unique ids, sort columns, paths that exist), and turns
the mapping into frozen dataclasses. Every problem is a one-line UserError naming file and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench.safeyaml import YamlRefused, load_yaml_file
from vlmbench_leaderboard.config_schema import validate_config
from vlmbench_leaderboard.detailspec import DetailMetric, parse_detail
from vlmbench_leaderboard.judges import DEFAULT_PINS, JudgePin, parse_pins
from vlmbench_leaderboard.plotspec import GapPlot, GapSeries, HeatmapPlot, PlotSpec, parse_plot
from vlmbench_leaderboard.schemas import check_schema_path, metadata_schema, results_schema, schema_node

__all__ = ["Beside", "Column", "Config", "DetailMetric", "GapPlot", "GapSeries", "HeatmapPlot", "Paths", "PlotSpec", "load_config"]

PATH_KEYS = ("value", "ci_low", "ci_high", "weight")
DEFAULT_DIGITS = 1
LOWER_MARK = "\u2193"  # after the name of a column whose lower values are better
X100_MARK = "\u00d7100"  # after the name of a column of ratios shown x100 (format x100)
DEFAULT_ABSENT_NOTE = "not run"
# The fields of a statistic (``stat:``, a results.json stat or gap) a column reads, each the first of
# these names its schema has: the value (a gap's is "gap") and its 95% CI, whether it has too few
# concepts for a CI, its n (a gap's is "n_concepts") and, for the paper form, its coverage.
STAT_FIELDS = {
    "value": ("value", "gap"),
    "ci_low": ("ci_low",),
    "ci_high": ("ci_high",),
    "few_clusters": ("few_clusters",),
    "n": ("n", "n_concepts"),
    "coverage": ("coverage",),
}


@dataclass(frozen=True)
class Paths:
    """Where a column finds its value (and 95% CI, n, coverage) in a document; each path is a tuple of segments."""

    value: tuple[str, ...]
    ci_low: tuple[str, ...] | None = None
    ci_high: tuple[str, ...] | None = None
    weight: tuple[str, ...] | None = None
    few_clusters: tuple[str, ...] | None = None
    n: tuple[str, ...] | None = None
    coverage: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Beside:
    """A second number shown beside a column's headline (e.g. the paper's parsed-only form, or the paired gap);
    ``short``: its label in the page's table cells (``label`` everywhere else)."""

    id: str
    label: str
    short: str
    paths: Paths
    category: Paths | None


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
    beside: Beside | None = None
    lower_better: bool = False
    optional: bool = False
    absent_note: str = ""
    page: str = "table"  # where the page shows it: a table column, under the model's name, or in the details only

    @property
    def numeric(self) -> bool:
        """Whether values are numbers (sorted numerically, shown formatted)."""
        return self.format != "text"

    @property
    def heading(self) -> str:
        """Header text: the name, marked ``×100`` for ratios shown x100 and ``↓`` when lower values are better."""
        marks = [X100_MARK] * (self.format == "x100") + [LOWER_MARK] * self.lower_better
        return " ".join([self.name, *marks])

    @property
    def title(self) -> str:
        """Header text with its group, for flat tables (Markdown)."""
        return f"{self.group}: {self.heading}" if self.group else self.heading


@dataclass(frozen=True)
class Config:
    """The parsed, validated configuration."""

    title: str
    description: str
    sort_column: str
    descending: bool
    category_sort_column: str
    columns: tuple[Column, ...]
    detail: tuple[DetailMetric, ...]
    plots: tuple[PlotSpec, ...] = ()
    judges: tuple[JudgePin, ...] = DEFAULT_PINS
    legend: str = ""
    category_descending: bool = True

    def column(self, column_id: str) -> Column:
        """The column with this id."""
        return next(c for c in self.columns if c.id == column_id)

    @property
    def detail_tables(self) -> list[tuple[str, list[DetailMetric]]]:
        """The detail metrics by the page's table they are in (``table``), in the config's order."""
        tables: dict[str, list[DetailMetric]] = {}
        for metric in self.detail:
            tables.setdefault(metric.table, []).append(metric)
        return list(tables.items())


def default_config_path() -> Path:
    """The shipped ``leaderboard.yaml``."""
    return Path(str(resources.files("vlmbench_leaderboard").joinpath("leaderboard.yaml")))


def load_config(path: Path | None = None) -> Config:
    """Read and validate a configuration (the shipped default when ``path`` is None)."""
    import yaml

    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():  # looked at with os.stat: a named pipe or a device is never opened
        problem = "not a regular file" if path.exists() else "no such file"
        raise UserError(f"--config {path}: {problem}; pass a leaderboard YAML file or leave --config out for the default")
    try:  # as task files are read: no aliases (a bomb of them), bounded depth and size, regular files only
        raw = load_yaml_file(path)
    except YamlRefused as exc:
        raise UserError(f"{path}: {exc}; fix the config") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise UserError(f"{path}: not valid YAML ({where}{problem}); fix the syntax") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}); check its permissions or pass another --config") from None
    return parse_config(raw, str(path))


def parse_config(raw: Any, where: str) -> Config:
    """Validate a decoded config mapping (schema, then cross-field checks) and build the Config."""
    validate_config(raw, where)
    columns = tuple(_column(item, f"{where}: columns[{i}] ({item['id']})") for i, item in enumerate(raw["columns"]))
    ids = [c.id for c in columns]
    for column_id in ids:
        if ids.count(column_id) > 1:
            raise UserError(f"{where}: columns: id {column_id!r} is used twice; give each column its own id")
    sort_column, descending, category_sort_column, category_descending = _sort(raw["sort"], columns, where)
    detail = tuple(parse_detail(item, f"{where}: detail[{i}]") for i, item in enumerate(raw.get("detail", [])))
    plots = tuple(parse_plot(item, f"{where}: plots[{i}]") for i, item in enumerate(raw.get("plots", [])))
    files = [p.file for p in plots]
    for name in files:
        if files.count(name) > 1:
            raise UserError(f"{where}: plots: file {name!r} is used twice; give each plot its own file")
    return Config(
        title=raw.get("title", "vlmbench leaderboard"),
        description=raw.get("description", ""),
        sort_column=sort_column,
        descending=descending,
        category_sort_column=category_sort_column,
        columns=columns,
        detail=detail,
        plots=plots,
        judges=parse_pins(raw.get("judges")),
        legend=" ".join(str(raw.get("legend", "")).split()),
        category_descending=category_descending,
    )


def _sort(raw: dict[str, Any], columns: tuple[Column, ...], where: str) -> tuple[str, bool, str, bool]:
    """The ranking columns and their directions: each column's own (``better``); an explicit direction must agree."""
    numeric = [c.id for c in columns if c.numeric and not c.optional]
    column = raw["column"]
    if column not in numeric:
        raise UserError(
            f"{where}: sort.column: {column!r} is not a numeric column id every entry has (not optional); choose one of: {', '.join(numeric)}"
        )
    per_category = [c.id for c in columns if c.numeric and c.category is not None and not c.optional]
    category_column = raw.get("category_column", column)
    if category_column not in per_category and "category_column" in raw:
        raise UserError(
            f"{where}: sort.category_column: {category_column!r} is not a column with per-category values; choose one of: {', '.join(per_category)}"
        )
    lower = {c.id: c.lower_better for c in columns}
    if raw.get("direction", "asc" if lower[column] else "desc") != ("asc" if lower[column] else "desc"):
        better = "lower" if lower[column] else "higher"
        raise UserError(f"{where}: sort.direction: {raw['direction']!r} ranks the worst first ({column} is better {better}); remove direction")
    return column, not lower[column], category_column, not lower[category_column]


def _column(raw: dict[str, Any], where: str) -> Column:
    fmt, source, aggregate = raw.get("format", "number"), raw.get("source", "results"), raw.get("aggregate")
    schema = metadata_schema() if source == "metadata" else results_schema()
    paths = _paths(raw, where, schema, fmt)
    category = _paths(raw["category"], f"{where}: category", schema, fmt) if raw.get("category") is not None else None
    return Column(
        beside=_beside(raw, where, schema),
        id=raw["id"],
        name=raw.get("name", raw["id"]),
        group=raw.get("group", ""),
        description=raw.get("description", ""),
        kind=raw.get("kind", "value"),
        source=source,
        format=fmt,
        digits=int(raw.get("digits", DEFAULT_DIGITS)),
        aggregate=aggregate,
        paths=paths,
        category=category,
        lower_better=raw.get("better", "higher") == "lower",
        optional=raw.get("optional", False) not in (False, ""),
        absent_note=" ".join(raw["optional"].split()) if isinstance(raw.get("optional"), str) else DEFAULT_ABSENT_NOTE,
        page="table" if raw.get("kind") == "model" else raw.get("page", "table"),
    )


def _beside(raw: dict[str, Any], where: str, schema: dict[str, Any]) -> Beside | None:
    spec, per_category = raw.get("beside"), (raw.get("category") or {}).get("beside")
    if spec is None:
        if per_category is not None:
            raise UserError(f"{where}: category: beside is given but the column has no beside; add beside (stat, id, label) or remove it")
        return None
    category = _stat(per_category, f"{where}: category: beside", schema) if per_category is not None else None
    label = spec.get("label", spec["id"])
    return Beside(spec["id"], label, spec.get("short", label), _stat(spec["stat"], f"{where}: beside: stat", schema), category)


def _stat(path: str, where: str, schema: dict[str, Any]) -> Paths:
    """The paths of a statistic's fields (STAT_FIELDS), from the schema of the object at ``path``."""
    segments = tuple(path.split("."))
    node = schema_node(schema, segments, where)
    properties = node.get("properties", {}) if node is not None else {}
    fields = {key: next((name for name in names if name in properties), None) for key, names in STAT_FIELDS.items()}
    if fields["value"] is None:
        raise UserError(
            f"{where}: path {path!r} is not a statistic (no value or gap field); point it at one (a metric of "
            "tasks.TASK.metrics, or a modality gap), or give the number's path as value"
        )
    value = (*segments, str(fields.pop("value")))
    return Paths(value, **{key: (*segments, name) if name else None for key, name in fields.items()})


def _paths(raw: dict[str, Any], where: str, schema: dict[str, Any], fmt: str) -> Paths:
    if raw.get("stat") is not None:
        return _stat(raw["stat"], f"{where}: stat", schema)
    parsed: dict[str, tuple[str, ...] | None] = dict.fromkeys(PATH_KEYS)
    for key in PATH_KEYS:
        if raw.get(key) is not None:
            segments = tuple(raw[key].split("."))
            check_schema_path(schema, segments, f"{where}: {key}", "text" if key == "value" and fmt == "text" else "number")
            parsed[key] = segments
    value = parsed.pop("value")
    assert value is not None  # required by the schema
    return Paths(value, **parsed)
