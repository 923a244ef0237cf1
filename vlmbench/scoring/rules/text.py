"""What every rule parser reads first: the head and tail of a response, normalised (NFKC, ASCII quotes,
no markdown emphasis, single spaces)."""

from __future__ import annotations

import re
import unicodedata

UNPARSED = None

HEAD, TAIL = 4000, 2000

# Typographic quotes and dashes to ASCII; ideographic full stop and comma and Arabic comma,
# semicolon and question mark to ASCII punctuation.
_PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u02bc": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2014": ",",
        "\u2013": ",",
        "\u3001": ",",
        "\u3002": ".",
        "\u060c": ",",
        "\u061b": ";",
        "\u061f": "?",
    }
)
_MARKDOWN = re.compile(r"[*`#>|~]+|_{2,}|\b_|_\b")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n[\n ]*")


def word_set(text: str) -> frozenset[str]:
    """A word set written as one space-separated string."""
    return frozenset(text.split())


def _clip(text: str) -> str:
    """The head and tail of a long response: verdicts and answers come first or last."""
    if len(text) <= HEAD + TAIL:
        return text
    return f"{text[:HEAD]}\n{text[-TAIL:]}"


def prepare(text: str) -> str:
    """Clipped, NFKC-normalised text with ASCII quotes, no markdown emphasis and single spaces."""
    text = unicodedata.normalize("NFKC", _clip(text)).translate(_PUNCTUATION)
    text = _MARKDOWN.sub(" ", text)
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n", text).strip()
