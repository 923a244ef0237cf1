"""``leaderboard.md``: a GitHub-flavoured Markdown table with a legend."""

from __future__ import annotations

import re

from vlmbench_leaderboard.board import Board
from vlmbench_leaderboard.formatting import cell_text, legend


def md_escape(text: str) -> str:
    """Third-party text made inert in Markdown: one line, markup characters backslashed, HTML as entities, and
    no link: GitHub turns a bare ``https://...``, ``www.`` or e-mail address into one, which an escaped ``:``
    before ``//`` (or the dot after ``www``) prevents, and an empty HTML comment after ``@`` (GitHub renders it as nothing)."""
    text = " ".join(text.split())
    text = re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)
    text = re.sub(r":(?=//)", r"\\:", text)
    text = re.sub(r"(?i)(?<![a-z0-9])(www)\.", r"\1\\.", text)  # GitHub links "www." after "_" too
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@<!-- -->")


def render_markdown(board: Board) -> str:
    """The Markdown table: rank, then every configured column, reference rows and rows judged by a model judge marked."""
    from tabulate import tabulate

    config = board.config
    headers = ["Rank", *(md_escape(c.title) for c in board.columns)]
    body = []
    for row in board.rows:
        line = [row.rank[0]]
        for column in board.columns:
            text = cell_text(row.cells[column.id], column.format, column.digits, column.beside.label if column.beside else "")
            text = md_escape(text) if column.format == "text" else text  # numbers and CIs are ours: no markup
            if column.kind == "model" and row.entry.reference:
                text = f"_{text}_ (reference)"
            if column.kind == "model" and row.judge_note:
                text = f"{text} (judge: {md_escape(row.judge_note)})"
            if column.kind == "model" and row.served:
                text = f"{text} (served by: {md_escape(row.served)})"
            line.append(text)
        body.append(line)
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    parts = [f"# {md_escape(config.title)}", ""]
    if config.description:
        parts += [md_escape(config.description), ""]
    parts += [table, "", legend(config, board.columns)]
    return "\n".join(parts) + "\n"
