"""``--out`` paths: a file that stands where the path needs a folder is named as such, not as a failed write."""

from __future__ import annotations

import os
from pathlib import Path


def not_a_folder(path: Path) -> Path | None:
    """The first of ``path``'s parents (from the top) that exists but is not a folder (a file, a FIFO, a link
    to nothing), so that ``path`` can never be written; None when there is none. Looked at with ``os.stat``
    only: nothing is opened."""
    return next((parent for parent in reversed(Path(path).parents) if os.path.lexists(parent) and not os.path.isdir(parent)), None)
