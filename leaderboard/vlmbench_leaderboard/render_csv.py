"""``leaderboard.csv``: raw numbers (fractions, not percent) with their 95% CIs and n, the number beside
each (e.g. ``perception_image_paper`` and its coverage), and the judge of each row."""

from __future__ import annotations

import csv
import io

from vlmbench_leaderboard.board import Board
from vlmbench_leaderboard.cells import Cell
from vlmbench_leaderboard.config import Column, Paths

DETAILS = ("ci_low", "ci_high", "n")
BESIDE_DETAILS = (*DETAILS, "coverage")  # the paper form's coverage: the headline's is 1 by definition


def csv_number(value: float | None) -> str:
    """A number exactly as stored (``repr``), or empty when missing."""
    return "" if value is None else repr(value)


def csv_text(text: str) -> str:
    """Text made safe for spreadsheets: a cell starting with = + - @ is a formula, so it gets a leading quote."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _details(paths: Paths, keys: tuple[str, ...] = DETAILS) -> list[str]:
    return [key for key in keys if getattr(paths, key) is not None]


def _header(column: Column) -> list[str]:
    names = [column.id, *(f"{column.id}_{key}" for key in _details(column.paths))]
    if column.beside:
        stem = f"{column.id}_{column.beside.id}"
        names += [stem, *(f"{stem}_{key}" for key in _details(column.beside.paths, BESIDE_DETAILS))]
    return names


def _values(column: Column, cell: Cell) -> list[str]:
    main = csv_text(cell.value) if isinstance(cell.value, str) else csv_number(cell.value)
    values = [main, *(csv_number(getattr(cell, key)) for key in _details(column.paths))]
    if column.beside:
        second = cell.beside or Cell(None)
        values += [csv_number(second.value if isinstance(second.value, float) else None)]
        values += [csv_number(getattr(second, key)) for key in _details(column.beside.paths, BESIDE_DETAILS)]
    return values


def render_csv(board: Board) -> str:
    """The CSV table: rank, tied, reference, entry, then each column with its CI, n and the number beside it, then the
    judge and the models the replies named (``served_by``)."""
    header = ["rank", "tied", "reference", "entry"]
    for column in board.columns:
        header += _header(column)
    header += ["judge", "served_by"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in board.rows:
        label, rank = row.rank
        line = [
            "" if rank is None else str(rank),
            "true" if label.startswith("=") else "false",
            "true" if row.entry.reference else "false",
            csv_text(row.entry.id),
        ]
        for column in board.columns:
            line += _values(column, row.cells[column.id])
        line += [csv_text(row.judge), csv_text(row.served)]
        writer.writerow(line)
    return buffer.getvalue()
