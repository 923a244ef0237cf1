"""``leaderboard.csv``: raw numbers (fractions, not percent) with their uncertainty columns, and the judge of each row."""

from __future__ import annotations

import csv
import io

from vlmbench_leaderboard.board import Board

UNCERTAINTY = ("stderr", "ci_low", "ci_high")


def csv_number(value: float | None) -> str:
    """A number exactly as stored (``repr``), or empty when missing."""
    return "" if value is None else repr(value)


def csv_text(text: str) -> str:
    """Text made safe for spreadsheets: a cell starting with = + - @ is a formula, so it gets a leading quote."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(board: Board) -> str:
    """The CSV table: rank, tied, reference, entry, then each column and its uncertainty columns, then the judge."""
    config = board.config
    header = ["rank", "tied", "reference", "entry"]
    for column in config.columns:
        header.append(column.id)
        header += [f"{column.id}_{key}" for key in UNCERTAINTY if getattr(column.paths, key)]
    header.append("judge")
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
        for column in config.columns:
            cell = row.cells[column.id]
            line.append(csv_text(cell.value) if isinstance(cell.value, str) else csv_number(cell.value))
            line += [csv_number(getattr(cell, key)) for key in UNCERTAINTY if getattr(column.paths, key)]
        line.append(csv_text(row.judge))
        writer.writerow(line)
    return buffer.getvalue()
