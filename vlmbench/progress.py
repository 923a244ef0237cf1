"""Progress of a run, for a person at a terminal and for a log file alike.

On a terminal (stderr is a TTY) each task shows a tqdm bar. Elsewhere (a batch job, ``nohup``,
CI, a pipe) the bar would be noise, so progress becomes log lines on the ``vlmbench.progress``
logger at a modest rate: one when :data:`INTERVAL_S` seconds have passed or another 10% of the
task is done (never two within :data:`MIN_GAP_S`), and one at the end of each task. Each line names the task, done/total,
the request rate and the time left. The start of each task announces how many answers the
response store already holds, and the end of a run logs its throughput. ``vlmbench run`` prints
these records on stderr (``--verbosity`` picks the level); a library caller gets them through
:mod:`logging`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger("vlmbench.progress")

INTERVAL_S = 10.0  # at most one progress line this often, outside a terminal
STEP = 0.1  # ... or one each time another tenth of the task is done
MIN_GAP_S = 1.0  # but never two within a second: a fast task logs only its last line


def duration(seconds: float) -> str:
    """A short human duration: ``45 s``, ``12 min 5 s``, ``2 h 3 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def on_terminal() -> bool:
    """True when stderr is an interactive terminal (where a progress bar belongs)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class TaskProgress:
    """Counts one task's answered samples; a bar on a terminal, rate-limited log lines elsewhere.

    ``done`` starts at the answers reused from the store; the rate and time left count only the
    requests answered in this run. ``bar`` forces the mode (default: a bar exactly on a terminal).
    """

    def __init__(self, task: str, total: int, done: int = 0, *, bar: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.task, self.total, self.done, self.initial = task, total, done, done
        self.clock = clock
        self.started = self.last_line = clock()
        self.next_share = _next_step(done, total)
        self._bar: Any = None
        if on_terminal() if bar is None else bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc=task, unit="sample", file=sys.stderr)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more answered samples; maybe log a progress line."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self.clock()
        if self.done >= self.total:
            return  # close() writes the last line
        since = now - self.last_line
        if since >= INTERVAL_S or (since >= MIN_GAP_S and self.done >= self.next_share * self.total):
            self.last_line = now
            self.next_share = _next_step(self.done, self.total)
            log.info("%s", self.line(now))

    def rate(self, now: float | None = None) -> float | None:
        """Requests answered per second in this run (None before the first)."""
        elapsed = (self.clock() if now is None else now) - self.started
        answered = self.done - self.initial
        return answered / elapsed if answered > 0 and elapsed > 0 else None

    def line(self, now: float | None = None) -> str:
        """``TASK: done/total (share), rate, ETA``."""
        rate = self.rate(now)
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        if rate is None:
            return f"{self.task}: {self.done}/{self.total}{share}"
        eta = duration((self.total - self.done) / rate)
        return f"{self.task}: {self.done}/{self.total}{share}, {rate:.1f} requests/s, ETA {eta}"

    def __enter__(self) -> TaskProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_bar()  # a task that ended early (an error, Ctrl-C) leaves no bar behind

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self, sent: int, reused: int, errors: int = 0) -> None:
        """End the task: close the bar and log its last line (counts, time and rate)."""
        self._close_bar()
        elapsed = self.clock() - self.started
        rate = self.rate()
        speed = f", {rate:.1f} requests/s" if rate is not None and sent else ""
        failed = f", {errors} failed" if errors else ""
        log.info(
            "%s: done %d/%d in %s (%d sent, %d reused from the store%s%s)",
            self.task,
            self.done,
            self.total,
            duration(elapsed),
            sent,
            reused,
            failed,
            speed,
        )


def _next_step(done: int, total: int) -> float:
    """The next multiple of :data:`STEP` (as a share of ``total``) above ``done``."""
    if total <= 0:
        return 1.0
    steps = int(done / total / STEP + 1e-9) + 1
    return min(1.0, steps * STEP)


def announce_reusable(task: str, reused: int, total: int, not_reused: str | None = None) -> None:
    """Log how many of a task's answers come from the response store, before any request is sent;
    ``not_reused`` says why nothing can be (e.g. the store is off)."""
    if not_reused:
        log.info("%s: %d requests to send (%s)", task, total, not_reused)
    else:
        log.info("%s: %d of %d answers reusable from the response store, %d requests to send", task, reused, total, total - reused)


def throughput(tasks: Mapping[str, Mapping[str, Any]]) -> str:
    """The run's throughput from its manifest tasks: requests/s and, when known, tokens/s."""
    sent = sum(int(t["requests"]["sent"]) for t in tasks.values())
    if not sent:
        return "throughput: no request sent to the model (every answer came from the response store)"
    busy = [t for t in tasks.values() if t["requests"]["sent"]]
    seconds = sum(float(t["seconds"]) for t in busy) or 1e-9
    completion = sum(int((t.get("usage") or {}).get("completion_tokens", 0)) for t in busy)
    tokens = f", {completion / seconds:.1f} completion tokens/s" if completion else ""
    return f"throughput: {sent} requests in {duration(seconds)}: {sent / seconds:.1f} requests/s{tokens}"


def request_plan(tasks: Sequence[Any], requests: Sequence[int], limit: int | float | None) -> str:
    """How many requests the run asks, e.g. ``--limit 20 over 6 tasks: 360 requests (alignment-image,
    alignment-text ask 5 prompts per document)``; ``tasks`` are task configs, ``requests`` their sample counts."""
    total = sum(requests)
    head = f"--limit {limit} over {len(tasks)} task{'s' * (len(tasks) != 1)}" if limit is not None else f"{len(tasks)} task{'s' * (len(tasks) != 1)}"
    prompts: dict[int, list[str]] = {}
    for task in tasks:
        if len(task.templates) > 1:
            prompts.setdefault(len(task.templates), []).append(task.name)
    notes = [f"{', '.join(names)} {'asks' if len(names) == 1 else 'ask'} {n} prompts per document" for n, names in prompts.items()]
    return f"{head}: {total} requests" + (f" ({'; '.join(notes)})" if notes else "")
