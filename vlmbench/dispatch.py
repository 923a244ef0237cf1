"""Sending a task's pending requests: lazily, one bad image at a time, and shared with concurrent runs.

:func:`dispatch` feeds the backend a lazy stream of requests and yields what became of each
pending item, as it happens:

- ``answer``: the backend's response (an answer or its error), to store and record;
- ``reused``: another run on the same response store answered it meanwhile, or it is the same request
  as one this run sent (same key), whose answer it shares;
- ``error``: no request was sent: its image is unusable (:class:`~vlmbench.data.images.BadImage`),
  or the backend dropped it; or the request it shares with another item failed.

With a response store, each request is claimed in the store just before it is sent
(:meth:`~vlmbench.store.ResponseStore.claim`). A request that another live run has claimed is
skipped; once this run's own requests are done it waits for their answers, and takes over the
claims of runs that died or stopped extending them. Concurrent runs therefore split the work, and
no answer is paid for twice unless a run died with its request in flight.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vlmbench.backend import Backend, Request, Response, inert_line, token_count
from vlmbench.data.images import BadImage
from vlmbench.errors import UserError
from vlmbench.store import ResponseStore, stored_latency

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often to look for answers that other runs are working on
DROPPED = "backend returned no response"

Outcome = Literal["answer", "reused", "error"]


@dataclass(frozen=True)
class Item:
    """A sample waiting for an answer: the runner's bookkeeping, and its store key (None: never stored)."""

    id: str
    key: str | None
    data: Any


@dataclass
class _Round:
    """What one pass over the backend left to do."""

    found: list[tuple[Item, Response]]
    busy: list[Item]
    errors: list[tuple[Item, str]]
    sent: dict[str, Item]


def dispatch(
    backend: Backend, items: list[Item], build: Callable[[Item], Request], store: ResponseStore | None = None
) -> Iterator[tuple[Outcome, Item, Response]]:
    """Answer ``items`` through ``backend``; ``build`` makes an item's request (and may raise
    :class:`BadImage`). With ``store``, requests are claimed so that concurrent runs share them.
    Every item comes out exactly once."""
    todo, waited = items, False
    try:
        while todo:
            state = _Round([], [], [], {})
            yield from _send(backend, todo, build, store, state)
            todo = state.busy
            if not todo or store is None:
                break
            if not waited:
                log.warning("waiting for %d requests that another run on %s is answering", len(todo), store.path)
                waited = True
            todo = yield from _collect(todo, store)
    finally:
        if store is not None:
            try:
                store.release_all()
            except UserError:
                pass  # a damaged or full store: the claims expire by themselves


