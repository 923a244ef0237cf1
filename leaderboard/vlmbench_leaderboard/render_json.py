"""``leaderboard.json``: config summary, rows with values (95% CI, n, the number beside each), judges,
per-category values and detail tables (per category, per concept, per prompt)."""

from __future__ import annotations

import json
from typing import Any

from vlmbench_leaderboard.board import Board, PromptRow, Table
from vlmbench_leaderboard.cells import Cell
from vlmbench_leaderboard.config import DEFAULT_DIGITS, Column, Config
from vlmbench_leaderboard.formatting import cell_text, detail_format, legend

FIELDS = ("ci_low", "ci_high", "n", "coverage")


def _numbers(cell: Cell) -> dict[str, Any]:
    out: dict[str, Any] = {key: getattr(cell, key) for key in FIELDS if getattr(cell, key) is not None}
    if cell.few_clusters:
        out["few_clusters"] = True
    return out


def cell_json(cell: Cell, fmt: str, digits: int, label: str = "") -> dict[str, Any]:
    """A cell as JSON: raw value, display text, its 95% CI, n and few-concepts flag, and the number beside it (with ``label``)."""
    out: dict[str, Any] = {"value": cell.value, "text": cell_text(cell, fmt, digits, label), **_numbers(cell)}
    if cell.note and cell.value is None:
        out["note"] = cell.note
    if cell.beside is not None:
        out["beside"] = {"label": label, "value": cell.beside.value, **_numbers(cell.beside)}
    return out


def column_json(column: Column, cell: Cell) -> dict[str, Any]:
    """A table cell as JSON, in its column's format, its beside number labelled as the column says."""
    return cell_json(cell, column.format, column.digits, column.beside.label if column.beside else "")


def sort_json(config: Config) -> dict[str, str]:
    """The configured order, as the JSON file and the page's script read it."""
    return {
        "column": config.sort_column,
        "direction": "desc" if config.descending else "asc",
        "category_column": config.category_sort_column,
        "category_direction": "desc" if config.category_descending else "asc",
    }


def _detail_json(table: Table, config: Config) -> dict[str, Any]:
    return {
        name: {m.key: cell_json(cells[m.key], detail_format(m), DEFAULT_DIGITS, m.beside_label) for m in config.detail if m.key in cells}
        for name, cells in table.items()
    }


def _prompts_json(rows: list[PromptRow]) -> dict[str, Any]:
    return {
        row.metric.key: {
            "prompts": {k: {**cell_json(cell, detail_format(row.metric), DEFAULT_DIGITS), "prompt": row.prompts[k]} for k, cell in row.cells.items()},
            "spread": {"min": row.low, "max": row.high, "sd": row.sd},
        }
        for row in rows
    }


def board_json(board: Board) -> dict[str, Any]:
    """The content of ``leaderboard.json``."""
    config = board.config
    columns = [
        {
            "id": c.id,
            "name": c.name,
            "group": c.group,
            "format": c.format,
            "better": "lower" if c.lower_better else "higher",
            "optional": c.optional,
            "description": c.description,
            "per_category": c.category is not None,
            "beside": {"id": c.beside.id, "label": c.beside.label} if c.beside else None,
        }
        for c in board.columns
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
                "served_models": row.served_models,
                "values": {c.id: column_json(c, row.cells[c.id]) for c in board.columns},
                "by_category": {
                    cat: {
                        "rank": row.ranks[cat][1],
                        "rank_label": row.ranks[cat][0],
                        "values": {c.id: column_json(c, row.by_category[cat][c.id]) for c in board.columns if c.category},
                    }
                    for cat in board.categories
                },
                "detail": {
                    "by_category": _detail_json(row.detail_categories, config),
                    "by_concept": _detail_json(row.detail_concepts, config),
                    "by_prompt": _prompts_json(row.detail_prompts),
                },
            }
        )
    return {
        "title": config.title,
        "description": config.description,
        "sort": sort_json(config),
        "columns": columns,
        "categories": board.categories,
        "detail_columns": [{"key": m.key, "name": m.name, "beside_label": m.beside_label or None} for m in config.detail],
        "legend": legend(config, board.columns),
        "rows": rows,
    }


def render_json(board: Board) -> str:
    """``leaderboard.json`` as text (sorted keys, so byte-stable)."""
    return json.dumps(board_json(board), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
