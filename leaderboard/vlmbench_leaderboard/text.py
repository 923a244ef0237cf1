"""Untrusted text: normalise submitted names, find characters that hide or disguise, print safely.

A leaderboard name is shown to people, so two names that look the same must be the same text:
metadata text is NFKC-normalised, and characters that render as nothing, reorder the text around
them or control a terminal (C0, DEL, C1, zero-width, bidi, other format characters, line and
paragraph separators, fillers) are refused. Any untrusted text printed to a terminal goes
through :func:`terminal` first.
"""

from __future__ import annotations

import unicodedata

# Letters and marks that render as blank space or nothing at all (not format characters, so listed).
INVISIBLE = frozenset(
    (0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))
)
# Unicode categories refused anywhere in metadata text: controls (C0, DEL, C1), format characters
# (zero-width, bidi overrides and isolates, soft hyphen, tags), surrogates, private use, unassigned,
# line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
MAX_SHOWN = 200


def normalise(text: str) -> str:
    """The form a name is stored and compared in: NFKC, without surrounding white space."""
    return unicodedata.normalize("NFKC", text).strip()


def codepoint(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE`` style description of one character."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be shown as a name (one line), or None when it can."""
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES or ord(char) in INVISIBLE:
            return f"contains the invisible or control character {codepoint(char)}; remove it"
        if unicodedata.category(char) == "Zs" and char != " ":
            return f"contains the space character {codepoint(char)}; use a plain space"
    if text != text.strip():
        return "starts or ends with white space; remove it"
    if "  " in text:
        return "contains two spaces in a row; use one"
    if unicodedata.normalize("NFKC", text) != text:
        return "is not NFKC-normalised (it has compatibility characters such as full-width letters); repack it with `vlmbench submit`"
    return None


def visible(text: str) -> bool:
    """Whether ``text`` shows anything: not empty, not only white space, format or invisible characters."""
    return any(not char.isspace() and unicodedata.category(char) not in REFUSED_CATEGORIES and ord(char) not in INVISIBLE for char in text)


def terminal(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` safe to print on one terminal line: every non-printable character escaped, length bounded."""
    shown = str(text)
    out = []
    for char in shown[:limit]:
        if char.isprintable() and ord(char) not in INVISIBLE:
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out) + ("..." if len(shown) > limit else "")
