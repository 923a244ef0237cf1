"""The response store: every paid-for model response, kept durably in SQLite (WAL mode).

A response is written the moment it arrives, before it is scored. Its key covers everything that
can change an answer: backend, model identity, task name and version, the full request (text, a
hash of each image's bytes, answer choices) and the generation settings. Two models, revisions or
temperatures therefore never share entries. Errors and empty responses are never stored. An answer is
kept with its usage, latency, the exact prompt the model saw, the model its server said answered
(``served_model``) and the provenance (versions) of the run that produced it (``produced_with``, a digest
into the ``provenance`` table), so a reused answer reports what produced it. Library versions are not
part of the key: an answer stored under older versions is reused, and says so.

Several processes may share one store: SQLite serialises the writers, and a run claims each
request before sending it (:meth:`ResponseStore.claim`, owners and expiry in :mod:`vlmbench.claims`),
so concurrent runs split the work instead of paying for it twice.

Every SQLite failure becomes one line (:class:`~vlmbench.errors.UserError`) naming the file: a
damaged file names the salvage command (``vlmbench cache salvage PATH``, :mod:`vlmbench.salvage`);
a failed write (full disk) says that everything stored so far is kept and how to resume.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from vlmbench.backend import GenerationSettings, Response, token_count
from vlmbench.claims import CLAIM_TTL_S, Heartbeat, held_by_another, new_owner
from vlmbench.errors import UserError
from vlmbench.jsontext import compact_encoder

STORE_ENV = "VLMBENCH_STORE"
STORE_TABLES = frozenset({"responses", "provenance", "claims"})
"""The tables a response store holds (:data:`_SCHEMA`)."""

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
    created REAL NOT NULL,
    served_model TEXT,
    produced_with TEXT
);
CREATE INDEX IF NOT EXISTS responses_model ON responses (backend, model);
CREATE TABLE IF NOT EXISTS provenance (
    digest TEXT PRIMARY KEY,
    provenance TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""
_ADDED_COLUMNS = (("served_model", "TEXT"), ("produced_with", "TEXT"))  # columns that stores written before them lack
_KEYS_PER_QUERY = 500  # under SQLite's oldest limit of 999 parameters per statement
BUSY_TIMEOUT_S = 60
# SQLite's primary result codes (the low byte of an extended code).
_IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB, _BUSY, _LOCKED, _READONLY = 10, 11, 13, 14, 26, 5, 6, 8


def default_store_path() -> Path:
    """``$VLMBENCH_STORE``, else ``responses.sqlite`` in the vlmbench cache folder."""
    from vlmbench.cache import cache_dir

    return Path(os.environ.get(STORE_ENV) or cache_dir() / "responses.sqlite").expanduser()


def generation_identity(settings: GenerationSettings) -> dict[str, Any]:
    """The generation settings that can change an answer (a greedy request ignores seed and sampling knobs)."""
    # Keyed by the value types too: settings with temperature 1 and 1.0 are equal but serialise apart.
    return dict(_generation_identity(settings, tuple(type(v) for v in vars(settings).values())))


@functools.lru_cache(maxsize=256)
def _generation_identity(settings: GenerationSettings, types: tuple[type, ...]) -> tuple[tuple[str, Any], ...]:
    # A task's requests share one (frozen) settings object: worked out once, not once per request.
    values = asdict(settings)
    if not settings.do_sample:
        for ignored in ("seed", "temperature", "top_p"):
            values.pop(ignored)
    return tuple(values.items())


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


# What json.dumps(value, sort_keys=True, ensure_ascii=False) and json.dumps(value, ensure_ascii=False) give,
# from encoders built once (a re-run computes a key per request).
_SORTED_JSON = compact_encoder(sort_keys=True)
_JSON = compact_encoder()


_CHOICE_SETS_KEPT = 64


class RequestKeys:
    """:func:`request_key` for many requests of one task and model: the parts they share are
    serialised once. Gives exactly the keys :func:`request_key` gives (the same JSON text is hashed)."""

    def __init__(self, *, backend: str, model: dict[str, Any], task: str, task_version: str, generation: GenerationSettings) -> None:
        def part(value: Any) -> str:
            return json.dumps(value, sort_keys=True, ensure_ascii=False)

        # json.dumps(sort_keys=True) writes the top-level fields in this order, with these separators.
        self._middle = f', "backend": {part(backend)}, "generation": {part(generation_identity(generation))}, "messages": '
        self._end = f', "model": {part(model)}, "task": {part(task)}, "task_version": {part(task_version)}}}'
        self._choices: dict[tuple[str, ...] | None, str] = {}  # a task's few sets of choices, serialised once each

    def key(self, messages: list[dict[str, Any]], answer_choices: Iterable[str] | None) -> str:
        """The key of one request of this task (see :func:`request_key`)."""
        listed = tuple(answer_choices) if answer_choices else None
        choices = self._choices.get(listed)
        if choices is None:
            choices = _JSON(list(listed) if listed is not None else None)
            if len(self._choices) < _CHOICE_SETS_KEPT:
                self._choices[listed] = choices
        text = '{"answer_choices": ' + choices + self._middle + _SORTED_JSON(messages) + self._end
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """What :meth:`ResponseStore.claim` found: ``claimed`` (send it), ``stored`` (``response`` is the
    answer) or ``busy`` (another live run is answering it: skip it for now)."""

    outcome: Literal["claimed", "stored", "busy"]
    response: Response | None = None


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first bytes of every SQLite database file (an empty file is a new one)."""


