"""``vlmbench cache salvage``: copy the readable responses of a damaged store into a new store.

The damaged file is never modified: it is copied (with its write-ahead log) to a scratch folder
and read from there. Rows are read in rowid order; where a damaged page stops the scan, the scan
skips ahead past it (probing further and further, then narrowing back to the first readable
row), so one bad page costs only the rows on it. Each row is checked (a key of 64 hex digits,
non-empty text, JSON model identity) before it is written to the new store. Claims are not
copied: they belong to runs that are over.

By default the new store takes the old one's place and the damaged file is kept beside it as
``PATH.damaged`` (with ``PATH.damaged-wal`` when it had a log), so rerunning the same command
reuses everything that could be read. A store that is not damaged (it opens, and every row and
field reads as it is) is left in its place, untouched. A file that is no response store (no SQLite
database, such as a JSON file named by mistake, or another program's database) is refused before
anything is written.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench.store import (
    NOT_SQLITE,
    STORE_TABLES,
    ResponseStore,
    not_sqlite,
    parse_provenance,
    read_json,
    stored_digest,
    stored_latency,
    stored_usage,
)

COLUMNS = ("key", "backend", "model", "task", "text", "usage", "latency_s", "prompt", "created", "served_model", "produced_with")
OPTIONAL = frozenset({"served_model", "produced_with"})  # added later: a store written before lacks them
_KEY = re.compile(r"[0-9a-f]{64}")
_MAX_ROWID = 2**62


@dataclass(frozen=True)
class SalvageReport:
    """What a salvage did: rows copied and refused, where the new store and the damaged file are.
    ``healthy``: the store was not damaged, and was left as it is (``target`` is the store, ``kept`` None)."""

    copied: int
    refused: int
    skipped_ranges: int
    target: Path
    kept: Path | None
    healthy: bool = False


def salvage(source: Path, target: Path | None = None) -> SalvageReport:
    """Copy the readable responses of ``source`` into a new store at ``target``; without ``target``,
    into ``source``'s place, keeping the damaged file as ``source.damaged``. A store that is not damaged
    is left in its place (``healthy``); a file that is no response store is refused, and nothing is written."""
    source = Path(source)
    if not source.is_file():
        raise UserError(f"cache salvage: {source} is not a file; pass the path of the damaged response store")
    if not_sqlite(source):
        raise UserError(f"cache salvage: {source} {NOT_SQLITE}; nothing was changed; pass the path of a damaged response store")
    final = Path(target) if target is not None else source
    if target is not None and final.exists():
        raise UserError(f"cache salvage: {final} exists; pass --out a new file name")
    kept = source.with_name(source.name + ".damaged") if target is None else None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".salvage-", dir=final.parent))
    except OSError as exc:
        raise UserError(f"cache salvage: cannot write in {final.parent} ({exc.strerror}); pass --out a file in a writable folder") from None
    try:
        copy = scratch / "damaged.sqlite"
        _copy_with_log(source, copy)
        other = _other_programs_tables(copy)
        if other:
            raise UserError(
                f"cache salvage: {source} is not a response store (another program's database: tables {', '.join(other)[:200]}); "
                "nothing was changed; pass the path of a damaged response store"
            )
        fresh = scratch / "new.sqlite"
        copied, refused, skipped, changed = _copy_rows(copy, fresh)
        if kept is not None and not (refused or skipped or changed) and _opens(copy):
            return SalvageReport(copied, 0, 0, source, None, healthy=True)  # nothing to salvage: the store stays as it is
        if kept is not None and kept.exists():
            raise UserError(f"cache salvage: {kept} exists (an earlier salvage?); move it away first")
        if kept is not None:
            _move_with_log(source, kept)
        fresh.replace(final)
    except OSError as exc:
        raise UserError(f"cache salvage: {exc.strerror or exc} while writing near {final}; free disk space and try again") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return SalvageReport(copied, refused, skipped, final, kept)


def _copy_with_log(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    log = source.with_name(source.name + "-wal")
    if log.is_file():
        shutil.copyfile(log, target.with_name(target.name + "-wal"))


def _move_with_log(source: Path, target: Path) -> None:
    source.replace(target)
    log = source.with_name(source.name + "-wal")
    if log.is_file():
        log.replace(target.with_name(target.name + "-wal"))
    source.with_name(source.name + "-shm").unlink(missing_ok=True)  # an index of the log, rebuilt on open


def _opens(path: Path) -> bool:
    """Whether ``path`` opens as a response store and SQLite's full check finds nothing wrong: every page, and every
    index entry against its row (the quick check a store makes when it opens leaves indexes out, and a query through
    a damaged index fails later, in the run)."""
    try:
        ResponseStore(path).close()
        db = sqlite3.connect(path)
        try:
            return [row[0] for row in db.execute("PRAGMA integrity_check")] == ["ok"]
        finally:
            db.close()
    except (UserError, sqlite3.Error):
        return False


def _other_programs_tables(path: Path) -> list[str]:
    """The tables of a SQLite database that holds none of a store's tables (another program's); none when its
    schema cannot be read (damage: salvaged as a store)."""
    try:
        db = sqlite3.connect(path)
        try:
            db.text_factory = bytes
            names = [_decoded(name) for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
        finally:
            db.close()
    except sqlite3.Error:
        return []
    tables = sorted(str(name) for name in names if not str(name).startswith("sqlite_"))
    return [] if STORE_TABLES.intersection(tables) else tables


def _copy_rows(damaged: Path, fresh: Path) -> tuple[int, int, int, int]:
    """Copy every readable, well-formed row; returns (copied, refused, damaged ranges skipped, rows or provenance
    records changed or left out in the copy: a field emptied, text that is no UTF-8)."""
    store = ResponseStore(fresh)
    store.close()
    copied = refused = changed = 0
    reader = _Reader(damaged)
    out = sqlite3.connect(fresh, isolation_level=None)
    try:
        out.execute("BEGIN")
        for raw in reader.rows():
            row = _cleaned(raw)
            if row is not None:
                out.execute(f"INSERT OR IGNORE INTO responses ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row)
                copied += 1
                changed += row != _as_read(raw)
            else:
                refused += 1
        provenance, left_out = reader.provenance()
        for digest, text in provenance:
            out.execute("INSERT OR IGNORE INTO provenance (digest, provenance) VALUES (?, ?)", (digest, text))
        changed += left_out
        out.execute("COMMIT")
    except sqlite3.Error as exc:
        raise UserError(f"cache salvage: cannot write the new store ({exc}); free disk space and try again") from None
    finally:
        out.close()
    return copied, refused, reader.skipped, changed


class _Reader:
    """Reads the rows of a possibly damaged ``responses`` table, skipping what cannot be read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.skipped = 0
        self.select = ", ".join(COLUMNS)  # the columns read; NULL for optional ones the file lacks (see rows())

    def rows(self) -> Iterator[tuple[Any, ...]]:
        try:
            db = sqlite3.connect(self.path)
            db.text_factory = bytes  # text is decoded field by field (see _cleaned): bad bytes lose a field, not the row
        except sqlite3.Error:
            self.skipped += 1
            return
        try:
            if not _plain_table(db, "responses"):  # a view may never end (a recursive one): nothing to read
                self.skipped += not _missing(db, "responses")  # none at all: a new store, nothing damaged
                return
            self.select = ", ".join(c if c not in OPTIONAL or c in _columns(db) else "NULL" for c in COLUMNS)
            start: int | None = -_MAX_ROWID
            while start is not None:
                start = yield from self._scan(db, start)
                if start is None:
                    break
                try:  # near damage, one row at a time: a scan may fail on the page after the row it would return
                    row = db.execute(f"SELECT rowid, {self.select} FROM responses WHERE rowid >= ? ORDER BY rowid LIMIT 1", (start,)).fetchone()
                except sqlite3.Error:
                    self.skipped += 1
                    start = self._next_readable(db, start)
                    continue
                if row is None:
                    break
                yield tuple(row[1:])
                start = row[0] + 1
        finally:
            db.close()

    def provenance(self) -> tuple[list[tuple[str, str]], int]:
        """The readable, well-formed rows of the ``provenance`` table (none when it is missing or damaged), and
        how many rows were read but left out (malformed)."""
        try:
            db = sqlite3.connect(self.path)
            db.text_factory = bytes
            try:
                rows = (
                    [(_decoded(d), _decoded(t)) for d, t in db.execute("SELECT digest, provenance FROM provenance")]
                    if _plain_table(db, "provenance")
                    else []
                )
            finally:
                db.close()
        except sqlite3.Error:
            return [], 0
        good = [(d, t) for d, t in rows if stored_digest(d) is not None and parse_provenance(t) is not None]
        return good, len(rows) - len(good)

    def _scan(self, db: sqlite3.Connection, start: int) -> Generator[tuple[Any, ...], None, int | None]:
        """Yield rows with rowid >= ``start`` until the end (returns None) or a damaged page
        (returns the rowid after the last row read)."""
        last = start - 1
        try:
            for row in db.execute(f"SELECT rowid, {self.select} FROM responses WHERE rowid >= ? ORDER BY rowid", (start,)):
                last = row[0]
                yield tuple(row[1:])
        except sqlite3.Error:
            return last + 1
        return None

    def _next_readable(self, db: sqlite3.Connection, bad: int) -> int | None:
        """The smallest rowid from which reading works again, past the damage that reading from ``bad`` hit."""
        step, good = 1, None
        while bad + step < _MAX_ROWID:
            if self._readable(db, bad + step):
                good = bad + step
                break
            step *= 2
        if good is None:
            return None
        low = bad + step // 2 if step > 1 else bad  # reading from low fails; from good it works
        while good - low > 1:
            middle = (low + good) // 2
            if self._readable(db, middle):
                good = middle
            else:
                low = middle
        return good

    @staticmethod
    def _readable(db: sqlite3.Connection, start: int) -> bool:
        try:
            db.execute("SELECT rowid, text FROM responses WHERE rowid >= ? ORDER BY rowid LIMIT 1", (start,)).fetchall()
        except sqlite3.Error:
            return False
        return True


