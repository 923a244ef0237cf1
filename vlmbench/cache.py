"""Where vlmbench keeps what it can make again: generated data, kept image hashes, the default response
store, and what plugins keep between runs (e.g. the ``hf`` backend's resolved model dtypes)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "VLMBENCH_CACHE_DIR"


def cache_dir() -> Path:
    """``$VLMBENCH_CACHE_DIR``, or ``~/.cache/vlmbench``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "vlmbench")).expanduser()
