"""Model-judge calls kept in the response store, so a verdict is paid for once.

A model judge (a classifier, an LLM) looks every item up before calling its model and stores each
answer the moment it exists: scoring a run a second time calls the judge model 0 times, and a
crash mid-judging loses nothing already judged. Entries are keyed by the judge's full identity
(name, version, model identity, prompt hash; secret values as slow hashes, not masked, so judges that
differ only in a secret never share answers) and the exact input, and listed by ``vlmbench cache
info`` under the backend ``judge:<name>``. Only answers the judge can read are stored: a reply that
matches none of its labels is a judge error, counted as ``unmatched``, and asked again next time.
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

    def __init__(self, store_path: Path | None, judge: str, identity: Mapping[str, Any], key_identity: Mapping[str, Any] | None = None) -> None:
        """``identity``: the judge's identity as written to files (secrets masked); ``key_identity``: the one
        its store keys are made of (secrets hashed, :func:`vlmbench.redact.hash_secrets`; default ``identity``)."""
        from vlmbench.results import provenance
        from vlmbench.store import ResponseStore

        self.judge = judge
        self.identity = dict(identity)
        self.key_identity = dict(key_identity) if key_identity is not None else self.identity
        # Each stored reply names the versions that judged it, as a model's answers do (`vlmbench cache info`).
        self.store = ResponseStore(store_path, provenance=provenance()) if store_path else None
        self.sent = self.reused = self.errors = self.unmatched = 0
        self._known: dict[str, str] = {}  # answers seen in this process: a repeated input is neither re-sent nor re-counted
        self._served: dict[str, str] = {}  # the model a server said gave each known answer, where it named one

    def key(self, material: Mapping[str, Any]) -> str:
        """The store key of one judge input (``material``: everything the judge model sees)."""
        blob = json.dumps({"judge": self.judge, "identity": self.key_identity, "input": dict(material)}, sort_keys=True, ensure_ascii=False)
        return "judge:" + hashlib.sha256(blob.encode()).hexdigest()

    def lookup(self, key: str, accept: Callable[[str], bool] | None = None) -> str | None:
        """The stored answer for ``key`` (counted once as reused), or None; also None for a stored answer
        that ``accept`` rejects (one an older version kept though it matched no label): it is asked again."""
        if key in self._known:
            return self._known[key]
        found = self.store.get(key) if self.store else None
        if found is None or found.text is None or (accept is not None and not accept(found.text)):
            return None
        self.reused += 1
        self._known[key] = found.text
        if found.served_model:
            self._served[key] = found.served_model
        return found.text

    def keep(self, key: str, text: str, served_model: str | None = None) -> None:
        """Store one answer (and the model its server said gave it) durably, the moment it exists."""
        from vlmbench.backend import Response

        self.sent += 1
        self._known[key] = text
        response = Response("", text=text, served_model=served_model)
        if response.served_model:
            self._served[key] = response.served_model
        if self.store:
            self.store.put(key, backend=f"judge:{self.judge}", model=self.identity, task=f"judge:{self.judge}", response=response)

    def served(self, verdict: Verdict, key: str) -> Verdict:
        """``verdict`` with the model its server said answered (``detail["served_model"]``), when the
        answer for ``key`` came with one: results count a judge's verdicts by it."""
        served_model = self._served.get(key)
        if served_model is None:
            return verdict
        return Verdict(verdict.id, verdict.parsed, verdict.correct, verdict.scorer, {**verdict.detail, "served_model": served_model})

    def failed(self) -> None:
        """Count a judge call that failed (it is never stored and never becomes a verdict)."""
        self.sent += 1
        self.errors += 1

    def failed_unmatched(self) -> None:
        """Count a judge reply that matched none of its labels: a failed call (never stored), also counted as ``unmatched``."""
        self.failed()
        self.unmatched += 1

    def rejected(self) -> None:
        """Count an input that was never sent (e.g. too long for the judge's prompt) as a judge error."""
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
    matches: Callable[[ScoreInput, str], bool] | None = None,
) -> Iterator[Verdict]:
    """Send a model judge's ``requests`` (ids are store keys); keep each reply the moment it arrives and
    yield ``verdict(item, reply)`` for every item waiting on it (``pending``: key -> items). A failed or
    empty reply, or one that ``matches`` rejects (a refusal by the judge, off-format prose), is counted
    as a judge error, never stored, and yields verdicts without an answer, carrying the error."""
    for response in backend.generate(iter(requests)):
        waiting = pending.get(response.request_id, [])
        if response.text is None or not response.text.strip():
            calls.failed()
            for item in waiting:
                yield Verdict(item.id, None, None, name, {"error": response.error or "empty judge reply"})
            continue
        if matches is not None and not all(matches(item, response.text) for item in waiting):
            calls.failed_unmatched()
            detail = {"error": f"judge reply matched no label: {unmatched_excerpt(response.text)}", "reply": response.text[:500], "matched": False}
            for item in waiting:
                yield Verdict(item.id, None, None, name, dict(detail))
            continue
        calls.keep(response.request_id, response.text, response.served_model)
        for item in waiting:
            yield calls.served(verdict(item, response.text), response.request_id)


def unmatched_excerpt(reply: str) -> str:
    """The start of an unreadable judge reply, quoted on one line."""
    text = " ".join(reply.split())
    return json.dumps(text[:120] + ("..." if len(text) > 120 else ""), ensure_ascii=False)