def _plain_table(db: sqlite3.Connection, name: str) -> bool:
    """Whether ``name`` is a table whose rows are stored in the file (not a view nor a virtual table, which a store never holds)."""
    try:
        row = db.execute("SELECT type, sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    except sqlite3.Error:
        return False
    return row is not None and _decoded(row[0]) == "table" and not str(_decoded(row[1])).upper().startswith("CREATE VIRTUAL")


def _missing(db: sqlite3.Connection, name: str) -> bool:
    """Whether the schema can be read and names nothing called ``name``."""
    try:
        return db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is None
    except sqlite3.Error:
        return False


def _columns(db: sqlite3.Connection) -> set[str]:
    """The columns of the ``responses`` table (none known when the schema cannot be read)."""
    try:
        return {_decoded(row[1]) for row in db.execute("PRAGMA table_info(responses)")}
    except sqlite3.Error:
        return set()


def _cleaned(row: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The row as the new store takes it, or None when it cannot be an answer the store wrote (its key,
    backend, model identity, task, text or time unreadable). An optional field that is unreadable
    (usage, latency, prompt, served model, provenance digest) is emptied: the paid-for answer is kept."""
    key, backend, model, task, text, usage, latency_s, prompt, created, served_model, produced_with = (_decoded(v) for v in row)
    if not (isinstance(key, str) and _KEY.fullmatch(key) and isinstance(backend, str) and isinstance(task, str)):
        return None
    if not (isinstance(text, str) and text.strip() and isinstance(created, (int, float)) and isinstance(read_json(model), dict)):
        return None
    return (
        key,
        backend,
        model,
        task,
        text,
        usage if stored_usage(usage) is not None else None,
        stored_latency(latency_s),
        prompt if isinstance(prompt, str) else None,
        created,
        served_model if isinstance(served_model, str) else None,
        stored_digest(produced_with),
    )


def _as_read(row: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The row as it was read, in the new store's types; None when a field holds bytes that are no UTF-8."""
    decoded = tuple(_decoded(v) for v in row)
    return None if any(isinstance(v, bytes) and d is None for v, d in zip(row, decoded, strict=True)) else decoded


def _decoded(value: Any) -> Any:
    """A value read as bytes: its UTF-8 text, or None when it is not UTF-8; other values as they are."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None
