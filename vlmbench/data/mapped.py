"""Letting go of the pages of memory-mapped dataset files once their bytes have been read.

``datasets`` memory-maps its Arrow files. Every page of image bytes a task reads stays resident in the
process, and counted in its resident size, until the map is closed, although the bytes were copied out
long before: at the study's full size, hundreds of MiB per task. :class:`PageReleaser` counts the bytes
read from a dataset's files and, every :data:`RELEASE_EVERY` bytes, tells the kernel that the process
no longer needs the pages of those maps (``madvise(MADV_DONTNEED)``).

That is safe only for maps that cannot hold data of their own: :func:`release_file_pages` advises
read-only maps of the named files and nothing else (never anonymous memory, never a writable map).
A read-only map is a view of the file, so a later read of the same bytes finds them again in the page
cache (or on disk): only the process's resident size changes. Where ``/proc/self/maps`` or
``madvise`` is missing (not Linux), nothing is done.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

RELEASE_EVERY = 64 * 1024 * 1024
"""Bytes read from one dataset's files between two releases of their pages."""


@lru_cache(maxsize=1)
def _madvise() -> Any:
    """libc's ``madvise``, or None where it (or ``MADV_DONTNEED``) is missing."""
    if not hasattr(mmap, "MADV_DONTNEED") or not os.path.exists("/proc/self/maps"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
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


def release_file_pages(paths: Iterable[str]) -> int:
    """Drop this process's resident pages of its read-only maps of ``paths``; returns the bytes advised
    (0 where this cannot be done). The maps stay valid: their next read pages the file in again."""
    madvise = _madvise()
    if madvise is None:
        return 0
    advised = 0
    for start, end in read_only_maps(paths):
        if madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), mmap.MADV_DONTNEED) == 0:
            advised += end - start
    return advised


class PageReleaser:
    """Counts bytes read from each dataset's memory-mapped files and releases their pages every
    :data:`RELEASE_EVERY` bytes (see the module's docstring)."""

    def __init__(self, every: int | None = None) -> None:
        self.every = RELEASE_EVERY if every is None else every
        self._read: dict[int, int] = {}

    def read(self, source: int, files: list[str], size: int) -> None:
        """``size`` bytes were just copied out of ``files`` (the Arrow files of dataset ``source``)."""
        if not files:
            return
        total = self._read.get(source, 0) + size
        if total >= self.every:
            release_file_pages(files)
            total = 0
        self._read[source] = total
