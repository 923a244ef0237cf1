"""Model-judge calls kept in the response store, so a verdict is paid for once.

A model judge (a classifier, an LLM) looks every item up before calling its model and stores each
answer the moment it exists: scoring a run a second time calls the judge model 0 times, and a
crash mid-judging loses nothing already judged. Entries are keyed by the judge's full identity
(name, version, model identity, prompt hash) and the exact input, and listed by ``vlmbench cache
info`` under the backend ``judge:<name>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmbench.scoring.base import ScoreInput, Verdict

if TYPE_CHECKING:  # the backend module pulls in Pillow: judges import it only when they run
    from vlmbench.backend import Request


class JudgeCalls:
    """A judge's view of the response store, with counts of calls sent, answers reused and failures
    (each counted once per distinct input: identical responses are judged once)."""

    def __init__(self, store_path: Path | None, judge: str, identity: Mapping[str, Any]) -> None:
        from vlmbench.store import ResponseStore

        self.judge = judge
        self.identity = dict(identity)
        self.store = ResponseStore(store_path) if store_path else None
        self.sent = self.reused = self.errors = 0
        self._known: dict[str, str] = {}  # answers seen in this process: a repeated input is neither re-sent nor re-counted

    def key(self, material: Mapping[str, Any]) -> str:
        """The store key of one judge input (``material``: everything the judge model sees)."""
        blob = json.dumps({"judge": self.judge, "identity": self.identity, "input": dict(material)}, sort_keys=True, ensure_ascii=False)
        return "judge:" + hashlib.sha256(blob.encode()).hexdigest()

    def lookup(self, key: str) -> str | None:
        """The stored answer for ``key`` (counted once as reused), or None."""
        if key in self._known:
            return self._known[key]
        found = self.store.get(key) if self.store else None
        if found is None or found.text is None:
            return None
        self.reused += 1
        self._known[key] = found.text
        return found.text

    def keep(self, key: str, text: str) -> None:
        """Store one answer durably, the moment it exists."""
        from vlmbench.backend import Response

        self.sent += 1
        self._known[key] = text
        if self.store:
            self.store.put(key, backend=f"judge:{self.judge}", model=self.identity, task=f"judge:{self.judge}", response=Response("", text=text))

    def failed(self) -> None:
        """Count a judge call that failed (it is never stored and never becomes a verdict)."""
        self.sent += 1
        self.errors += 1

    def counts(self) -> dict[str, int]:
        """``sent``, ``reused`` and ``errors`` so far."""
        return {"sent": self.sent, "reused": self.reused, "errors": self.errors}

    def close(self) -> None:
        """Close the store connection."""
        if self.store:
            self.store.close()


def judge_replies(
    backend: Any,
    requests: Iterable[Request],
    pending: Mapping[str, list[ScoreInput]],
    calls: JudgeCalls,
    name: str,
    verdict: Callable[[ScoreInput, str], Verdict],
) -> Iterator[Verdict]:
    """Send a model judge's ``requests`` (ids are store keys); keep each reply the moment it arrives and
    yield ``verdict(item, reply)`` for every item waiting on it (``pending``: key -> items). A failed or
    empty reply is counted as a judge error and yields verdicts without an answer, carrying the error."""
    for response in backend.generate(iter(requests)):
        waiting = pending.get(response.request_id, [])
        if response.text is None or not response.text.strip():
            calls.failed()
            for item in waiting:
                yield Verdict(item.id, None, None, name, {"error": response.error or "empty judge reply"})
            continue
        calls.keep(response.request_id, response.text)
        for item in waiting:
            yield verdict(item, response.text)
