"""``index.html``: the whole page in one file (CSS and JS inline, under a hash-based CSP), working from ``file://``.

Third-party text reaches the page only through Jinja2 autoescape and a JSON block with ``<``, ``>``
and ``&`` escaped; the script sets text with ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from vlmbench_leaderboard.board import Board, Table
from vlmbench_leaderboard.cells import Cell
from vlmbench_leaderboard.config import DEFAULT_DIGITS, Column, DetailMetric
from vlmbench_leaderboard.formatting import MISSING_TEXT, beside_parts, detail_format, format_cell, format_number, legend, tooltip
from vlmbench_leaderboard.render_json import sort_json

if TYPE_CHECKING:
    import jinja2


def script_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


Parts = tuple[str, str, list[str], str]


def cell_parts(cell: Cell, fmt: str, digits: int, label: str = "", short: str = "") -> Parts:
    """``(main, CI, beside, tooltip)`` display text of a cell: ``("8.3", "[2.0, 28.0]", ["paper 42.9", "cov. 17.5%"], "n = 240; ...")``.

    The page names the number beside a value by its short label (``short``), and gives the full
    label with its CI, n and coverage in the tooltip.
    """
    main, unc = format_cell(cell, fmt, digits)
    text, coverage = beside_parts(cell, short or label, fmt, digits)
    beside = [part for part in (text, f"cov. {coverage}" if coverage else "", cell.note if cell.value is None else "") if part]
    return main, unc, beside, tooltip(cell, fmt, digits, label)


def column_parts(cell: Cell, column: Column) -> Parts:
    """A table cell's display text, in its column's format, its beside number labelled as the column says."""
    beside = column.beside
    return cell_parts(cell, column.format, column.digits, beside.label if beside else "", beside.short if beside else "")


def _js_cell(cell: Cell, column: Column) -> list[Any]:
    """``[value, main text, CI text, text beside, tooltip]``, as the page's script shows a cell."""
    return [cell.value, *column_parts(cell, column)]


def placed(board: Board, page: str) -> list[Column]:
    """The columns the page shows in one place (``page``): its table, under the model's name, or the details."""
    return [c for c in board.columns if c.page == page]


def page_data(board: Board) -> dict[str, Any]:
    """What the page's script needs: per row, the cells of every category view and the ranks."""
    config = board.config
    table = placed(board, "table")
    numeric = [c for c in table if c.numeric]
    rows = []
    for row in board.rows:
        views: dict[str, dict[str, Any]] = {"": {c.id: _js_cell(row.cells[c.id], c) for c in numeric}}
        for cat in board.categories:
            views[cat] = {c.id: _js_cell(row.by_category[cat][c.id], c) if c.category else None for c in numeric}
        rows.append({"views": views, "ranks": {k: [label, rank] for k, (label, rank) in row.ranks.items()}})
    return {
        "columns": [{"id": c.id, "numeric": c.numeric, "lower": c.lower_better, "per_category": c.category is not None} for c in table],
        "sort": sort_json(config),
        "categories": board.categories,
        "rows": rows,
    }


def filled(table: Table, metrics: Sequence[DetailMetric]) -> list[tuple[str, dict[str, Cell]]]:
    """The rows of a detail table (per category or concept) holding a value of some of ``metrics``."""
    return [(name, cells) for name, cells in table.items() if any(m.key in cells for m in metrics)]


def header_groups(columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Groups of consecutive columns sharing a ``group`` (the page's first header row)."""
    groups: list[dict[str, Any]] = []
    for column in columns:
        if groups and column.group and groups[-1]["group"] == column.group:
            groups[-1]["columns"].append(column)
        else:
            groups.append({"group": column.group, "columns": [column]})
    return groups


def data_value(cell: Cell) -> str:
    """The ``data-value`` a cell sorts by: the number, the text, or '' when missing."""
    if cell.value is None:
        return ""
    return repr(cell.value) if isinstance(cell.value, float) else str(cell.value)


def csp_hash(text: str) -> str:
    """A Content-Security-Policy source allowing exactly this inline text."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


@lru_cache(maxsize=2)
def page_template(source: str) -> jinja2.Template:
    """The page template compiled (once per process and template text: compiling takes longer than rendering)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = format_cell
    env.filters["parts"] = cell_parts
    env.filters["column_parts"] = column_parts
    env.filters["number"] = lambda value, fmt: MISSING_TEXT if value is None else format_number(value, fmt)
    env.filters["datavalue"] = data_value
    return env.from_string(source)


def render_html(board: Board, plots: Sequence[dict[str, str]]) -> str:
    """The page: table (sortable, category filter), legend, plots (``file``, ``title``, ``alt``) and per-model details."""
    from markupsafe import Markup

    package = resources.files("vlmbench_leaderboard")
    css = package.joinpath("page.css").read_text(encoding="utf-8")
    js = package.joinpath("page.js").read_text(encoding="utf-8")
    template = page_template(package.joinpath("page.html").read_text(encoding="utf-8"))
    config = board.config
    return template.render(
        config=config,
        board=board,
        groups=header_groups(placed(board, "table")),
        columns={page: placed(board, page) for page in ("table", "model", "details")},
        plots=plots,
        legend=legend(config, board.columns),
        sort_column=config.sort_column,
        sort_direction="descending" if config.descending else "ascending",
        detail_format=detail_format,
        filled=filled,
        detail_digits=DEFAULT_DIGITS,
        css=Markup(css),
        js=Markup(js),
        data=Markup(script_json(page_data(board))),
        csp=f"default-src 'none'; img-src 'self'; style-src {csp_hash(css)}; script-src {csp_hash(js)}; base-uri 'none'; form-action 'none'",
        versions=sorted({str(r.entry.results.get("vlmbench_version")) for r in board.rows}),
        ranked=board.ranked,
    )
