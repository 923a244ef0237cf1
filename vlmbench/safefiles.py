"""Reading a file that someone else named (a task file, an image a dataset names by path): regular files only, bounded.

A path from a task file or a dataset may name a named pipe (FIFO), whose ``open`` or ``read`` waits for a
writer forever, a device such as ``/dev/zero`` that never ends, a socket or a folder. :func:`read_regular_file`
refuses every such file before it reads a byte, and never reads more than its cap.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(ValueError):
    """A file that is not a regular file, or is larger than the cap; ``str()`` names the file, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str], what: str, reason: str) -> None:
        self.path, self.what, self.reason = os.fspath(path), what, reason
        super().__init__(f"{what} {self.path}: {reason}")


def _kind(mode: int) -> str:
    return next((name for check, name in _KINDS if check(mode)), "not a regular file")


def _not_regular(path: str | os.PathLike[str], what: str, mode: int) -> FileRefused:
    return FileRefused(path, what, f"is {_kind(mode)}, not a regular file; point it at a regular file")


def _too_large(path: str | os.PathLike[str], what: str, max_bytes: int) -> FileRefused:
    return FileRefused(path, what, f"larger than the limit of {max_bytes} bytes; use a smaller file")


def read_regular_file(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path``, at most ``max_bytes`` of them; :class:`FileRefused` for anything but a regular
    file (a symbolic link to one is followed) or a file over the cap, ``OSError`` when it cannot be read.

    The file is checked with ``os.stat`` before it is opened (opening a device can act on it), opened
    non-blocking (a FIFO put in its place meanwhile cannot block the open) and checked again through the
    open descriptor, and at most ``max_bytes + 1`` bytes are read."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(path, what, mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise _not_regular(path, what, status.st_mode)
        if status.st_size > max_bytes:
            raise _too_large(path, what, max_bytes)
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # grown since fstat
        raise _too_large(path, what, max_bytes)
    return data


def replace_file(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all: into a new file beside it, created
    exclusively (nothing planted there is followed), then renamed over ``path``. A link, FIFO or file at
    ``path`` is replaced, never written through or waited on, and a crash leaves the old file or the new
    one. The file gets the permissions a plain write gives (not a scratch file's 0600). ``OSError`` when it
    cannot be written; no scratch file is left behind."""
    target = os.fspath(path)
    handle, scratch = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=os.path.dirname(target) or ".")
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            file.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(scratch, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise


@functools.cache
def _umask() -> int:
    """This process's umask, read once (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
