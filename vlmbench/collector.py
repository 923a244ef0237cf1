"""How often the garbage collector runs while ``vlmbench run`` reads stored answers and scores records.

Python collects its youngest objects every 700 allocations of containers, and every tenth of those
collections goes on to the older generations, walking every live record and document of a run: 0.23 s
of a hub-size re-run. Inside :func:`few_collections` (looking answers up in the store and writing their
records, scoring by rules, computing metrics: vlmbench's own code, whose objects reference counting
frees), young objects may pile up to :data:`FEW_COLLECTIONS_THRESHOLD` first. Everywhere else Python's
own pace is kept: while requests are in flight, reference cycles of HTTP clients and models can hold
large buffers, and collecting them 70 times less often held 2.1 GiB instead of 0.27 GiB in a full-size
first run; a task file's templates (whose macros make reference cycles that hold what a rendering made)
and plugins' document steps and judges run at that pace too.

Only the ``vlmbench`` command's own process turns this on (:func:`vlmbench.cli.freeze_imports`); a
program or a test that calls the library keeps its collector as it is.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FEW_COLLECTIONS_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation inside :func:`few_collections`."""

_enabled = False


def enable(on: bool = True) -> None:
    """Let :func:`few_collections` change the collector's pace (the command's own process only)."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    """Whether :func:`few_collections` changes the collector's pace in this process."""
    return _enabled


@contextmanager
def few_collections() -> Iterator[None]:
    """Collect young objects every :data:`FEW_COLLECTIONS_THRESHOLD` allocations inside the block (when
    enabled); the pace before is restored after it. Only around vlmbench's own code that makes no reference
    cycles: never around requests, models, templates or a plugin's code."""
    if not _enabled:
        yield
        return
    before = gc.get_threshold()
    gc.set_threshold(FEW_COLLECTIONS_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
