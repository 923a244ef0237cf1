"""What every rule parser reads first: the head and tail of a response, normalised (NFKC, ASCII quotes,
no markdown emphasis, single spaces)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

UNPARSED = None

HEAD, TAIL = 4000, 2000

# Typographic quotes and dashes to ASCII; ideographic full stop and comma and Arabic comma,
# semicolon and question mark, and the Devanagari full stops, to ASCII punctuation.
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
        "\u0964": ".",
        "\u0965": ".",
    }
)
_MARKDOWN = re.compile(r"[*`#>|~]+|_{2,}|\b_|_\b")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n[\n ]*")


def word_set(text: str) -> frozenset[str]:
    """A word set written as one space-separated string."""
    return frozenset(text.split())


def alternation(phrases: Iterable[str]) -> str:
    """A regular expression for any of ``phrases``, the longest first where several match, as a prefix tree.

    It matches what the plain alternation of the phrases sorted longest first matches (phrases that match at one
    place are prefixes of each other, so they share a path in the tree, where longer branches come first), and it
    is faster: each character is compared once for all the phrases that share it.
    """
    tree: dict[str, Any] = {}
    for phrase in phrases:
        node = tree
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}
    return _pattern(tree)


def _pattern(node: dict[str, Any]) -> str:
    ends = "" in node
    branches = [re.escape(char) + _pattern(child) for char, child in node.items() if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if not ends:
        return body
    return f"(?:{body})?" if len(branches) > 1 or len(branches[0]) > 1 else f"{body}?"


def clip(text: str) -> str:
    """The head and tail of a long response: verdicts and answers come first or last."""
    if len(text) <= HEAD + TAIL:
        return text
    return f"{text[:HEAD]}\n{text[-TAIL:]}"


def prepare(text: str) -> str:
    """Clipped, NFKC-normalised text with ASCII quotes, no markdown emphasis and single spaces."""
    text = unicodedata.normalize("NFKC", clip(text)).translate(_PUNCTUATION)
    text = _MARKDOWN.sub(" ", text)
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n", text).strip()
