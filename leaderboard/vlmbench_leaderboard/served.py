"""Which models served an entry's answers: the model an API's replies named (``served_models`` in results.json).

An entry's name is what its submitter calls the model (``gpt-4o``); the replies name the version that
answered (``gpt-4o-2024-08-06``). ``leaderboard verify`` requires each task's counts to equal what the
samples say, so they are the submitter's samples' word, shown as text. A local model names none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from vlmbench_leaderboard.judges import display


def entry_served_models(results: Mapping[str, Any]) -> dict[str, int]:
    """Answers by the model their replies named, over every task of an entry, most first (then by name)."""
    total: Counter[str] = Counter()
    tasks = results.get("tasks")
    for entry in tasks.values() if isinstance(tasks, Mapping) else ():
        counts = entry.get("served_models") if isinstance(entry, Mapping) else None
        for name, count in counts.items() if isinstance(counts, Mapping) else ():
            if isinstance(name, str) and name and isinstance(count, int) and not isinstance(count, bool) and count > 0:
                total[name] += count
    return dict(sorted(total.items(), key=lambda item: (-item[1], item[0])))


SHOWN = 5
"""Names a line shows; the rest are counted together (a server may name a different model each time)."""


def served_text(counts: Mapping[str, int]) -> str:
    """One plain line: the model that served every answer, or each with its answers (most first, at most
    :data:`SHOWN` of them, then how many more); empty when none is named."""
    if len(counts) == 1:
        return display(next(iter(counts)))
    ranked = list(counts.items())
    shown = [f"{display(name)} ({count:,} answers)" for name, count in ranked[:SHOWN]]
    if rest := ranked[SHOWN:]:
        shown.append(f"and {len(rest):,} more ({sum(count for _, count in rest):,} answers)")
    return ", ".join(shown)
