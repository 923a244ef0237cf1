"""A fault-injecting OpenAI-compatible chat server, for tests and benchmarks (stdlib only).

``POST /v1/chat/completions`` (non-streaming) answers ``reply`` with a ``usage`` block after a fixed
``latency``. Faults are either server-wide (the first N requests, or a seeded fraction, get a 429
with ``Retry-After``) or planted in a request's text as markers, counted per request content:

    <<500:2>>        the first 2 attempts get HTTP 500, then success (any status: 400, 401, 408, 429, 503)
    <<500:all>>      every attempt gets HTTP 500
    <<slow:1>>       the first attempt answers after ``slow_seconds`` (past the client's timeout)
    <<badjson:1>>    the first attempt gets a 200 with truncated JSON
    <<nochoices:1>>  the first attempt gets a 200 with JSON lacking ``choices``
    <<emptychoices:1>> the first attempt gets a 200 with ``"choices": []``
    <<empty:1>>      the first attempt gets a 200 whose message content is ``""``
    <<null:1>>       the first attempt gets a 200 whose message content is ``null``
    <<nonstring:1>>  the first attempt gets a 200 whose message content is a number
    <<errorbeside:1>> the first attempt gets a 200 holding an ``error`` object beside its ``choices``
    <<redirect:1>>   the first attempt gets a 307 to ``redirect_to`` (another server's chat-completions URL)
    <<huge:1>>       the first attempt gets a 200 whose content is ``huge_chars`` characters long
    <<trickle:1>>    the first attempt gets its 200 body one byte every ``trickle_interval`` seconds
    <<length:1>>     the first attempt gets a 200 the server cut short: ``cut_reply`` with finish_reason ``length``
                     and its word count as completion tokens (vLLM, when the prompt nearly fills ``max_model_len``)
    <<filtered:1>>   the first attempt gets a 200 the server's content filter cut: ``cut_reply`` with
                     finish_reason ``content_filter``
    <<leaky:1>>      the first attempt gets a 400 whose message leaks a URL with credentials and the bearer token
    <<delay:0.8>>    this request takes 0.8 s longer than ``latency``

Server-wide, ``capacity`` N makes it a server with N slots: a request that arrives while N
requests are being served gets an immediate 429 with ``Retry-After`` (outcome ``429``, event
``at_capacity``); a slot frees when its reply starts. ``api_key`` answers 401 to any other bearer token, and ``models`` answers 404
``model_not_found`` for any other model (as OpenAI and vLLM do); a POST to any route but
``/v1/chat/completions`` gets a 404 and is recorded too (outcome ``noroute``).

A 401 echoes the bearer token in its message (as real APIs partly do) so tests can prove the
client masks it. The server records, per request content (its text), every outcome in order,
and the peak number of requests in flight. Its timeline (:meth:`FaultServer.timeline`) orders every
arrival and reply with the marks a test adds (:meth:`FaultServer.mark`), so tests assert what happened
before what instead of reading a clock. ``GET /stats`` returns the counters and ``GET /events`` every request as JSON;
``python -m vlmbench.testing.fault_server --latency 0.2`` serves until killed and prints its URL.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKER = re.compile(r"<<(\w+):([\w.]+)>>")
STATUS_TEXT = {
    400: "bad request",
    401: "unauthorized",
    408: "request timeout",
    409: "conflict",
    429: "rate limited",
    500: "injected server error",
    502: "bad gateway",
    503: "overloaded",
}


@dataclass
class Faults:
    """Server-wide behaviour."""

    latency: float = 0.0  # seconds every request takes
    rate_limit_first: int = 0  # the first N requests received get a 429
    rate_limit_fraction: float = 0.0  # then this seeded fraction of requests gets a 429
    capacity: int = 0  # when > 0: requests arriving while this many are served get an immediate 429
    retry_after: str | None = "1"  # Retry-After header value sent with a 429 (None: no header)
    slow_seconds: float = 2.0  # how long a <<slow:N>> attempt takes
    trickle_interval: float = 0.5  # seconds between the bytes of a <<trickle:N>> body
    huge_chars: int = 1_000_000  # length of a <<huge:N>> answer
    cut_reply: str = "The answer is"  # what a <<length:N>> or <<filtered:N>> reply says before it is cut
    api_key: str | None = None  # when set, any other bearer token gets a 401
    models: tuple[str, ...] | None = None  # when set, any other model gets a 404 model_not_found
    # The ``model`` every reply names (any JSON value), as an API answering an alias names the dated
    # version that served it; None: the model the request asked for.
    served_model: Any = None
    reply: str = "Yes."
    # (substring, reply) pairs: a request whose text contains the substring gets that reply instead
    # of ``reply`` (the first match wins), e.g. to script an LLM judge's verdicts.
    replies: tuple[tuple[str, str], ...] = ()
    redirect_to: str = "http://127.0.0.1:9/v1/chat/completions"  # where a <<redirect:N>> attempt is sent on to
    seed: int = 0


@dataclass
class Event:
    """One request as the server saw it."""

    key: str
    outcome: str  # "200", "429", "500", "slow", "badjson", "noroute", "nomodel", ...
    arrived: float  # time.monotonic() when the request was read
    in_flight: int  # requests in flight right after this one arrived, itself included
    finished: float | None = None  # when the reply was written (None while in flight)
    body_bytes: int | None = None  # bytes of a trickled body written before it ended or the client hung up
    at_capacity: bool = False  # a 429 because ``capacity`` requests were being served (answered at once)
    serving: int = 0  # requests being served (holding one of ``capacity`` slots) right after it arrived
    holds_slot: bool = False  # it holds a slot until its reply starts


@dataclass(frozen=True)
class Mark:
    """One entry of the server's timeline, which orders what happened without reading any clock.

    ``kind`` is ``"arrived"`` (a request was read), ``"replying"`` (its latency and any ``<<delay>>`` are
    over; the server writes no byte of the reply before this entry, so the client cannot have it yet;
    a ``<<slow>>`` reply still waits ``slow_seconds``), ``"finished"`` (the reply was written, or the
    client hung up), or ``"mark"`` (a test's own label, see :meth:`FaultServer.mark`). ``key`` is the
    request's content (see :func:`request_key`), or the label.
    """

    kind: str
    key: str


@dataclass
class Record:
    """Everything the server counted (guarded by the server's lock)."""

    events: list[Event] = field(default_factory=list)
    timeline: list[Mark] = field(default_factory=list)  # in the order it happened
    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    authorizations: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # arrivals per content
    received: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    serving: int = 0  # requests holding one of the ``capacity`` slots
    max_serving: int = 0


def request_key(body: dict[str, Any]) -> str:
    """The text of all messages: what identifies a request's content across retries."""
    texts: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n".join(texts)


def count_images(body: dict[str, Any]) -> int:
    """How many image parts the request carries."""
    return sum(
        1
        for m in body.get("messages", [])
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, dict) and p.get("type") == "image_url"
    )


class FaultServer:
    """The server, run in a daemon thread on 127.0.0.1 with an ephemeral port.

    Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(self, faults: Faults | None = None, **overrides: Any) -> None:
        self.faults = faults or Faults(**overrides)
        self.record = Record()
        self.lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self, port: int = 0) -> FaultServer:
        """Start serving; returns self."""
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.fault_server = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- what tests read --

    def outcomes(self) -> dict[str, list[str]]:
        """Every outcome per request content, in arrival order."""
        with self.lock:
            out: dict[str, list[str]] = defaultdict(list)
            for event in self.record.events:
                out[event.key].append(event.outcome)
            return dict(out)

    def events(self) -> list[Event]:
        """A copy of every request seen, in arrival order."""
        with self.lock:
            return list(self.record.events)

    def timeline(self) -> list[Mark]:
        """A copy of the timeline: arrivals, replies and the tests' marks, in the order they happened."""
        with self.lock:
            return list(self.record.timeline)

    def mark(self, label: str) -> None:
        """Put a test's own event on the timeline (e.g. "the client yielded r1"), to assert what came first."""
        with self.lock:
            self.record.timeline.append(Mark("mark", label))

    def bodies(self, key: str) -> list[dict[str, Any]]:
        """The JSON bodies received for one request content."""
        with self.lock:
            return list(self.record.bodies.get(key, []))

    @property
    def max_in_flight(self) -> int:
        """The most requests the server had in flight at once."""
        return self.record.max_in_flight

    @property
    def max_serving(self) -> int:
        """The most requests served at once (never more than ``capacity`` when it is set)."""
        return self.record.max_serving

    def resent_after_success(self) -> dict[str, list[str]]:
        """Contents that were answered 200 and still sent again (must be empty)."""
        return {k: v for k, v in self.outcomes().items() if v.count("200") > 1 or ("200" in v and v[-1] != "200")}

    def stats(self) -> dict[str, Any]:
        """Counters as plain JSON."""
        outcomes = self.outcomes()
        resent = self.resent_after_success()
        events = self.events()
        return {
            "requests": len(events),
            "contents": len(outcomes),
            "max_in_flight": self.record.max_in_flight,
            "max_serving": self.record.max_serving,
            "succeeded": sum("200" in v for v in outcomes.values()),
            "resent_after_success": len(resent),
            "outcomes": _tally(e.outcome for e in events),
            "faults": asdict(self.faults),
        }

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self.lock:
            self.record = Record()

    # -- what the handler calls --

    def begin(self, body: dict[str, Any], authorization: str, path: str = "/v1/chat/completions") -> Event:
        """Count an arriving request and decide its outcome."""
        key = request_key(body)
        with self.lock:
            record = self.record
            record.in_flight += 1
            record.max_in_flight = max(record.max_in_flight, record.in_flight)
            record.bodies[key].append(body)
            record.authorizations.add(authorization)
            outcome = self._gate(body, authorization, path)
            full = outcome is None and 0 < self.faults.capacity <= record.serving
            if full:
                outcome = "429"
            elif outcome is None:
                outcome = self._decide(key, record.attempts[key], record.received)
                record.attempts[key] += 1  # markers count the attempts the server took on
            event = Event(key, outcome, time.monotonic(), record.in_flight, at_capacity=full)
            if self.faults.capacity > 0 and not full:
                record.serving += 1
                record.max_serving = max(record.max_serving, record.serving)
                event.holds_slot = True
            event.serving = record.serving
            record.received += 1
            record.events.append(event)
            record.timeline.append(Mark("arrived", key))
            return event

    def free_slot(self, event: Event) -> None:
        """The request's reply starts (or it ended): its ``capacity`` slot is free. Call with the lock held."""
        if event.holds_slot:
            event.holds_slot = False
            self.record.serving -= 1

    def end(self, event: Event) -> None:
        """Mark a request finished."""
        with self.lock:
            self.free_slot(event)
            self.record.in_flight -= 1
            event.finished = time.monotonic()
            self.record.timeline.append(Mark("finished", event.key))

    def _gate(self, body: dict[str, Any], authorization: str, path: str) -> str | None:
        """The outcome decided by route, key and model, before any marker."""
        if path.rstrip("/") != "/v1/chat/completions":
            return "noroute"
        if self.faults.api_key is not None and authorization != f"Bearer {self.faults.api_key}":
            return "401"
        if self.faults.models is not None and body.get("model") not in self.faults.models:
            return "nomodel"
        return None

    def _decide(self, key: str, attempt: int, index: int) -> str:
        kind: str
        count: str
        for kind, count in MARKER.findall(key):
            if kind == "delay":
                continue
            if count == "all" or attempt < int(count):
                return kind
        if index < self.faults.rate_limit_first:
            return "429"
        if self.faults.rate_limit_fraction and self._random.random() < self.faults.rate_limit_fraction:
            return "429"
        return "200"


def _tally(items: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for item in items:
        out[item] += 1
    return dict(out)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512  # the default backlog of 5 drops connections under a burst of clients
    allow_reuse_address = True
    fault_server: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout, cancelled run) and closed its connection is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add ~40 ms

    @property
    def fault_server(self) -> FaultServer:
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.fault_server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/stats":
            self._send(200, json.dumps(self.fault_server.stats()))
        elif self.path.rstrip("/") == "/events":
            self._send(200, json.dumps([asdict(e) for e in self.fault_server.events()]))
        elif self.path.rstrip("/") in ("/health", "/v1/models"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "tiny", "object": "model"}]}))
        else:
            self._send(404, json.dumps({"error": {"message": "not found"}}))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") == "/reset":
            self.fault_server.reset()
            self._send(200, "{}")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send(400, json.dumps({"error": {"message": "body is not a JSON object"}}))
            return
        server = self.fault_server
        event = server.begin(body, self.headers.get("Authorization", ""), self.path)
        try:
            self._respond(body, event)
        except OSError:  # the client gave up (timeout) and closed the connection
            self.close_connection = True
        finally:
            server.end(event)

    def _respond(self, body: dict[str, Any], event: Event) -> None:
        faults = self.fault_server.faults
        key, outcome = event.key, event.outcome
        delay = 0.0 if event.at_capacity else faults.latency + sum(float(v) for k, v in MARKER.findall(key) if k == "delay")
        time.sleep(delay)
        with self.fault_server.lock:
            self.fault_server.free_slot(event)
            self.fault_server.record.timeline.append(Mark("replying", key))
        if outcome == "200":
            self._send(200, json.dumps(completion(body, key, reply_for(faults, key), served_model=faults.served_model)))
        elif outcome == "slow":
            time.sleep(faults.slow_seconds)
            self._send(200, json.dumps(completion(body, key, reply_for(faults, key), served_model=faults.served_model)))
        elif outcome == "badjson":
            self._send(200, '{"id": "chatcmpl-x", "choices": [{"message": ')
        elif outcome == "nochoices":
            self._send(200, json.dumps({"id": "chatcmpl-x", "object": "chat.completion"}))
        elif outcome == "emptychoices":
            self._send(200, json.dumps({**completion(body, key, reply_for(faults, key), served_model=faults.served_model), "choices": []}))
        elif outcome == "redirect":
            self._send(307, "", {"Location": faults.redirect_to})
        elif outcome == "errorbeside":
            reply = completion(body, key, reply_for(faults, key), served_model=faults.served_model)
            self._send(200, json.dumps({**reply, "error": {"message": "upstream model overloaded", "type": "server_error"}}))
        elif outcome in ("empty", "null", "nonstring", "huge"):
            content: Any = {"empty": "", "null": None, "nonstring": 42, "huge": "A" * faults.huge_chars}[outcome]
            self._send(200, json.dumps(completion(body, key, reply_for(faults, key), content=content, served_model=faults.served_model)))
        elif outcome in ("length", "filtered"):
            finish_reason = "length" if outcome == "length" else "content_filter"
            self._send(200, json.dumps(completion(body, key, faults.cut_reply, finish_reason=finish_reason, served_model=faults.served_model)))
        elif outcome == "trickle":
            self._trickle(
                json.dumps(completion(body, key, reply_for(faults, key), served_model=faults.served_model)).encode(), faults.trickle_interval, event
            )
        elif outcome == "noroute":
            self._send(404, json.dumps({"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}))
        elif outcome == "nomodel":
            model = body.get("model")
            self._send(
                404,
                json.dumps(
                    {
                        "error": {
                            "message": f"The model `{model}` does not exist or you do not have access to it.",
                            "type": "invalid_request_error",
                            "code": "model_not_found",
                        }
                    }
                ),
            )
        elif outcome == "leaky":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self._send(
                400,
                json.dumps(
                    {
                        "error": {
                            "message": (
                                f"upstream http://proxy-user:proxy-pass-LEAKED@10.0.0.1:9000/v1?api-key=QUERY-KEY-LEAKED refused "
                                f"Authorization: Bearer {token}; retry with api_key=PROSE-KEY-LEAKED"
                            ),
                            "type": "invalid_request_error",
                        }
                    }
                ),
            )
        elif outcome.isdigit():
            self._send_error(int(outcome))
        else:
            self._send(400, json.dumps({"error": {"message": f"unknown fault '{outcome}'"}}))

    def _send_error(self, status: int) -> None:
        message = STATUS_TEXT.get(status, "injected fault")
        headers: dict[str, str] = {}
        if status == 401:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {token}. You can find your API key in your account settings."
        if status == 429 and self.fault_server.faults.retry_after is not None:
            headers["Retry-After"] = self.fault_server.faults.retry_after
        self._send(status, json.dumps({"error": {"message": message, "type": "injected", "code": str(status)}}), headers)

    def _trickle(self, data: bytes, interval: float, event: Event) -> None:
        """A 200 whose headers come at once and whose body then comes one byte every ``interval``
        seconds; ``event.body_bytes`` counts the bytes written until the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        event.body_bytes = 0
        for i in range(len(data)):
            time.sleep(interval)
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            event.body_bytes = i + 1

    def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def reply_for(faults: Faults, key: str) -> str:
    """The reply to a request with text ``key``: the first scripted match, else ``faults.reply``."""
    return next((reply for needle, reply in faults.replies if needle in key), faults.reply)


def completion(
    body: dict[str, Any], key: str, reply: str, content: Any = ..., finish_reason: str = "stop", served_model: Any = None
) -> dict[str, Any]:
    """A chat-completion object answering ``reply`` (or a message ``content`` given as is) that ended
    with ``finish_reason``, naming ``served_model`` as its model (None: the requested one); usage counts
    words, plus 85 tokens an image."""
    prompt_tokens = len(key.split()) + 85 * count_images(body)
    completion_tokens = len(reply.split())
    content = reply if content is ... else content
    return {
        "id": f"chatcmpl-{abs(hash(key)) % 10**12}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "tiny") if served_model is None else served_model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; prints the base URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate_limit_first", type=int, default=0)
    parser.add_argument("--rate_limit_fraction", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=0, help="requests served at once; more get an immediate 429")
    parser.add_argument("--retry_after", default="1")
    parser.add_argument("--reply", default="Yes.")
    parser.add_argument("--api_key", default=None, help="answer 401 to any other bearer token")
    parser.add_argument("--models", default=None, help="comma-separated served models; others get 404 model_not_found")
    parser.add_argument("--served_model", default=None, help="the model every reply names (default: the requested one)")
    args = parser.parse_args(argv)
    server = FaultServer(
        Faults(
            latency=args.latency,
            rate_limit_first=args.rate_limit_first,
            rate_limit_fraction=args.rate_limit_fraction,
            capacity=args.capacity,
            retry_after=args.retry_after,
            reply=args.reply,
            api_key=args.api_key,
            models=tuple(args.models.split(",")) if args.models else None,
            served_model=args.served_model,
        )
    ).start(args.port)
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
