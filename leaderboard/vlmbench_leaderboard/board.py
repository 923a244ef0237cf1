"""The board: every cell, rank and detail table the outputs show, computed once.

Ranks: rows are ranked by the sort column's value (the headline; never by the number beside it). A
model shares the rank of the next better one ("=2") when their difference is within the two 95% CIs
combined: ``a - b < sqrt((a - a_low)² + (b_high - b)²)``, the facing halves of the intervals (for
intervals of ± 1.96 SE this is ``|a - b| < 1.96·sqrt(se_a² + se_b²)``). Without a CI on both sides
(fewer than 5 concepts) only equal values share a rank. Reference rows are shown but not ranked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmbench import whole_number
from vlmbench.errors import UserError
from vlmbench_leaderboard.cells import MISSING, Cell, column_cell, count, lookup, number, unresolved
from vlmbench_leaderboard.config import Column, Config, DetailMetric, HeatmapPlot
from vlmbench_leaderboard.entries import Entry
from vlmbench_leaderboard.judges import JudgeUse, entry_judges, judge_text, rules_only
from vlmbench_leaderboard.schemas import CATEGORY
from vlmbench_leaderboard.served import entry_served_models, served_text

Table = dict[str, dict[str, Cell]]


@dataclass(frozen=True)
class PromptRow:
    """A detail metric of a task asked with several prompts: its headline per prompt (by the prompt's
    index in the task's ``prompts``), the prompts' text, and the spread across prompts."""

    metric: DetailMetric
    cells: dict[str, Cell]
    prompts: dict[str, str]
    low: float | None
    high: float | None
    sd: float | None


@dataclass
class Row:
    """One entry's line in the table, in display order."""

    entry: Entry
    cells: dict[str, Cell]
    by_category: dict[str, dict[str, Cell]]
    ranks: dict[str, tuple[str, int | None]]  # "" = overall, else per category
    detail_categories: Table = field(default_factory=dict)
    detail_concepts: Table = field(default_factory=dict)
    detail_prompts: list[PromptRow] = field(default_factory=list)
    judges: tuple[JudgeUse, ...] = ()
    served_models: dict[str, int] = field(default_factory=dict)  # answers by the model their replies named

    @property
    def rank(self) -> tuple[str, int | None]:
        """The overall rank label and number."""
        return self.ranks[""]

    @property
    def judge(self) -> str:
        """Which judge made the row's numbers, on one line (``rules``: each task's rule scorer)."""
        return judge_text(self.judges)

    @property
    def judge_note(self) -> str | None:
        """The judge, for rows whose numbers are not all from rules (the tables' default, shown without a note)."""
        return None if rules_only(self.judges) else self.judge

    @property
    def served(self) -> str:
        """The models the replies named, on one line ("" when none did: a local model)."""
        return served_text(self.served_models)


@dataclass
class Board:
    """The whole leaderboard, ready to render."""

    config: Config
    rows: list[Row]
    categories: list[str]
    columns: tuple[Column, ...]  # those shown: an optional column only where some entry has it

    @property
    def ranked(self) -> int:
        """How many rows hold an overall rank."""
        return sum(1 for row in self.rows if row.rank[1] is not None)


def tied(a: Cell, b: Cell) -> bool:
    """Whether two values are indistinguishable: their difference is within the facing halves of their
    95% CIs combined, ``high - low < sqrt((high - high.ci_low)² + (low.ci_high - low)²)``.

    Without a CI on both sides (fewer than 5 concepts) only equal values tie.
    """
    if a.value is None or b.value is None:
        return False
    if a.value == b.value:
        return True
    if isinstance(a.value, str) or isinstance(b.value, str) or not (a.has_ci and b.has_ci):
        return False
    high, low = (a, b) if a.value > b.value else (b, a)
    assert isinstance(high.value, float) and isinstance(low.value, float) and high.ci_low is not None and low.ci_high is not None
    return high.value - low.value < math.hypot(max(0.0, high.value - high.ci_low), max(0.0, low.ci_high - low.value))


def rank_labels(cells: Sequence[Cell]) -> list[tuple[str, int]]:
    """Ranks for cells already sorted best first: ``("1", 1)``, or ``("=2", 2)`` for each of a tied group.

    A model tied with the next better one shares its rank (so ties chain); the rank after a group of k
    models at rank r is r+k. Models of equal value just above are all "the next better one" (their order,
    by name, must not decide a rank): a model tied with any of them shares their rank.
    """
    ranks: list[int] = []
    for i, cell in enumerate(cells):
        above = [other for other in cells[:i] if i and other.value == cells[i - 1].value]
        ranks.append(ranks[-1] if any(tied(other, cell) for other in above) else i + 1)
    return [(f"={r}" if ranks.count(r) > 1 else str(r), r) for r in ranks]


def sort_key(cell: Cell, entry: Entry, descending: bool) -> tuple[Any, ...]:
    """Order by value (missing last), then by name, organisation, revision and entry id."""
    value = cell.value if isinstance(cell.value, float) else None
    ordered = 0.0 if value is None else (-value if descending else value)
    meta = entry.metadata
    return (value is None, ordered, entry.name.casefold(), entry.name, meta.get("org") or "", meta.get("revision") or "", entry.id)


def ranks_for(cells: dict[str, Cell], entries: Sequence[Entry], descending: bool) -> dict[str, tuple[str, int | None]]:
    """Rank label and number per entry id; reference rows get ``("ref", None)``, rows without a value ``("-", None)``."""
    ranked = sorted((e for e in entries if not e.reference and cells[e.id].value is not None), key=lambda e: sort_key(cells[e.id], e, descending))
    labels = dict(zip((e.id for e in ranked), rank_labels([cells[e.id] for e in ranked])))
    return {e.id: ("ref", None) if e.reference else labels.get(e.id, ("-", None)) for e in entries}


def check_columns_resolve(config: Config, entries: Sequence[Entry], where: str) -> None:
    """A path found in no entry's results.json is almost surely a typo (a task or metric name): a UserError naming it.

    Checks the value path of every results column, and the task metrics and gaps of the detail tables and plots.
    """
    paths: list[tuple[str, tuple[str, ...]]] = [(f"column {c.id}", c.paths.value) for c in config.columns if c.source == "results" and not c.optional]
    for i, metric in enumerate(config.detail):
        stem = (
            ("modality_gaps", str(metric.gap), "by_category") if metric.gap else ("tasks", str(metric.task), "by_category", "*", str(metric.metric))
        )
        paths += [] if metric.optional else [(f"detail[{i}]", stem)]
    for i, plot in enumerate(config.plots):
        if isinstance(plot, HeatmapPlot):
            paths.append((f"plots[{i}]", ("tasks", plot.task, "by_category", "*", plot.metric)))
        else:
            paths += [(f"plots[{i}]", ("modality_gaps", gap)) for gap in (plot.scatter, *(s.gap for s in plot.series))]
    documents = [e.results for e in entries]
    for field_name, segments in paths:
        missing = unresolved(documents, segments)
        if missing is not None:
            depth, known = missing
            here = ".".join(segments[:depth]) or "the top level"
            raise UserError(
                f"{where}: {field_name}: path {'.'.join(segments)!r} is in no entry's results.json: {segments[depth]!r} "
                f"is not a field of {here!r} in any entry (known: {', '.join(known) or 'none'}); fix the path"
            )


def make_board(config: Config, entries: Sequence[Entry]) -> Board:
    """Compute every cell, rank and detail table, rows in the default order (sort column, then name)."""
    categories = _categories(config, entries)
    sort = config.column(config.sort_column)
    cells = {e.id: {c.id: column_cell(c, e) for c in config.columns} for e in entries}
    by_category = {e.id: {cat: {c.id: column_cell(c, e, cat) for c in config.columns if c.category} for cat in categories} for e in entries}
    overall = ranks_for({k: v[sort.id] for k, v in cells.items()}, entries, config.descending)  # never an optional column
    ranks = {e.id: {"": overall[e.id]} for e in entries}
    by = config.column(config.category_sort_column)
    for cat in categories:
        source = {k: (v[cat][by.id] if by.category else cells[k][by.id]) for k, v in by_category.items()}
        for entry_id, label in ranks_for(source, entries, config.category_descending).items():
            ranks[entry_id][cat] = label
    ordered = sorted(entries, key=lambda e: sort_key(cells[e.id][sort.id], e, config.descending))
    rows = [
        Row(
            e,
            cells[e.id],
            by_category[e.id],
            ranks[e.id],
            *_detail_tables(config, e),
            _prompt_rows(config, e),
            entry_judges(e.results),
            entry_served_models(e.results),
        )
        for e in ordered
    ]
    shown = tuple(c for c in config.columns if not c.optional or any(not cells[e.id][c.id].note for e in entries))  # some entry has it
    return Board(config, rows, categories, shown)


def by_name(table: dict[str, Any]) -> list[str]:
    """Keys in the order every output lists categories and concepts: case-insensitive, then exact."""
    return sorted(table, key=lambda name: (name.casefold(), name))


def _categories(config: Config, entries: Sequence[Entry]) -> list[str]:
    """The categories the filter offers: the keys found where ``{category}`` stands in a per-category column.

    Aggregate (``*``) columns do not add categories: over every task they would bring in those of
    unrelated tasks (general capability's "colour", "counting"...).
    """
    found: dict[str, None] = {}
    for column in config.columns:
        if column.category is None or column.source != "results" or column.aggregate:
            continue
        stem = column.category.value[: column.category.value.index(CATEGORY)]
        for entry in entries:
            node = lookup(entry.results, stem)
            if isinstance(node, dict):
                found.update(dict.fromkeys(node))
    return by_name(found)


def stat_of(stat: Any, beside: Any = MISSING) -> Cell:
    """A results.json statistic (a metric's, or a gap's: value in ``gap``, n in ``n_concepts``) as a cell,
    with the statistic ``beside`` it (null: shown as "-"; MISSING: none)."""
    if not isinstance(stat, dict):
        return Cell(None)
    value = number(stat.get("value", stat.get("gap")))
    if value is None:
        return Cell(None)
    second = None if beside is MISSING else stat_of(beside)
    return Cell(
        value,
        number(stat.get("ci_low")),
        number(stat.get("ci_high")),
        stat.get("few_clusters") is True,
        count(stat.get("n", stat.get("n_concepts"))),
        number(stat.get("coverage")),
        second,
    )


def _detail_tables(config: Config, entry: Entry) -> tuple[Table, Table]:
    """Per-category and per-concept cells of one entry, by row name then detail metric key."""
    categories: Table = {}
    concepts: Table = {}
    for metric in config.detail:
        if metric.gap:
            gaps = lookup(entry.results, ("modality_gaps", metric.gap, "by_category"))
            for cat, gap in gaps.items() if isinstance(gaps, dict) else ():
                if isinstance(gap, dict):
                    categories.setdefault(cat, {})[metric.key] = stat_of(gap, gap.get(metric.beside, MISSING) if metric.beside else MISSING)
            continue
        for scope, table in (("by_category", categories), ("by_concept", concepts)):
            group = lookup(entry.results, ("tasks", str(metric.task), scope))
            for name, summary in group.items() if isinstance(group, dict) else ():
                row = table.setdefault(name, {})
                stat = summary.get(metric.metric) if isinstance(summary, dict) else None
                if isinstance(stat, dict):
                    beside = summary.get(metric.beside, MISSING) if metric.beside and scope == "by_category" else MISSING
                    row[metric.key] = stat_of(stat, beside)
    return {k: categories[k] for k in by_name(categories)}, {k: concepts[k] for k in by_name(concepts)}


def _prompt_rows(config: Config, entry: Entry) -> list[PromptRow]:
    """The per-prompt headline of each detail metric whose task was asked with several prompts, with the spread."""
    rows = []
    for metric in config.detail:
        task = lookup(entry.results, ("tasks", str(metric.task)))
        by_prompt = task.get("by_prompt") if metric.task and isinstance(task, dict) else None
        if not isinstance(by_prompt, dict) or len(by_prompt) < 2:
            continue
        numbers = {k: whole_number(k) for k in by_prompt}
        order = sorted(by_prompt, key=lambda k: (numbers[k] is None, numbers[k] or 0, k))
        cells = {k: stat_of(by_prompt[k].get(metric.metric)) if isinstance(by_prompt[k], dict) else Cell(None) for k in order}
        texts = task.get("prompts") if isinstance(task.get("prompts"), list) else []
        prompts = {k: str(texts[n]) if (n := numbers[k]) is not None and n < len(texts) else "" for k in order}
        spread = lookup(task, ("prompt_spread", str(metric.metric)))
        spread = spread if isinstance(spread, dict) else {}
        rows.append(PromptRow(metric, cells, prompts, number(spread.get("min")), number(spread.get("max")), number(spread.get("sd"))))
    return rows
