"""Writing the whole site: tables (md/csv/json), ``index.html`` and the configured SVG plots.

Output is deterministic: equal input, equal bytes. Entries that cannot be read are skipped, each named
in one warning line on stderr and counted in the summary; the rest of the site still builds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from vlmbench.errors import UserError
from vlmbench_leaderboard.board import check_columns_resolve, make_board
from vlmbench_leaderboard.config import default_config_path, load_config
from vlmbench_leaderboard.entries import Skipped, load_entries
from vlmbench_leaderboard.render_csv import render_csv
from vlmbench_leaderboard.render_html import render_html
from vlmbench_leaderboard.render_json import render_json
from vlmbench_leaderboard.render_md import render_markdown
from vlmbench_leaderboard.render_plots import figures, render_plots


def printable(text: str) -> str:
    """Text safe for a terminal line: control and other unprintable characters escaped (``\\x1b``, ``\\n``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def warn_skipped(skipped: Skipped, stream: TextIO | None = None) -> None:
    """One line on stderr naming the skipped entry and why."""
    print(printable(f"warning: skipped entry {skipped.folder.name}: {skipped.reason}"), file=stream or sys.stderr)


def build_site(data_dir: Path, out_dir: Path, config_path: Path | None = None) -> dict[str, Any]:
    """Build the leaderboard site from ``data_dir`` into ``out_dir``.

    Writes ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.json``, ``index.html`` and
    ``plots/*.svg``; returns ``{"models": entries shown, "ranked": ranked entries, "skipped": entries
    left out, "files": [relative paths]}``. Raises UserError (one line) for a bad config, or a data
    folder that is missing or holds no valid entry; nothing is written then.
    """
    config = load_config(config_path)
    loaded = load_entries(Path(data_dir))
    for skipped in loaded.skipped:
        warn_skipped(skipped)
    if not loaded.entries:
        raise UserError(
            f"{data_dir}: no valid entries ({len(loaded.skipped)} skipped, see the warnings); "
            "re-add them with `vlmbench leaderboard add` or remove them"
        )
    check_columns_resolve(config, loaded.entries, str(config_path or default_config_path()))
    board = make_board(config, loaded.entries)
    files = render_plots(board)
    files["leaderboard.md"] = render_markdown(board).encode()
    files["leaderboard.csv"] = render_csv(board).encode()
    files["leaderboard.json"] = render_json(board).encode()
    files["index.html"] = render_html(board, figures(board)).encode()
    write_files(Path(out_dir), files)
    return {"models": len(loaded.entries), "ranked": board.ranked, "skipped": len(loaded.skipped), "files": sorted(files)}


def write_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write each file under ``out_dir`` (created as needed), each into a new file renamed over its name: a link,
    a pipe or a file planted there (an old site folder from elsewhere) is replaced, never written through or waited on."""
    from vlmbench import replace_file

    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder; choose a folder for the site")
    for name, data in files.items():
        target = out_dir / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_file(target, data)
        except OSError as exc:
            raise UserError(
                f"--out {printable(str(target))}: cannot be written ({exc.strerror or type(exc).__name__}); choose a writable folder"
            ) from None
