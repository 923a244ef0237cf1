"""``vlmbench cache info|clear``: inspect or prune the response store."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from vlmbench.cli.commands import CommandSpec


def cache(args: argparse.Namespace) -> int:
    """Inspect or prune the response store."""
    from tabulate import tabulate

    from vlmbench.store import ResponseStore, default_store_path

    path = Path(args.store) if args.store else default_store_path()
    if not path.exists():
        print(f"response store {path}: empty (no file yet)")
        return 0
    store = ResponseStore(path)
    if args.action == "clear":
        deleted = store.clear(backend=args.model, model_contains=args.model_id)
        print(f"deleted {deleted} responses from {path}")
        return 0
    rows = [
        [e["backend"], _short(e["model"]), e["responses"], _date(e["first"]), _date(e["last"])]
        for e in store.info()
        if (not args.model or e["backend"] == args.model)
    ]
    print(f"response store: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(tabulate(rows, headers=["backend", "model", "responses", "first", "last"]))
    return 0


def _short(model: dict[str, Any]) -> str:
    """A model identity as ``k=v`` pairs (nested args flattened), for one table cell."""
    flat: dict[str, Any] = {}
    for key, value in model.items():
        if isinstance(value, dict):
            flat.update(value)
        elif key != "backend" and value is not None:
            flat[key] = value
    return ", ".join(f"{k}={v}" for k, v in flat.items())[:80] or "-"


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench cache``."""
    parser.add_argument("action", choices=["info", "clear"])
    parser.add_argument("--model", default=None, help="only this backend's responses")
    parser.add_argument("--model_id", default=None, help="only responses whose model identity contains this text")
    parser.add_argument("--store", default=None, help="the store file (default: as for `run`)")
    parser.set_defaults(func=cache)


COMMAND = CommandSpec("cache", "inspect or prune the response store", add_arguments)
