"""Letting go of the pages of memory-mapped dataset files once their bytes have been read.

``datasets`` memory-maps its Arrow files. Every page of image bytes a task reads stays resident in the
process, and counted in its resident size, until the map is closed, although the bytes were copied out
long before: at the study's full size, hundreds of MiB per task. :class:`PageReleaser` counts the bytes
read from a dataset and, every :data:`RELEASE_EVERY` bytes, the data table tells the kernel that the
process no longer needs the pages of that dataset's buffers (:func:`release_table_pages`,
``madvise(MADV_DONTNEED)``).

That is safe only for memory that cannot hold data of its own. Only the whole pages of buffers of an
Arrow table that the caller holds (so their map cannot go away meanwhile) are advised, and of those only
the parts inside a read-only map of one of the dataset's own files: never anonymous memory (a table
built in memory), never a writable map. A read-only map is a view of the file, so a later read of the
same bytes finds them again in the page cache (or on disk): only the process's resident size changes.
Where ``/proc/self/maps`` or ``madvise`` is missing (not Linux), nothing is done.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

RELEASE_EVERY = 64 * 1024 * 1024
"""Bytes read from one dataset between two releases of its pages."""


@lru_cache(maxsize=1)
def _madvise() -> Any:
    """libc's ``madvise`` (called with the GIL held), or None where it or ``MADV_DONTNEED`` is missing."""
    if not hasattr(mmap, "MADV_DONTNEED") or not os.path.exists("/proc/self/maps"):
        return None
    try:
        function = ctypes.PyDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def read_only_maps(paths: Iterable[str]) -> list[tuple[int, int]]:
    """(start, end) addresses of this process's read-only maps of these files."""
    wanted = {os.path.realpath(p) for p in paths}
    found: list[tuple[int, int]] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) < 6 or "w" in fields[1]:
                    continue
                if fields[5].rstrip("\n") in wanted:
                    start, end = fields[0].split("-")
                    found.append((int(start, 16), int(end, 16)))
    except OSError:
        return []
    return found


def release_pages(ranges: Iterable[tuple[int, int]], paths: Iterable[str]) -> int:
    """Drop this process's resident pages in ``ranges`` ((address, size) of memory the caller keeps
    mapped) where they lie inside read-only maps of ``paths``; returns the bytes advised (0 where this
    cannot be done). The pages stay valid: their next read pages the file in again."""
    madvise = _madvise()
    if madvise is None:
        return 0
    maps = read_only_maps(paths)
    page = mmap.PAGESIZE
    advised = 0
    for address, size in ranges:
        start, end = -(-address // page) * page, (address + size) // page * page  # whole pages only
        for low, high in maps:
            first, last = max(start, low), min(end, high)
            if first < last and madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), mmap.MADV_DONTNEED) == 0:
                advised += last - first
    return advised


def table_buffers(table: Any) -> list[tuple[int, int]]:
    """(address, size) of every buffer of a pyarrow ``Table``'s columns."""
    ranges: list[tuple[int, int]] = []
    for column in table.columns:
        for chunk in column.chunks:
            ranges.extend((buffer.address, buffer.size) for buffer in chunk.buffers() if buffer is not None and buffer.size)
    return ranges


def release_table_pages(table: Any, paths: Iterable[str]) -> int:
    """:func:`release_pages` for the buffers of ``table`` (a pyarrow ``Table`` the caller holds) that are
    mapped from the files ``paths``."""
    return release_pages(table_buffers(table), paths)


class PageReleaser:
    """Counts the bytes read from each dataset: :meth:`due` says when its pages should be let go."""

    def __init__(self, every: int | None = None) -> None:
        self.every = RELEASE_EVERY if every is None else every
        self._read: dict[int, int] = {}

    def due(self, source: int, size: int) -> bool:
        """``size`` bytes were just copied out of dataset ``source``: True (and the count restarts) once
        :attr:`every` bytes have been read since its last release."""
        total = self._read.get(source, 0) + size
        self._read[source] = 0 if total >= self.every else total
        return total >= self.every
