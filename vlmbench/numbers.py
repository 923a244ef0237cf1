"""Whole numbers read from text others wrote: arguments, environment values, stored and bundled fields."""

from __future__ import annotations

MAX_DIGITS = 18
"""Digits read by default: every count, size or port fits (a 64-bit integer has 19); a caller bounds the value."""


def whole_number(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The whole number ``text`` spells in ASCII digits (at most ``max_digits`` of them), else None.

    ``str.isdigit`` alone is not enough before ``int``: it accepts "²" and other digits ``int`` refuses
    (a ValueError, so a traceback), and ``int`` refuses more than 4,300 digits.
    """
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None
