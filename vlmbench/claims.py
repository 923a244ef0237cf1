"""Who is answering what: the owners of request claims in a shared response store.

Several runs may share one store. Before a run sends a request it claims the request's key in
the store (see :meth:`vlmbench.store.ResponseStore.claim`); the others skip it and later reuse
the answer. A claim names its owner (host, process id and a random tag) and expires unless the
owner's :class:`Heartbeat` keeps extending it, so the claims of a run that crashed are taken
over: at once when the owner was a process on this host that no longer exists, else when the
claim expires.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from vlmbench.numbers import whole_number

CLAIM_TTL_S = 60.0  # a claim not extended for this long is taken over
CLOCK_SLACK_S = 600.0  # how far ahead of this host's clock another host's may run


def new_owner() -> str:
    """A fresh owner name, ``host:pid:tag`` (the tag tells two stores of one process apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def held_by_another(owner: Any, expires: Any, me: str, ttl: float = CLAIM_TTL_S) -> bool:
    """Whether a claim row (``owner``, ``expires``) keeps ``me`` from sending its request: another owner's claim
    that has not expired and whose owner may be alive. A store may come from elsewhere: a row of the wrong types,
    or an expiry further ahead than any heartbeat sets (``ttl`` from now, give or take :data:`CLOCK_SLACK_S` of
    clocks that differ between hosts), holds nothing, so no run waits for ever."""
    if not isinstance(owner, str) or owner == me or isinstance(expires, bool) or not isinstance(expires, (int, float)):
        return False
    now = time.time()
    return now < expires <= now + ttl + CLOCK_SLACK_S and owner_alive(owner)


MAX_PID = 2**31 - 1
"""The largest process id a POSIX system gives (pid_t is a signed 32-bit integer; Linux stops at 2**22)."""


def owner_alive(owner: str) -> bool:
    """False only when ``owner`` is certainly gone: a process of this host that no longer exists
    (or is a zombie), or one named by no process id (0 would signal this process's own group). Owners on
    other hosts, or unreadable names, count as alive until their claims expire."""
    parts = owner.rsplit(":", 2)
    pid = whole_number(parts[1]) if len(parts) == 3 else None
    if pid is None or parts[0] != socket.gethostname() or os.name == "nt":
        return True  # elsewhere, or no process id (or on Windows, where os.kill would terminate the process): trust the expiry
    if pid <= 0 or pid > MAX_PID:  # no process has that id (os.kill would refuse a number past its C type)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user
        return True
    try:  # on Linux a killed child that its parent has not reaped yet still answers os.kill
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class Heartbeat:
    """A daemon thread that keeps extending one owner's claims, on its own connection to the store.

    A failed extension (store locked, disk full) is skipped; the claims then expire in time.
    """

    def __init__(self, path: Path, owner: str, ttl: float) -> None:
        self.path, self.owner, self.ttl = path, owner, ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vlmbench-claims", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = None
        try:
            db = sqlite3.connect(self.path, timeout=self.ttl / 4, isolation_level=None)
            while not self._stop.wait(self.ttl / 4):
                try:
                    db.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + self.ttl, self.owner))
                except sqlite3.Error:
                    continue
        except sqlite3.Error:
            return
        finally:
            if db is not None:
                db.close()

    def stop(self) -> None:
        """Stop extending (the owner's claims are released by the store)."""
        self._stop.set()
        self._thread.join(timeout=5)
