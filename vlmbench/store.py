"""The response store: every paid-for model response, kept durably in SQLite (WAL mode).

A response is written the moment it arrives, before it is scored. Its key covers everything that
can change an answer: backend, model identity, task name and version, the full request (text, a
hash of each image's bytes, answer choices) and the generation settings. Two models, revisions or
temperatures therefore never share entries. Errors and empty responses are never stored.
Several processes may write one store at once: SQLite serialises the writers.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vlmbench.backend import GenerationSettings, Response
from vlmbench.errors import UserError

STORE_ENV = "VLMBENCH_STORE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    text TEXT NOT NULL,
    usage TEXT,
    latency_s REAL,
    prompt TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_model ON responses (backend, model);
"""


def default_store_path() -> Path:
    """``$VLMBENCH_STORE``, else ``responses.sqlite`` in the vlmbench cache folder."""
    from vlmbench.data.builtin import cache_dir

    return Path(os.environ.get(STORE_ENV) or cache_dir() / "responses.sqlite").expanduser()


def generation_identity(settings: GenerationSettings) -> dict[str, Any]:
    """The generation settings that can change an answer (a greedy request ignores seed and sampling knobs)."""
    values = asdict(settings)
    if not settings.do_sample:
        for ignored in ("seed", "temperature", "top_p"):
            values.pop(ignored)
    return values


def is_deterministic(settings: GenerationSettings) -> bool:
    """True when the same request always gets the same answer (greedy or temperature 0)."""
    return not settings.do_sample or settings.temperature == 0


def request_key(
    *,
    backend: str,
    model: dict[str, Any],
    task: str,
    task_version: str,
    messages: list[dict[str, Any]],
    generation: GenerationSettings,
    answer_choices: Iterable[str] | None,
) -> str:
    """sha256 over everything that can change an answer. ``messages`` hold text and image hashes, never bytes."""
    material = {
        "backend": backend,
        "model": model,
        "task": task,
        "task_version": task_version,
        "messages": messages,
        "generation": generation_identity(generation),
        "answer_choices": list(answer_choices) if answer_choices else None,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseStore:
    """A SQLite file of responses, keyed by :func:`request_key`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed response survives any crash of this process (kill -9 included);
            # only an OS crash or power cut can drop the last commits, and never corrupts the file.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UserError(f"response store {self.path}: cannot open ({exc}); pass --store elsewhere or remove the file") from None

    def get(self, key: str) -> Response | None:
        """The stored response for ``key``, if any (its request id is filled in by the caller)."""
        row = self._db.execute("SELECT text, usage, latency_s, prompt FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return Response(request_id="", text=row[0], usage=json.loads(row[1]) if row[1] else None, latency_s=row[2], prompt=row[3])

    def put(self, key: str, *, backend: str, model: dict[str, Any], task: str, response: Response) -> bool:
        """Store one answer durably (one transaction). Errors and empty answers are refused: returns False."""
        if response.error is not None or not (response.text or "").strip():
            return False
        self._db.execute(
            "INSERT OR IGNORE INTO responses (key, backend, model, task, text, usage, latency_s, prompt, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                backend,
                json.dumps(model, sort_keys=True),
                task,
                response.text,
                json.dumps(response.usage) if response.usage else None,
                response.latency_s,
                response.prompt,
                time.time(),
            ),
        )
        return True

    def info(self) -> list[dict[str, Any]]:
        """Entry counts per backend and model."""
        rows = self._db.execute(
            "SELECT backend, model, COUNT(*), MIN(created), MAX(created) FROM responses GROUP BY backend, model ORDER BY backend, model"
        ).fetchall()
        return [{"backend": b, "model": json.loads(m), "responses": n, "first": first, "last": last} for b, m, n, first, last in rows]

    def clear(self, backend: str | None = None, model_contains: str | None = None) -> int:
        """Delete entries (all, or those of one backend and/or whose model identity contains a string)."""
        clauses, params = [], []
        if backend:
            clauses.append("backend = ?")
            params.append(backend)
        if model_contains:
            clauses.append("instr(model, ?) > 0")
            params.append(model_contains)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        deleted = self._db.execute(f"DELETE FROM responses{where}", params).rowcount
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