def not_sqlite(path: Path) -> bool:
    """Whether ``path`` holds something other than a SQLite database: a file that is not empty and does not start
    with :data:`SQLITE_HEADER` (a text or JSON file named by mistake). SQLite calls such a file damaged
    ("file is not a database"), which would send the user to salvage, whose new store takes the file's place.
    False when the file cannot be read: SQLite then says what is wrong."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError:
        return False
    return head != b"" and head != SQLITE_HEADER


NOT_SQLITE = "is not a response store (no SQLite database: it does not start with 'SQLite format 3')"
"""What a line refusing such a file says of it, after its path."""


def salvage_command(path: Path) -> str:
    """The command that copies a damaged store's readable responses into a new store."""
    return f"vlmbench cache salvage {shlex.quote(str(path))}"


class ResponseStore:
    """A SQLite file of responses, keyed by :func:`request_key`, and the claims of the runs using it.

    Safe to use from several threads (one lock serialises this connection) and processes.
    """

    def __init__(self, path: Path, claim_ttl: float = CLAIM_TTL_S, provenance: Mapping[str, Any] | None = None) -> None:
        """``provenance``: the versions of the run that stores answers (see :func:`vlmbench.results.provenance`),
        kept once per store and named by each answer it stores; None: its answers name none."""
        self.path = Path(path)
        self.owner = new_owner()
        self.claim_ttl = claim_ttl
        self.provenance = dict(provenance) if provenance is not None else None
        self.produced_with = provenance_digest(provenance) if provenance is not None else None  # the digest its answers name
        self._provenance_kept = False
        self._lock = threading.RLock()
        self._heartbeat: Heartbeat | None = None
        if self.path.is_dir():
            raise UserError(f"response store {self.path} is a folder; pass --store a file path, e.g. {self.path / 'responses.sqlite'}")
        if self.path.exists() and not self.path.is_file():  # a device, a pipe, a socket: SQLite would blame the disk
            raise UserError(f"response store {self.path} is not a regular file; pass --store a file path (a new one, or a store file)")
        if self.path.is_file() and not_sqlite(self.path):  # nothing is written to it, nor beside it
            raise UserError(f"{self.path} {NOT_SQLITE}; pass --store a response store or a new file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"response store {self.path}: cannot create its folder {self.path.parent} ({exc.strerror or type(exc).__name__}); "
                f"pass --store (or set ${STORE_ENV}) to a path in a writable folder"
            ) from None
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self._check_schema()  # before anything is written to the file
            self._use_wal()
            # NORMAL in WAL mode: a committed response survives any crash of this process (kill -9 included);
            # only an OS crash or power cut can drop the last commits, and never corrupts the file.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            # Every page is read once (about 0.1 s per 100 MB), so damage is found before anything is sent or written.
            verdict = self._db.execute("PRAGMA quick_check(1)").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {' '.join(str(verdict[0] if verdict else '').split())}")
            self._db.executescript(_SCHEMA)
            _add_missing_columns(self._db)
        except sqlite3.Error as exc:
            raise self._problem(exc, "open it") from None

    def _use_wal(self) -> None:
        """Put the file in WAL mode. When another process opens the same store at this moment, SQLite may answer
        "locked" at once, without waiting as it does for other statements: try again until BUSY_TIMEOUT_S."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        pause = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if _primary_code(exc) not in (_BUSY, _LOCKED) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.25)

    def _check_schema(self) -> None:
        """Refuse a SQLite file that is not a response store: another program's database (its tables would get
        the store's), or a store file from elsewhere where a view or virtual table takes the name of one of the
        store's tables, or a trigger fires on one (a query of a view can run for ever: a recursive one never
        ends). A view of the user's own under another name is left alone."""
        found = self._db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')").fetchall()
        odd = [
            f"{kind} {name}"
            for kind, name, table, sql in found
            if (kind == "trigger" and table in STORE_TABLES)
            or (name in STORE_TABLES and (kind == "view" or str(sql).upper().startswith("CREATE VIRTUAL")))
        ]
        tables = sorted(str(name) for kind, name, _, _ in found if kind == "table" and not str(name).startswith("sqlite_"))
        if odd or (tables and "responses" not in tables):
            what = (
                f"holds {odd[0]!r}, which a response store never has" if odd else f"is another program's database (tables: {', '.join(tables)[:200]})"
            )
            self._db.close()
            raise UserError(f"response store {self.path} {what}; pass --store a response store or a new file path")

    # -- answers --

    def get(self, key: str) -> StoredResponse | None:
        """The stored response for ``key``, if any (its request id is filled in by the caller)."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, StoredResponse]:
        """The stored responses of those ``keys`` that have one (a few queries, not one per key)."""
        found: dict[str, StoredResponse] = {}
        unique = list(dict.fromkeys(keys))
        with self._sql("read it") as db:
            for start in range(0, len(unique), _KEYS_PER_QUERY):
                chunk = unique[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                for row in db.execute(
                    f"SELECT key, text, usage, latency_s, prompt, served_model, produced_with FROM responses WHERE key IN ({marks})", chunk
                ):
                    found[row[0]] = _response(row[1:])
        return found

    def put(self, key: str, *, backend: str, model: dict[str, Any], task: str, response: Response) -> bool:
        """Store one answer durably (one transaction) and release this run's claim on it.

        Errors and empty answers are refused (the claim is released: another run may try): returns False.
        A failed write raises a one-line :class:`UserError`; everything committed before is kept.
        """
        if response.error is not None or not (response.text or "").strip():
            self.release(key)
            return False
        with self._transaction("write a response to it") as db:
            db.execute(
                "INSERT OR IGNORE INTO responses (key, backend, model, task, text, usage, latency_s, prompt, created, served_model, produced_with) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    response.served_model,
                    self._produced_with(db),
                ),
            )
            db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))
        self._provenance_kept = self.provenance is not None  # committed with the answer
        return True

    def _produced_with(self, db: sqlite3.Connection) -> str | None:
        """This store's provenance digest; its provenance is written with the first answer (in that answer's transaction)."""
        if self.provenance is not None and not self._provenance_kept:
            text = json.dumps(self.provenance, sort_keys=True, ensure_ascii=False)
            db.execute("INSERT OR IGNORE INTO provenance (digest, provenance) VALUES (?, ?)", (self.produced_with, text))
        return self.produced_with

    def provenance_of(self, digests: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The provenance each digest names (digests the store does not know, or holds in another shape, are left out)."""
        wanted = sorted(set(digests))
        found: dict[str, dict[str, Any]] = {}
        with self._sql("read it") as db:
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                for digest, text in db.execute(f"SELECT digest, provenance FROM provenance WHERE digest IN ({marks})", chunk):
                    value = parse_provenance(text)
                    if value is not None:
                        found[digest] = value
        return found

    # -- claims: concurrent runs share the work --

    def claim(self, key: str) -> Claim:
        """Claim ``key`` before sending its request, in one transaction: ``stored`` when an answer
        exists by now, ``busy`` when another live run holds an unexpired claim, else ``claimed``
        (this run's claim, extended by a heartbeat until :meth:`put` or :meth:`release`)."""
        seen = self._peek(key)  # without the write lock first: most polls of a waiting run end here
        if seen.outcome != "claimed":
            return seen
        with self._transaction("claim a request in it") as db:
            row = db.execute("SELECT text, usage, latency_s, prompt, served_model, produced_with FROM responses WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return Claim("stored", _response(row))
            held = db.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
            if held is not None and held_by_another(held[0], held[1], self.owner, self.claim_ttl):
                return Claim("busy")
            db.execute("INSERT OR REPLACE INTO claims (key, owner, expires) VALUES (?, ?, ?)", (key, self.owner, time.time() + self.claim_ttl))
        if self._heartbeat is None:
            self._heartbeat = Heartbeat(self.path, self.owner, self.claim_ttl)
        return Claim("claimed")

    def _peek(self, key: str) -> Claim:
        """What :meth:`claim` would find, read without taking the write lock (``claimed``: it looks free)."""
        with self._sql("read it") as db:
            row = db.execute("SELECT text, usage, latency_s, prompt, served_model, produced_with FROM responses WHERE key = ?", (key,)).fetchone()
            held = None if row is not None else db.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return Claim("stored", _response(row))
        if held is not None and held_by_another(held[0], held[1], self.owner, self.claim_ttl):
            return Claim("busy")
        return Claim("claimed")

    def release(self, key: str) -> None:
        """Drop this run's claim on ``key`` (its request failed or was never sent)."""
        with self._sql("release a claim in it") as db:
            db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))

    def release_all(self) -> None:
        """Drop every claim of this run (and stop extending them), and claims that expired long ago (left by crashed runs)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        with self._sql("release claims in it") as db:
            db.execute("DELETE FROM claims WHERE owner = ? OR expires < ?", (self.owner, time.time() - 10 * self.claim_ttl))

    # -- maintenance --

    def info(self) -> list[dict[str, Any]]:
        """Entry counts per backend and model: responses, first and last stored, the models servers said answered
        (``served``: name -> count) and how many sets of versions produced them (``versions``; ``unknown``: none kept)."""
        with self._sql("read it") as db:
            rows = db.execute(
                "SELECT backend, model, COUNT(*), MIN(created), MAX(created), COUNT(DISTINCT produced_with), "
                "SUM(produced_with IS NULL) FROM responses GROUP BY backend, model ORDER BY backend, model"
            ).fetchall()
            served = db.execute(
                "SELECT backend, model, served_model, COUNT(*) FROM responses WHERE served_model IS NOT NULL GROUP BY backend, model, served_model"
            ).fetchall()
        by_model: dict[tuple[Any, Any], dict[str, int]] = {}
        for backend, model, name, count in served:
            by_model.setdefault((backend, model), {})[str(name)] = count
        return [
            {
                "backend": str(b),
                "model": model if isinstance(model := read_json(m), dict) else {},
                "responses": n,
                "first": stored_latency(first),  # a time stored as seconds: a finite number, not negative, or None
                "last": stored_latency(last),
                "served": by_model.get((b, m), {}),
                "versions": versions,
                "unknown": unknown,
            }
            for b, m, n, first, last, versions, unknown in rows
        ]

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
        with self._sql("delete from it") as db:
            deleted: int = db.execute(f"DELETE FROM responses{where}", params).rowcount
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def close(self) -> None:
        """Release this run's claims (when possible) and close the connection."""
        try:
            self.release_all()
        except UserError:
            pass  # a damaged or full store: the claims expire by themselves
        self._db.close()

    # -- SQLite failures as one line --

    @contextmanager
    def _sql(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; any SQLite failure becomes a one-line UserError."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise self._problem(exc, doing) from None

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so it waits for other writers instead of failing)."""
        with self._sql(doing) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back (a failed write does)
                raise
            db.execute("COMMIT")

    def _problem(self, exc: sqlite3.Error, doing: str) -> UserError:
        """A one-line error for a SQLite failure: what happened to which file, and what to do."""
        primary = _primary_code(exc)
        text = str(exc) or type(exc).__name__
        where = f"response store {self.path}"
        # "Could not decode to UTF-8": a row holds bytes the store never writes (damage, or a crafted file).
        if primary in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text or "Could not decode" in text:
            return UserError(
                f"{where} is damaged ({text}); copy its readable responses into a new store with: {salvage_command(self.path)} "
                f"(the damaged file is kept beside it), then rerun the same command"
            )
        if primary in (_FULL, _IOERR) or "disk is full" in text or "disk I/O error" in text:
            return UserError(
                f"{where}: cannot {doing} ({text}; {_free_space(self.path)} free on its disk); the run stopped and every response "
                f"stored before is kept: free disk space or pass --store on another disk, then rerun the same command to resume"
            )
        if primary in (_BUSY, _LOCKED) or "locked" in text:
            return UserError(f"{where}: locked by another process for over {BUSY_TIMEOUT_S} s ({text}); retry, or pass --store another file")
        if primary in (_CANTOPEN, _READONLY) or "unable to open" in text or "readonly" in text:
            return UserError(f"{where}: cannot {doing} ({text}); check that the file and its folder are writable, or pass --store another file")
        return UserError(f"{where}: cannot {doing} ({text}); pass --store another file")


@dataclass
class StoredResponse(Response):
    """An answer read from the store. ``produced_with``: the digest of the provenance (versions) of the
    run that produced it (:meth:`ResponseStore.provenance_of`); None for answers stored before vlmbench kept it."""

    produced_with: str | None = None


DIGEST = re.compile(r"[0-9a-f]{16}")  # what provenance_digest gives


def provenance_digest(provenance: Mapping[str, Any]) -> str:
    """A short name for a run's provenance, as the store keeps it with each answer."""
    return hashlib.sha256(json.dumps(provenance, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _response(row: tuple[Any, ...]) -> StoredResponse:
    """A stored answer from its row: text, usage, latency_s, prompt, served_model, produced_with. A store file
    may come from elsewhere: a field of the wrong type or shape is left out (None), never passed on."""
    text, usage, latency_s, prompt, served_model, produced_with = row
    if not isinstance(text, str) or not text.strip():  # never written by the store: an error, not an answer
        return StoredResponse(
            request_id="", error="damaged response store entry (no answer text); run `vlmbench cache salvage` on the store, then rerun"
        )
    return StoredResponse(
        request_id="",
        text=text,
        usage=stored_usage(usage),
        latency_s=stored_latency(latency_s),
        prompt=prompt if isinstance(prompt, str) else None,
        served_model=served_model,  # cleaned by Response
        produced_with=stored_digest(produced_with),
    )


# What a store file holds is read as data: the readers below give None for a value of another type or
# shape, so that a damaged or crafted row loses that field, never stops a run. Salvage uses them too.


def read_json(text: Any) -> Any:
    """JSON text as a value, or None (not text, not JSON, or nested too deep to read)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def stored_usage(value: Any) -> dict[str, int] | None:
    """Stored token counts (JSON text of names to integers), or None. A new dict each call."""
    counts = _cached_usage(value) if isinstance(value, str) and len(value) <= _CACHED_USAGE_CHARS else _usage_counts(value)
    return dict(counts) if counts is not None else None


# A re-run reads one usage text per answer, and they repeat (the same counts for the same prompt): each
# distinct text of ordinary length is parsed once per process.
_CACHED_USAGE_CHARS = 256


def _usage_counts(value: Any) -> tuple[tuple[str, int], ...] | None:
    usage = read_json(value)
    if not isinstance(usage, dict):
        return None
    return tuple((str(k), v) for k, v in usage.items() if token_count(v) is not None)


_cached_usage = functools.lru_cache(maxsize=4096)(_usage_counts)


def stored_latency(value: Any) -> float | None:
    """A stored latency in seconds (a finite number, not negative), or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def stored_digest(value: Any) -> str | None:
    """A stored provenance digest, or None."""
    return value if isinstance(value, str) and DIGEST.fullmatch(value) else None


MAX_PROVENANCE_CHARS = 64_000
"""The longest stored provenance read (vlmbench writes a few kilobytes): results copy it, so a longer one is unknown."""


def parse_provenance(text: Any) -> dict[str, Any] | None:
    """A stored provenance in the shape vlmbench writes (text values; ``packages``: names to versions), or None."""
    if isinstance(text, str) and len(text) > MAX_PROVENANCE_CHARS:
        return None
    value = read_json(text)
    if not isinstance(value, dict) or not all(isinstance(v, str) or v is None for k, v in value.items() if k != "packages"):
        return None
    packages = value.get("packages", {})
    if not isinstance(packages, dict) or not all(isinstance(v, str) for v in packages.values()):
        return None
    return value


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of a failure (SQLITE_BUSY for every kind of busy), or None when it names none."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Give a store written by an older vlmbench the columns added since (their values stay empty in
    its old rows). Another process may add a column at the same moment: a duplicate is no error."""
    have = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    for name, kind in _ADDED_COLUMNS:
        if name not in have:
            try:
                db.execute(f"ALTER TABLE responses ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


def _free_space(path: Path) -> str:
    """Free space on the disk of ``path``, for error lines."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return "unknown space"
    return f"{free / 1e6:.1f} MB" if free < 10**9 else f"{free / 1e9:.1f} GB"
