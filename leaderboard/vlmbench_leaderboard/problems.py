"""The one exception a bundle check raises: a rejection with one-line reasons."""

from __future__ import annotations


class Rejected(Exception):
    """A bundle (or run folder) that fails a check; ``reasons`` are one line each."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons
