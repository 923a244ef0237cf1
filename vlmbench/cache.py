"""Where vlmbench keeps what it can make again: generated data, kept image hashes, the default response
store, and what plugins keep between runs (e.g. the ``hf`` backend's resolved model dtypes)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "VLMBENCH_CACHE_DIR"


def cache_dir() -> Path:
    """``$VLMBENCH_CACHE_DIR`` (unless empty), or ``~/.cache/vlmbench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vlmbench").expanduser()


def check_cache_dir() -> Path:
    """The cache folder, created if need be; a one-line :class:`~vlmbench.errors.UserError` naming
    ``$VLMBENCH_CACHE_DIR`` when it cannot be a folder (a file, ``/dev/null``, unwritable, a name the file
    system cannot hold)."""
    from vlmbench.errors import UserError

    path = cache_dir()
    try:
        str(path).encode("utf-8")  # bytes that are no UTF-8 arrive as lone surrogates, which Arrow cannot open
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UserError(f"cache folder {ascii(str(path))[1:-1]} cannot be used ({reason}); set ${CACHE_ENV} to a writable folder") from None
    return path
