"""``vlmbench cache info|clear|salvage``: inspect or prune the response store, or rescue a damaged one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vlmbench.cli import args as types
from vlmbench.cli.commands import CommandSpec


def cache(args: argparse.Namespace) -> int:
    """Inspect or prune the response store."""
    from tabulate import tabulate

    from vlmbench.backend import inert_line
    from vlmbench.store import ResponseStore, default_store_path

    if args.action == "salvage":
        return _salvage(args)
    path = Path(args.store) if args.store else default_store_path()
    if not path.exists():
        print(f"response store {_shown(path)}: empty (no file yet)")
        return 0
    store = ResponseStore(path)
    try:
        if args.action == "clear":
            deleted = store.clear(backend=args.model, model_contains=args.model_id)
            print(f"deleted {deleted} responses from {_shown(path)}")
            return 0
        entries = store.info()
    finally:
        store.close()
    rows = [
        [
            e["backend"],
            model_name(e["model"]),
            _details(e["model"]),
            e["responses"],
            _served(e["served"]),
            _versions(e),
            _date(e["first"]),
            _date(e["last"]),
        ]
        for e in entries
        if (not args.model or e["backend"] == args.model)
    ]
    print(f"response store: {_shown(path)} ({path.stat().st_size / 1e6:.1f} MB)")
    headers = ["backend", "model", "identity", "responses", "served by", "versions", "first", "last"]
    # A store may come from elsewhere: what it names is shown as inert text, one line per cell.
    print(
        tabulate(
            [[inert_line(cell) or "-" if isinstance(cell, str) else cell for cell in row] for row in rows], headers=headers, disable_numparse=True
        )
    )
    return 0


def _served(served: dict[str, int], width: int = 60) -> str:
    """The models servers said answered, most first, with their counts, for one table cell (``-``: none named)."""
    from vlmbench.backend import inert_line

    names = sorted(served.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{inert_line(name, 60)} ({count})" for name, count in names)
    return (text[: width - 3] + "...") if len(text) > width else text or "-"


def _versions(entry: dict[str, Any]) -> str:
    """How many sets of versions (vlmbench, Python, packages) produced the entries, and how many entries have none kept."""
    known, unknown = int(entry["versions"]), int(entry["unknown"] or 0)
    return f"{known}" + (f" (+{unknown} unknown)" if unknown else "") if known else "unknown" if unknown else "-"


NAME_KEYS = ("pretrained", "model", "model_id", "name")


def _flat(model: dict[str, Any]) -> dict[str, Any]:
    """A model identity with nested args flattened, without the backend name and empty values."""
    flat: dict[str, Any] = {}
    for key, value in model.items():
        if isinstance(value, dict):
            flat.update({k: v for k, v in value.items() if v not in (None, "")})
        elif key != "backend" and value not in (None, ""):
            flat[key] = value
    return flat


def model_name(model: dict[str, Any]) -> str:
    """The model's name in full (hub id, folder or API model name), never cut short."""
    flat = _flat(model)
    return next((str(flat[k]) for k in NAME_KEYS if k in flat), "-")


def _details(model: dict[str, Any], width: int = 60) -> str:
    """The rest of the identity as ``k=v`` pairs, hashes shortened to 12 characters, for one table cell."""
    flat = _flat(model)
    name = next((k for k in NAME_KEYS if k in flat), None)
    text = ", ".join(f"{k}={str(v)[:12] if len(str(v)) == 64 else v}" for k, v in flat.items() if k != name)
    return (text[: width - 3] + "...") if len(text) > width else text or "-"


def _salvage(args: argparse.Namespace) -> int:
    """Copy the readable responses of a damaged store into a new store (in its place, by default)."""
    from vlmbench.salvage import salvage
    from vlmbench.store import default_store_path

    source = Path(args.path or args.store or default_store_path()).expanduser()
    report = salvage(source, Path(args.out).expanduser() if args.out else None)
    if report.healthy:
        print(f"nothing to salvage: {_shown(source)} is not damaged (all {report.copied} responses read as stored); it is kept as it is")
        return 0
    lost = f", {report.skipped_ranges} damaged part(s) skipped" if report.skipped_ranges else ""
    refused = f", {report.refused} malformed row(s) refused" if report.refused else ""
    kept = f"; the damaged file is kept as {_shown(report.kept)}" if report.kept else f"; {_shown(source)} is unchanged"
    print(f"salvaged {report.copied} responses into {_shown(report.target)}{lost}{refused}{kept}")
    return 0


def _shown(path: Path) -> str:
    """A store path as printed: it may come from $VLMBENCH_STORE or $VLMBENCH_CACHE_DIR, whose control characters
    (or bytes that are no UTF-8, which a strict terminal encoding cannot print) are shown inert."""
    from vlmbench.errors import printable

    return printable(str(path))


def _date(timestamp: float | None) -> str:
    from datetime import datetime

    try:
        return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp is not None else "-"
    except (OverflowError, OSError, ValueError):  # a time no calendar holds (a store from elsewhere)
        return "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench cache``."""
    parser.add_argument("action", choices=["info", "clear", "salvage"])
    parser.add_argument("path", nargs="?", default=None, type=types.path, help="salvage: the damaged store (default: as --store)")
    parser.add_argument("--out", default=None, type=types.path, help="salvage: write the new store here and leave the damaged one in place")
    parser.add_argument("--model", default=None, help="only this backend's responses")
    parser.add_argument("--model_id", default=None, help="only responses whose model identity contains this text")
    parser.add_argument("--store", default=None, type=types.path, help="the store file (default: as for `run`)")
    parser.set_defaults(func=cache)


COMMAND = CommandSpec("cache", "inspect, clear or salvage the response store", add_arguments)