def _send(
    backend: Backend, todo: list[Item], build: Callable[[Item], Request], store: ResponseStore | None, state: _Round
) -> Iterator[tuple[Outcome, Item, Response]]:
    """One pass: claim and send what can be sent now; the items claimed by other runs end in ``state.busy``.
    Items whose request is one this pass sends already (same key: same model, task, messages, choices and
    settings) are not sent again: they get the answer of that request when it comes."""
    leaders: dict[str, Item] = {}  # key -> the item whose request carries it in this pass
    followers: dict[str, list[Item]] = {}  # key -> the items waiting for that request's response
    answers: dict[str, Response] = {}  # key -> the response that request got (for items drawn after it came)
    lock = threading.Lock()  # a backend may draw requests on a thread of its own while answers come in

    def requests() -> Iterator[Request]:
        for item in todo:
            if store is not None and item.key is not None:
                with lock:
                    answer = answers.get(item.key)
                    if answer is None and item.key in leaders:
                        followers.setdefault(item.key, []).append(item)
                        continue
                if answer is not None:
                    if answer.error is None:
                        state.found.append((item, dataclasses.replace(answer, request_id=item.id, usage=None)))
                    else:
                        state.errors.append((item, answer.error))
                    continue
                claim = store.claim(item.key)
                if claim.outcome == "stored" and claim.response is not None:
                    state.found.append((item, claim.response))
                    continue
                if claim.outcome == "busy":
                    state.busy.append(item)
                    continue
            try:
                request = build(item)
            except BadImage as exc:
                if store is not None and item.key is not None:
                    store.release(item.key)
                state.errors.append((item, str(exc)))
                continue
            state.sent[item.id] = item
            if store is not None and item.key is not None:
                with lock:
                    leaders[item.key] = item
            yield request  # built lazily, as the backend asks: only the requests it holds have decoded images

    def shared(item: Item, response: Response) -> Iterator[tuple[Outcome, Item, Response]]:
        """The response to ``item``'s request, for the items that asked the same (each gets its own copy)."""
        if item.key is None:
            return
        with lock:
            answers[item.key] = response
            waiting = followers.pop(item.key, [])
        for follower in waiting:
            outcome: Outcome = "reused" if response.error is None else "error"
            yield outcome, follower, dataclasses.replace(response, request_id=follower.id, usage=None)  # no tokens of its own

    stream = iter(backend.generate(requests()))
    label = f"backend '{inert_line(getattr(backend, 'name', None), 80) or type(backend).__name__}'"
    try:
        for given in stream:
            response = checked_response(given, label)
            item = state.sent.pop(response.request_id, None)
            if item is None:
                shown = inert_line(response.request_id, 80)
                raise UserError(f"{label} answered unknown or repeated request id '{shown}'; this is a bug in the plugin that registers it")
            yield "answer", item, response
            yield from shared(item, response)
            yield from _drain(state)
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()  # stops a backend that is still sending (e.g. when the store could not be written)
    yield from _drain(state)
    for item in list(state.sent.values()):  # a dropped request is an error, not a gap
        if store is not None and item.key is not None:
            store.release(item.key)
        dropped = Response(item.id, error=DROPPED)
        yield "error", item, dropped
        yield from shared(item, dropped)
    state.sent.clear()


def checked_response(given: object, label: str = "backend") -> Response:
    """What a backend yielded, as a run may store and record it: a :class:`Response` for a text request id.
    Anything else is a one-line error (a bug in the backend plugin; the answers before it are stored). Token
    counts that are no counts and a latency that is no duration are left out, as the response store does."""
    if not isinstance(given, Response):
        raise UserError(f"{label} yielded {type(given).__name__}, not a Response; this is a bug in the plugin that registers it")
    if not isinstance(given.request_id, str):
        raise UserError(
            f"{label} answered a request id of type {type(given.request_id).__name__}, not text; this is a bug in the plugin that registers it"
        )
    usage, latency = given.usage, given.latency_s
    if usage is not None:
        counts = {name: token_count(value) for name, value in usage.items() if isinstance(name, str)} if isinstance(usage, Mapping) else {}
        usage = {name: value for name, value in counts.items() if value is not None} or None
    if latency is not None:
        latency = stored_latency(latency)
    if usage != given.usage or latency != given.latency_s:  # only what held no count or duration is copied
        given = dataclasses.replace(given, usage=usage, latency_s=latency)
    return given


def _drain(state: _Round) -> Iterator[tuple[Outcome, Item, Response]]:
    """What the request stream set aside meanwhile: answers other runs stored, unusable images."""
    while state.found:
        item, response = state.found.pop(0)
        yield "reused", item, response
    while state.errors:
        item, reason = state.errors.pop(0)
        yield "error", item, Response(item.id, error=reason)


def _collect(todo: list[Item], store: ResponseStore) -> Generator[tuple[Outcome, Item, Response], None, list[Item]]:
    """Wait until the first of ``todo`` is answered by another run or free to take over; returns
    what is left to send (claims taken over first, then the ones still busy)."""
    while True:
        free: list[Item] = []
        busy: list[Item] = []
        for item in todo:
            assert item.key is not None
            claim = store.claim(item.key)
            if claim.outcome == "stored" and claim.response is not None:
                yield "reused", item, claim.response
            elif claim.outcome == "claimed":
                free.append(item)
            else:
                busy.append(item)
        if free or not busy:
            return free + busy
        todo = busy
        time.sleep(POLL_S)
