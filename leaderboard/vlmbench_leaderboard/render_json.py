"""``leaderboard.json``: config summary, rows with values, judges, per-category values and detail tables."""

from __future__ import annotations

import json
from typing import Any

from vlmbench_leaderboard.board import Board, Table
from vlmbench_leaderboard.cells import Cell
from vlmbench_leaderboard.config import DEFAULT_DIGITS, Config
from vlmbench_leaderboard.formatting import cell_text, detail_format


def cell_json(cell: Cell, fmt: str, digits: int) -> dict[str, Any]:
    """A cell as JSON: raw value, display text and whichever uncertainty it has."""
    out: dict[str, Any] = {"value": cell.value, "text": cell_text(cell, fmt, digits)}
    out.update({key: getattr(cell, key) for key in ("stderr", "ci_low", "ci_high") if getattr(cell, key) is not None})
    return out


def sort_json(config: Config) -> dict[str, str]:
    """The configured order, as the JSON file and the page's script read it."""
    return {"column": config.sort_column, "direction": "desc" if config.descending else "asc", "category_column": config.category_sort_column}


def _detail_json(table: Table, config: Config) -> dict[str, Any]:
    return {
        name: {m.key: cell_json(cells[m.key], detail_format(m), DEFAULT_DIGITS) for m in config.detail if m.key in cells}
        for name, cells in table.items()
    }


def board_json(board: Board) -> dict[str, Any]:
    """The content of ``leaderboard.json``."""
    config = board.config
    columns = [
        {"id": c.id, "name": c.name, "group": c.group, "format": c.format, "description": c.description, "per_category": c.category is not None}
        for c in config.columns
    ]
    rows = []
    for row in board.rows:
        label, rank = row.rank
        rows.append(
            {
                "entry": row.entry.id,
                "rank": rank,
                "rank_label": label,
                "reference": row.entry.reference,
                "metadata": row.entry.metadata,
                "vlmbench_version": row.entry.results.get("vlmbench_version"),
                "created": row.entry.results.get("created"),
                "judge": row.judge,
                "judges": [use.as_json() for use in row.judges],
                "values": {c.id: cell_json(row.cells[c.id], c.format, c.digits) for c in config.columns},
                "by_category": {
                    cat: {
                        "rank": row.ranks[cat][1],
                        "rank_label": row.ranks[cat][0],
                        "values": {c.id: cell_json(row.by_category[cat][c.id], c.format, c.digits) for c in config.columns if c.category},
                    }
                    for cat in board.categories
                },
                "detail": {"by_category": _detail_json(row.detail_categories, config), "by_concept": _detail_json(row.detail_concepts, config)},
            }
        )
    return {
        "title": config.title,
        "description": config.description,
        "sort": sort_json(config),
        "columns": columns,
        "categories": board.categories,
        "detail_columns": [{"key": m.key, "name": m.name} for m in config.detail],
        "rows": rows,
    }


def render_json(board: Board) -> str:
    """``leaderboard.json`` as text (sorted keys, so byte-stable)."""
    return json.dumps(board_json(board), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
