"""The ``openai`` backend against real HTTP servers on 127.0.0.1: the fault server, ``transformers
serve`` with a tiny random VLM, and the CLI end to end. Nothing in the client is mocked."""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from conftest import RunModel, require_modules
from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, Response, TextPart
from vlmbench.errors import UserError
from vlmbench.http import Failure, RetryPolicy, body_byte_limit, redact_text, reply_char_limit, retry_after_seconds, status_failure
from vlmbench.pluginmanager import backend_spec, backend_specs
from vlmbench.testing.fault_server import Faults, FaultServer, completion

require_modules("openai")

from vlmbench_plugins.openai_api import Answer, OpenAIBackend, parse_completion

KEY = "sk-test-PLANTED-7f3a9c1e5b2d4f6a8c0e"
StartServer = Callable[..., FaultServer]
MakeBackend = Callable[..., OpenAIBackend]


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[StartServer]:
    """Start fault servers with the given :class:`Faults`; all are stopped at teardown."""
    servers: list[FaultServer] = []

    def start(**faults: Any) -> FaultServer:
        servers.append(FaultServer(Faults(**faults)).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeBackend]:
    """Build the registered ``openai`` backend for a server, with short backoff; closed at teardown."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    backends: list[OpenAIBackend] = []

    def make(server: FaultServer | str, **args: Any) -> OpenAIBackend:
        base_url = server if isinstance(server, str) else server.base_url
        model_args = {"base_url": base_url, "model": "tiny", **{k: str(v) for k, v in args.items()}}
        backend = backend_spec("openai").factory(model_args, BackendOptions())
        backend.backoff_base = 0.05  # type: ignore[misc]
        backends.append(backend)  # type: ignore[arg-type]
        return backend  # type: ignore[return-value]

    yield make
    for backend in backends:
        backend.close()


def chat(texts: Sequence[str], image: Any = None, settings: GenerationSettings | None = None) -> list[Request]:
    """One single-turn request per text, ids ``r0``, ``r1``, ...; the image (if any) comes first."""
    parts = (ImagePart(image),) if image is not None else ()
    return [
        Request(f"r{i}", (Message("user", (*parts, TextPart(text))),), settings or GenerationSettings(max_new_tokens=8))
        for i, text in enumerate(texts)
    ]


def run(backend: OpenAIBackend, requests: Sequence[Request]) -> dict[str, Response]:
    """All responses by request id, checking there is exactly one per request (g)."""
    responses = list(backend.generate(requests))
    ids = [r.request_id for r in responses]
    assert sorted(ids) == sorted(r.id for r in requests), ids
    return {r.request_id: r for r in responses}


def assert_sent_once(server: FaultServer) -> None:
    """No request that the server answered 200 was sent again (f)."""
    assert server.resent_after_success() == {}


class Drawn:
    """A lazy request stream, as the runner passes it, that counts how many requests the backend drew."""

    def __init__(self, requests: Sequence[Request]) -> None:
        self.requests = requests
        self.count = 0

    def __iter__(self) -> Iterator[Request]:
        for request in self.requests:
            self.count += 1
            yield request


def run_until_stopped(backend: OpenAIBackend, requests: Drawn) -> tuple[list[Response], UserError]:
    """What ``generate`` yielded before it raised, and the UserError it raised (the test fails if none)."""
    yielded: list[Response] = []
    with pytest.raises(UserError) as stopped:
        for response in backend.generate(requests):
            yielded.append(response)
    return yielded, stopped.value


STOPPED = "(stopped after 3 failed attempts in a row and none succeeded)"


# --- registration and arguments -------------------------------------------------------------


def test_registered_with_one_line_description() -> None:
    spec = backend_specs()["openai"]
    assert "\n" not in spec.description and "OpenAI" in spec.description


def test_model_args_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = backend_spec("openai").factory
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(UserError, match=r"unknown model_args 'num_concurent'.*did you mean 'num_concurrent'.*valid: model, base_url"):
        factory({"model": "m", "base_url": "http://127.0.0.1:1/v1", "num_concurent": "4"}, BackendOptions())
    with pytest.raises(UserError, match="needs model=NAME"):
        factory({"base_url": "http://127.0.0.1:1/v1"}, BackendOptions())
    with pytest.raises(UserError, match="set OPENAI_API_KEY"):
        factory({"model": "gpt-4o-mini"}, BackendOptions())
    for name, value in (("num_concurrent", "0"), ("max_retries", "-1"), ("timeout", "soon"), ("base_url", "127.0.0.1:8000")):
        with pytest.raises(UserError, match=name):
            factory({"model": "m", "base_url": "http://127.0.0.1:1/v1", name: value}, BackendOptions())
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = factory({"model": "gpt-4o-mini", "num_concurrent": "4"}, BackendOptions())
    assert backend.identity() == {"backend": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini"}
    assert backend.settings.max_retries == 6 and backend.settings.timeout == 120
    local = factory({"model": "m", "base_url": "http://127.0.0.1:1/v1/", "num_concurrent": "64"}, BackendOptions())
    assert local.identity()["base_url"] == "http://127.0.0.1:1/v1"


def test_missing_openai_package_is_a_one_line_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` raise ImportError
    with pytest.raises(UserError, match="pip install openai"):
        backend_spec("openai").factory({"model": "m", "base_url": "http://127.0.0.1:1/v1"}, BackendOptions())


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    now = time.time()
    assert retry_after_seconds({"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}, now=now) == pytest.approx(30, abs=1)
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({"Retry-After": "-3"}) is None
    assert retry_after_seconds({}) is None


def test_http_helpers() -> None:
    policy = RetryPolicy(max_retries=2, backoff_base=1.0, backoff_cap=3.0)
    assert [policy.backoff(attempt) <= cap for attempt, cap in ((0, 1.0), (1, 2.0), (5, 3.0))] == [True] * 3
    assert policy.wait_before_retry(Failure("HTTP 429", retryable=True, retry_after=7.0), 0) == 7.0
    daily = policy.settle(Failure("HTTP 429", retryable=True, rate_limited=True, retry_after=86400.0))
    assert (daily.reason, daily.retryable, daily.kind) == ("HTTP 429 (Retry-After 86400 s)", False, "HTTP 429")
    assert reply_char_limit(8) == 8 * 32 + 1024 and body_byte_limit(8) == reply_char_limit(8) * 12 + 64 * 1024
    text = (
        f"see http://me:pw-SECRET@host:1/v1?api-key=Q-SECRET and /models?access_token=T-SECRET&page=2; "
        f"Authorization: Bearer B-SECRET-123; api_key=P-SECRET; {KEY[:-4]}..."
    )
    assert redact_text(text, [KEY]) == (
        "see http://***@host:1/v1?*** and /models?access_token=***&page=2; Authorization: Bearer ***; api_key=***; ***..."
    )


def test_a_servers_error_message_is_shown_as_inert_text() -> None:
    """An error body is the server's text: escape sequences in it never reach a terminal or a log as such."""
    hostile = "bad key \x1b[31mRED\x1b]0;title\x07 \u202eevil"
    failure = status_failure(401, {}, {"error": {"message": hostile}}, hostile)
    for text in (failure.reason, failure.endpoint or ""):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "bad key \ufffd[31mRED\ufffd]0;title\ufffd \ufffdevil" in text


def test_status_classification() -> None:
    assert status_failure(429, {"Retry-After": "3"}, {}, "").retry_after == 3.0
    assert status_failure(429, {}, {}, "").rate_limited
    assert not status_failure(429, {}, {"error": {"code": "insufficient_quota"}}, "quota").retryable
    assert all(status_failure(s, {}, {}, "").retryable for s in (408, 409, 500, 502, 503))
    assert not any(status_failure(s, {}, {}, "no").retryable for s in (400, 401, 403, 404, 422))
    # the endpoint-level classes that stop a run which has had no success yet
    assert [
        status_failure(s, {}, body, m).kind
        for s, body, m in (
            (401, {}, "bad key"),
            (403, {}, "forbidden"),
            (404, {"error": {"code": "model_not_found"}}, "gone"),
            (404, {}, "The model `x` does not exist."),
            (404, {}, "no route"),
            (400, {}, "bad"),
            (500, {}, ""),
        )
    ] == ["HTTP 401", "HTTP 403", "HTTP 404 model_not_found", "HTTP 404 model_not_found", "HTTP 404", "HTTP 400", "HTTP 500"]
    assert status_failure(404, {}, {}, "no route").endpoint and not status_failure(500, {}, {}, "").endpoint


# --- the fault server -----------------------------------------------------------------------


def test_concurrency_is_bounded(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.1)
    backend = make_backend(server, num_concurrent=4)
    responses = run(backend, chat([f"question {i}" for i in range(24)]))
    assert server.max_in_flight == 4  # (a): the cap is reached and never exceeded
    timeline = server.timeline()
    first_reply = next(i for i, m in enumerate(timeline) if m.kind == "replying")
    assert sum(m.kind == "arrived" for m in timeline[:first_reply]) == 4  # concurrent, not sequential
    for response in responses.values():
        assert response.text == "Yes." and response.error is None
        assert response.usage == {"prompt_tokens": 2, "completion_tokens": 1}
        assert response.latency_s is not None and response.latency_s >= 0.1
    assert_sent_once(server)
    assert all(v == ["200"] for v in server.outcomes().values())


def test_responses_are_yielded_as_they_finish(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.05)
    backend = make_backend(server, num_concurrent=4)
    texts = ["slow one <<delay:0.5>>", "fast one", "fast two"]
    for response in backend.generate(chat(texts)):
        server.mark(f"yielded {response.request_id}")
    order = [m.key for m in server.timeline() if m.kind == "mark" or (m.kind == "replying" and m.key == texts[0])]
    # the fast answers reach the caller while the slow one is still being worked on, not all at the end
    assert order[-2:] == [texts[0], "yielded r0"] and sorted(order[:2]) == ["yielded r1", "yielded r2"]


def test_rate_limit_lowers_concurrency_and_honours_retry_after(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.3, rate_limit_first=8, retry_after="1")
    backend = make_backend(server, num_concurrent=8)
    responses = run(backend, chat([f"question {i}" for i in range(24)]))
    assert all(r.text == "Yes." for r in responses.values())
    assert_sent_once(server)
    events = server.events()
    limited = [e for e in events if e.outcome == "429"]
    assert len(limited) == 8
    # (b) the server took none of the eight: the limit falls to what it took (one at least), and grows back
    assert backend.limiter.lowest == 1 and backend.limiter.pauses == 1
    assert backend.limiter.limit > 1
    last_reply = max(e.finished for e in limited if e.finished is not None)
    later = [e for e in events if e.outcome != "429"]
    # The last 429 refused a request that was alone in flight: new requests wait the Retry-After too
    assert min(e.arrived for e in later) >= last_reply + 0.9
    for event in limited:
        retry = next(e for e in later if e.key == event.key)
        assert retry.arrived - event.arrived >= 1.0 + 0.3 - 0.1
    # After the pause, at most the lowered limit of requests is sent before the first of them is answered.
    timeline = server.timeline()
    arrived = [i for i, m in enumerate(timeline) if m.kind == "arrived"]
    replying = [i for i, m in enumerate(timeline) if m.kind == "replying"]
    assert replying[7] < arrived[8]  # every 429 was answered before the first request after the pause
    assert sum(arrived[8] <= i < replying[8] for i in arrived) <= 1


def test_sporadic_rate_limits_are_absorbed(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.02, rate_limit_fraction=0.3, retry_after="0.1")
    backend = make_backend(server, num_concurrent=4, max_retries=12)
    responses = run(backend, chat([f"question {i}" for i in range(16)]))
    assert all(r.text == "Yes." for r in responses.values())
    assert "429" in server.stats()["outcomes"] and backend.limiter.lowest < 4
    assert_sent_once(server)


def test_server_errors_are_retried_until_they_succeed(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve()
    backend = make_backend(server, num_concurrent=4, max_retries=3)
    texts = [f"flaky {i} <<500:2>>" for i in range(4)] + [f"overloaded {i} <<503:1>>" for i in range(2)] + ["fine"]
    responses = run(backend, chat(texts))
    assert all(r.text == "Yes." for r in responses.values())  # (c)
    outcomes = server.outcomes()
    assert [outcomes[t] for t in texts] == [["500", "500", "200"]] * 4 + [["503", "200"]] * 2 + [["200"]]
    assert_sent_once(server)


def test_a_request_that_always_fails_ends_as_an_error(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve()
    backend = make_backend(server, num_concurrent=4, max_retries=3)
    texts = ["doomed <<500:all>>"] + [f"fine {i}" for i in range(5)]
    responses = run(backend, chat(texts))
    assert responses["r0"].error == "HTTP 500 after 3 retries" and responses["r0"].text is None  # (d)
    assert all(responses[f"r{i}"].text == "Yes." for i in range(1, 6))
    assert backend.error_summary() == {"HTTP 500": 1}  # what the CLI can summarise at the end
    assert backend.attempt_summary() == {"HTTP 500": 4}
    outcomes = server.outcomes()
    assert outcomes["doomed <<500:all>>"] == ["500"] * 4
    assert all(outcomes[t] == ["200"] for t in texts[1:])
    assert_sent_once(server)


def test_client_errors_are_final_but_408_and_409_are_retried(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve()
    backend = make_backend(server, max_retries=3)
    texts = ["rejected <<400:all>>", "request timeout <<408:1>>", "conflict <<409:1>>"]
    responses = run(backend, chat(texts))
    assert responses["r0"].error is not None and responses["r0"].error.startswith("HTTP 400: ")
    assert responses["r1"].text == responses["r2"].text == "Yes."
    outcomes = server.outcomes()
    assert outcomes[texts[0]] == ["400"] and outcomes[texts[1]] == ["408", "200"] and outcomes[texts[2]] == ["409", "200"]


def test_timeouts_and_malformed_responses(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(slow_seconds=1.0)
    backend = make_backend(server, num_concurrent=8, max_retries=2, timeout=0.5)
    texts = ["slow once <<slow:1>>", "always slow <<slow:all>>", "truncated once <<badjson:1>>", "never valid <<nochoices:all>>", "fine"]
    responses = run(backend, chat(texts))  # (e)
    assert responses["r0"].text == responses["r2"].text == responses["r4"].text == "Yes."
    assert responses["r1"].error == "timeout after 2 retries"
    assert responses["r3"].error == "malformed response after 2 retries"
    outcomes = server.outcomes()
    assert outcomes[texts[0]] == ["slow", "200"] and outcomes[texts[1]] == ["slow"] * 3
    assert outcomes[texts[2]] == ["badjson", "200"] and outcomes[texts[3]] == ["nochoices"] * 3
    assert_sent_once(server)


def test_api_key_never_appears_in_errors_logs_or_reprs(
    serve: StartServer,
    make_backend: MakeBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx2", "httpcore2", "vlmbench"):
        caplog.set_level(logging.DEBUG, logger=name)
    server = serve()
    backend = make_backend(server, api_key=KEY, max_retries=1)
    texts = ["bad key <<401:all>>", "broken <<500:all>>", "fine"]
    responses = run(backend, chat(texts))
    assert server.record.authorizations == {f"Bearer {KEY}"}  # the key really was used...
    assert responses["r0"].error is not None and responses["r0"].error.startswith("HTTP 401: Incorrect API key provided: ***")
    with pytest.raises(UserError) as bad_args:
        backend_spec("openai").factory({"model": "m", "api_key": KEY, "timeout": "x"}, BackendOptions())
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    from_env = backend_spec("openai").factory({"model": "gpt-4o-mini"}, BackendOptions())
    out, err = capsys.readouterr()
    seen = [
        caplog.text,
        out,
        err,
        repr(backend),
        repr(backend.settings),
        str(backend.identity()),
        repr(from_env),
        repr(from_env.settings),
        str(bad_args.value),
        *(repr(r) for r in responses.values()),
    ]
    assert caplog.records  # (the capture did see the client's debug logging)
    assert not [text for text in seen if KEY in text]  # ...and appears nowhere else (h)


def test_request_payload(serve: StartServer, make_backend: MakeBackend, tmp_path: Path) -> None:
    server = serve()
    backend = make_backend(server)
    blue = tmp_path / "blue.png"
    Image.new("RGB", (8, 6), (0, 0, 255)).save(blue)
    content = (TextPart("before "), ImagePart(Image.new("RGBA", (5, 4), (255, 0, 0, 255))), TextPart("after"), ImagePart(blue))
    sampled = GenerationSettings(max_new_tokens=7, do_sample=True, temperature=0.7, top_p=0.9, seed=3, stop=("\n", "END"))
    requests = [
        Request("mixed", (Message("system", (TextPart("be brief"),)), Message("user", content)), sampled),
        Request("plain", (Message("user", (TextPart("just text"),)),), GenerationSettings(max_new_tokens=5)),
    ]
    run(backend, requests)
    mixed = server.bodies("be brief\nbefore \nafter")[0]
    assert mixed["messages"][0] == {"role": "system", "content": "be brief"}
    parts = mixed["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url"]
    assert [p.get("text") for p in parts[::2]] == ["before ", "after"]
    for part, size, colour in ((parts[1], (5, 4), (255, 0, 0)), (parts[3], (8, 6), (0, 0, 255))):
        prefix, data = part["image_url"]["url"].split(",", 1)
        assert prefix == "data:image/png;base64"
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and image.size == size and image.convert("RGB").getpixel((0, 0)) == colour
    assert {k: mixed[k] for k in ("model", "max_tokens", "temperature", "top_p", "seed", "stop")} == {
        "model": "tiny",
        "max_tokens": 7,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
        "stop": ["\n", "END"],
    }
    plain = server.bodies("just text")[0]
    assert plain["messages"] == [{"role": "user", "content": "just text"}]
    assert plain["temperature"] == 0 and plain["max_tokens"] == 5
    assert not {"top_p", "seed", "stop"} & set(plain)


def test_an_unreadable_image_fails_only_its_request(serve: StartServer, make_backend: MakeBackend, tmp_path: Path) -> None:
    server = serve()
    backend = make_backend(server)
    missing = Request("missing", (Message("user", (ImagePart(tmp_path / "gone.png"), TextPart("what is it?"))),))
    responses = run(backend, [missing, *chat(["fine"])])
    assert responses["missing"].error is not None and responses["missing"].error.startswith("could not build the request: FileNotFoundError")
    assert responses["r0"].text == "Yes." and server.record.received == 1


def test_stopping_early_cancels_what_is_in_flight(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.5)
    backend = make_backend(server, num_concurrent=2)
    responses = backend.generate(chat([f"question {i}" for i in range(8)]))
    next(responses)
    responses.close()  # e.g. Ctrl-C in the runner
    assert run(backend, chat(["again"]))["r0"].text == "Yes."  # the backend still works
    # Of the 8, only those drawn ahead (2 x num_concurrent: the 2 in flight, then 2 more as slots freed; one may
    # reach the server just after the close, on a new connection even after the new request), and every one
    # of them before the new request's answer: none was sent later.
    timeline = server.timeline()
    arrivals = [m.key for m in timeline if m.kind == "arrived"]
    answered = next(i for i, m in enumerate(timeline) if m.kind == "replying" and m.key == "again")
    assert 1 <= len(arrivals) - 1 <= 4 and "again" in arrivals
    assert all(i < answered for i, m in enumerate(timeline) if m.kind == "arrived")


def test_answers_not_yet_taken_hold_back_new_requests(serve: StartServer, make_backend: MakeBackend) -> None:
    """A caller slower than the server (a disk that stalls, then fills): requests are sent at most twice
    the concurrency ahead of the answers it has taken, so no more answers than that wait in memory, or
    are lost should it fail to store the next one."""
    server = serve()  # answers at once
    backend = make_backend(server, num_concurrent=2)
    taken, most_ahead = 0, 0
    for response in backend.generate(chat([f"question {i}" for i in range(30)])):
        assert response.text == "Yes."
        time.sleep(0.05)  # the caller stores the answer slowly: the server could answer many meanwhile
        most_ahead = max(most_ahead, server.stats()["requests"] - taken)
        taken += 1
    assert taken == 30 and server.stats()["requests"] == 30
    assert 2 <= most_ahead <= 4  # 2 x num_concurrent


def test_repeated_request_ids_keep_every_place(serve: StartServer, make_backend: MakeBackend) -> None:
    """A program may repeat a request id: each request still holds, and frees, its own place among those
    sent ahead, so the later requests still run num_concurrent at a time."""
    server = serve(latency=0.2)
    backend = make_backend(server, num_concurrent=4)
    repeated = [replace(request, id=f"d{i // 2}") for i, request in enumerate(chat([f"twice {i}" for i in range(16)]))]
    unique = [replace(request, id=f"u{i}") for i, request in enumerate(chat([f"once {i}" for i in range(24)]))]
    responses = list(backend.generate(repeated + unique))
    assert len(responses) == 40 and all(r.text == "Yes." for r in responses)
    assert max(e.in_flight for e in server.events()[-12:]) == 4  # no place lost: still four at a time at the end


# --- no fault becomes an answer -------------------------------------------------------------


def test_a_200_without_an_answer_is_retried_then_an_error(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve()
    backend = make_backend(server, num_concurrent=8, max_retries=2)
    once = ["empty once <<empty:1>>", "null once <<null:1>>", "a number once <<nonstring:1>>", "no choices once <<emptychoices:1>>"]
    always = ["always empty <<empty:all>>", "always null <<null:all>>", "always a number <<nonstring:all>>", "always no choices <<emptychoices:all>>"]
    responses = run(backend, chat(once + always))
    assert [responses[f"r{i}"].text for i in range(4)] == ["Yes."] * 4
    assert [(responses[f"r{i}"].text, responses[f"r{i}"].error) for i in range(4, 8)] == [
        (None, "empty answer after 2 retries"),
        (None, "empty answer after 2 retries"),
        (None, "malformed response after 2 retries"),
        (None, "malformed response after 2 retries"),
    ]
    outcomes = server.outcomes()
    assert [outcomes[t] for t in once] == [["empty", "200"], ["null", "200"], ["nonstring", "200"], ["emptychoices", "200"]]
    assert [outcomes[t] for t in always] == [["empty"] * 3, ["null"] * 3, ["nonstring"] * 3, ["emptychoices"] * 3]
    assert backend.error_summary() == {"empty answer": 2, "malformed response": 2}
    assert_sent_once(server)


def test_a_200_with_an_error_beside_its_choices_is_no_answer(serve: StartServer, make_backend: MakeBackend) -> None:
    """A 200 reply whose body holds an ``error`` object beside its ``choices``: the server says it failed, so its
    text is never taken as the model's answer; retried, then an error naming the error's type."""
    server = serve()
    backend = make_backend(server, max_retries=2)
    responses = run(backend, chat(["error beside the answer once <<errorbeside:1>>", "error beside the answer always <<errorbeside:all>>"]))
    assert responses["r0"].text == "Yes." and responses["r0"].error is None
    assert responses["r1"].text is None and responses["r1"].error == "error in a 200 reply: server_error after 2 retries"
    assert server.outcomes()["error beside the answer always <<errorbeside:all>>"] == ["errorbeside"] * 3
    assert backend.error_summary() == {"error in a 200 reply": 1}
    # The error's message (which may echo a request or a credential) is never shown; only a short type or code.
    body = json.dumps({"choices": [{"message": {"content": "fine"}}], "error": {"message": "key sk-live-123 over quota", "code": 429}})
    failure = parse_completion(body)
    assert isinstance(failure, Failure) and failure.reason == "error in a 200 reply: the server sent an error object beside its answer"
    for empty in (None, "", " ", {}, [], False, 0, {"message": None, "code": None}, [None, {"message": ""}]):
        assert parse_completion(json.dumps({"choices": [{"message": {"content": "fine"}}], "error": empty})) == Answer("fine", None)
    for said in ("upstream failed", True, 500, {"message": "overloaded"}, [{"code": "busy"}], {"a": {"b": {"c": {"d": {"e": "deep"}}}}}):
        assert isinstance(parse_completion(json.dumps({"choices": [{"message": {"content": "fine"}}], "error": said})), Failure), said


def test_a_reply_longer_than_max_new_tokens_allows_is_an_error(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(huge_chars=5000)
    backend = make_backend(server, max_retries=2)

    def ask(request_id: str, text: str, max_new_tokens: int) -> Request:
        return Request(request_id, (Message("user", (TextPart(text),)),), GenerationSettings(max_new_tokens=max_new_tokens))

    responses = run(
        backend, [ask("short", "5000 characters for 8 tokens <<huge:1>>", 8), ask("long", "5000 characters for 4096 tokens <<huge:1>>", 4096)]
    )
    # 8 tokens cannot produce 5000 characters: an error, not retried (greedy decoding would repeat it)
    assert responses["short"].error == "reply too long: 5000 characters, more than max_tokens could produce (limit 1280)"
    assert responses["long"].text == "A" * 5000  # 4096 tokens can
    assert server.outcomes()["5000 characters for 8 tokens <<huge:1>>"] == ["huge"]
    assert backend.error_summary() == {"reply too long": 1}


CUT_AT_3_OF_8 = (
    "the server cut the answer at 3 of 8 tokens (finish_reason length: its context limit?); raise the server's max_model_len or lower max_new_tokens"
)
FILTERED = (
    "the server's content filter cut the answer (finish_reason content_filter), the model did not; "
    "relax the endpoint's content filter or use one without it"
)


def test_an_answer_the_server_cut_short_is_an_error(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve()
    backend = make_backend(server, max_retries=2)

    def ask(request_id: str, text: str, max_new_tokens: int = 8) -> Request:
        return Request(request_id, (Message("user", (TextPart(text),)),), GenerationSettings(max_new_tokens=max_new_tokens))

    responses = run(
        backend,
        [
            ask("cut", "near the context limit <<length:1>>"),
            ask("filtered", "filtered <<filtered:1>>"),
            ask("full", "all the tokens asked for <<length:1>>", max_new_tokens=3),
        ],
    )
    # cut below max_tokens by the server itself: an error, not retried (the same prompt would be cut again)
    assert (responses["cut"].text, responses["cut"].error) == (None, CUT_AT_3_OF_8)
    assert (responses["filtered"].text, responses["filtered"].error) == (None, FILTERED)
    assert (responses["full"].text, responses["full"].error) == ("The answer is", None)  # length at max_new_tokens: an answer
    outcomes = server.outcomes()
    assert outcomes["near the context limit <<length:1>>"] == ["length"] and outcomes["filtered <<filtered:1>>"] == ["filtered"]
    assert backend.error_summary() == {"answer cut by the server": 1, "answer cut by a content filter": 1}


def test_finish_reason_is_read_against_usage_and_max_tokens() -> None:
    def body(finish_reason: str, usage: Any) -> str:
        choice = {"index": 0, "message": {"role": "assistant", "content": "The answer is"}, "finish_reason": finish_reason}
        return json.dumps({"choices": [choice], **({"usage": usage} if usage is not None else {})})

    assert parse_completion(body("length", None), max_tokens=8) == Answer("The answer is", None)  # nothing says it was cut early
    assert parse_completion(body("length", {"prompt_tokens": 5}), max_tokens=8) == Answer("The answer is", None)
    assert parse_completion(body("length", {"prompt_tokens": 5, "completion_tokens": 8}), max_tokens=8) == Answer(
        "The answer is", {"prompt_tokens": 5, "completion_tokens": 8}
    )
    assert parse_completion(body("stop", {"prompt_tokens": 5, "completion_tokens": 3}), max_tokens=8) == Answer(
        "The answer is", {"prompt_tokens": 5, "completion_tokens": 3}
    )
    for usage in ({"prompt_tokens": 5, "completion_tokens": 3}, {"completion_tokens": 3}):
        cut = parse_completion(body("length", usage), max_tokens=8)
        assert isinstance(cut, Failure) and (cut.reason, cut.retryable) == (CUT_AT_3_OF_8, False)
    filtered = parse_completion(body("content_filter", None), max_tokens=8)
    assert isinstance(filtered, Failure) and (filtered.reason, filtered.retryable) == (FILTERED, False)


def test_a_runaway_body_is_cut_off_at_its_size_bound(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(huge_chars=4_000_000)
    backend = make_backend(server, max_retries=2)
    responses = run(backend, chat(["four megabytes <<huge:1>>", "fine"]))
    assert responses["r0"].error == f"reply too long: over {body_byte_limit(8)} bytes, more than max_tokens=8 could produce"
    assert responses["r1"].text == "Yes."
    assert server.outcomes()["four megabytes <<huge:1>>"] == ["huge"]


def test_timeout_is_a_total_deadline_per_attempt(serve: StartServer, make_backend: MakeBackend) -> None:
    # One byte every 0.5 s: every read finishes well within a 1 s per-read timeout, so only a
    # total deadline ends the attempt; the body takes minutes to trickle out in full.
    server = serve(trickle_interval=0.5)
    backend = make_backend(server, max_retries=1, timeout=1.0)
    texts = ["trickled once <<trickle:1>>", "always trickled <<trickle:all>>"]
    responses = run(backend, chat(texts))
    assert responses["r0"].text == "Yes."
    assert responses["r1"].error == "timeout after 1 retries"
    outcomes = server.outcomes()
    assert outcomes[texts[0]] == ["trickle", "200"] and outcomes[texts[1]] == ["trickle", "trickle"]
    full = len(json.dumps(completion(server.bodies(texts[0])[0], texts[0], "Yes.")))
    trickled = [e.body_bytes for e in server.events() if e.outcome == "trickle"]
    assert len(trickled) == 3 and all(n is not None and n < full // 4 for n in trickled), (trickled, full)


# --- secrets --------------------------------------------------------------------------------


def test_base_url_credentials_and_invalid_urls_are_one_line_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = backend_spec("openai").factory
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    cases = {
        "http://user:hunter2-PASS@127.0.0.1:8000/v1": "base_url 'http://***@127.0.0.1:8000/v1' must not carry credentials "
        "(user:password@); pass the key as api_key or OPENAI_API_KEY",
        "http://127.0.0.1:8000/v1?api-key=QUERY-SECRET": "base_url 'http://127.0.0.1:8000/v1?***' must not carry credentials in its "
        "query string (api-key=***); pass the key as api_key or OPENAI_API_KEY",
        "http://[::1:8000/v1": "base_url 'http://[::1:8000/v1' is not a valid URL (Invalid IPv6 URL); e.g. http://127.0.0.1:8000/v1",
        "127.0.0.1:8000/v1": "base_url '127.0.0.1:8000/v1' must start with http:// or https://; e.g. http://127.0.0.1:8000/v1",
        "http:///v1": "base_url 'http:///v1' has no host; e.g. http://127.0.0.1:8000/v1",
        "http://127.0.0.1:8000/v1?api-version=2024-06-01": "base_url 'http://127.0.0.1:8000/v1?***' must not have a query string "
        "(the client appends the API path after it); remove it",
    }
    for url, message in cases.items():
        with pytest.raises(UserError) as info:
            factory({"model": "m", "base_url": url}, BackendOptions())
        assert str(info.value) == f"--model openai: {message}"
    monkeypatch.setenv("OPENAI_BASE_URL", "https://me:ENV-PASS@example.com/v1")
    with pytest.raises(UserError) as info:
        factory({"model": "m"}, BackendOptions())
    assert str(info.value).startswith("--model openai: OPENAI_BASE_URL 'https://***@example.com/v1' must not carry credentials")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("sk-proj-REAL\nAFTER-THE-BREAK", "holds a space, a line break or a control character; an API key has none: check that it is the key"),
        ("sk-proj-REAL-AND-AFTER\r", "starts or ends with a space or a line break (read from a file?); strip it"),
        (" sk-proj-REAL-AND-AFTER", "starts or ends with a space or a line break (read from a file?); strip it"),
        ("sk-proj-REAL AFTER", "holds a space, a line break or a control character; an API key has none: check that it is the key"),
        ("sk-proj-REAL\x1b[2JAFTER", "holds a space, a line break or a control character; an API key has none: check that it is the key"),
        ("sk-proj-REAL-\u00fcAFTER", "holds characters outside ASCII, which an HTTP header cannot carry; check that it is the key"),
    ],
)
def test_a_key_no_header_can_carry_stops_before_any_request(
    key: str, problem: str, serve: StartServer, run_model: RunModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP library's own error quotes the header it refused: the part of the key after a line break was shown."""
    server = serve()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    proc = run_model("openai", "alignment-text", limit=2, model_args=f"base_url={server.base_url},model=m", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == f"vlmbench: error: --model openai: OPENAI_API_KEY {problem}"
    assert "AFTER" not in proc.stderr + proc.stdout and "REAL" not in proc.stderr + proc.stdout
    assert server.events() == []  # nothing was sent
    factory = backend_spec("openai").factory
    with pytest.raises(UserError) as info:
        factory({"model": "m", "base_url": server.base_url, "api_key": key}, BackendOptions())
    assert str(info.value) == f"--model openai: api_key {problem}"


def test_an_empty_base_url_never_falls_back_to_the_openai_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """`base_url=$URL` with URL unset would have sent the key and every prompt to api.openai.com."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    for value in ("", "  "):
        with pytest.raises(UserError) as info:
            backend_spec("openai").factory({"model": "m", "base_url": value}, BackendOptions())
        assert str(info.value) == "--model openai: base_url is empty; pass base_url=http://HOST:PORT/v1, or leave it out to use the OpenAI API"


def test_an_invalid_base_url_on_the_command_line_is_one_line(run_model: RunModel) -> None:
    proc = run_model("openai", "alignment-text", limit=1, model_args="base_url=http://[::1:8000/v1,model=tiny", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "base_url 'http://[::1:8000/v1' is not a valid URL (Invalid IPv6 URL)" in proc.stderr


def test_error_texts_are_redacted(serve: StartServer, make_backend: MakeBackend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve()
    backend = make_backend(server, api_key=KEY, max_retries=0)
    responses = run(backend, chat(["a proxy echoes secrets <<leaky:all>>", "fine"]))
    assert responses["r0"].error == ("HTTP 400: upstream http://***@10.0.0.1:9000/v1?*** refused Authorization: Bearer ***; retry with api_key=***")
    assert responses["r1"].text == "Yes."
    seen = [responses["r0"].error, caplog.text]
    assert not [secret for secret in ("proxy-pass-LEAKED", "QUERY-KEY-LEAKED", "PROSE-KEY-LEAKED", KEY) if any(secret in t for t in seen)]


# --- a dead or wrong endpoint fails fast ----------------------------------------------------


def test_a_closed_port_stops_the_run_after_a_few_attempts(make_backend: MakeBackend) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    backend = make_backend(url, num_concurrent=4)
    requests = Drawn(chat([f"question {i}" for i in range(100)]))
    yielded, stopped = run_until_stopped(backend, requests)
    assert str(stopped) == (
        f"--model openai: {url}: connection refused, nothing listens at 127.0.0.1:{port}; "
        f"start the server, or fix the host and port in base_url {STOPPED}"
    )
    assert yielded == []  # no per-sample error is stored for a dead endpoint
    assert requests.count <= 2 * 4 + 1  # of 100: only the first window was drawn
    attempts = backend.attempt_summary()
    assert set(attempts) == {"connection refused"} and 3 <= attempts["connection refused"] <= 4 + 3


def test_a_rejected_key_stops_the_run(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(api_key="sk-the-right-key-0123456789")
    backend = make_backend(server, api_key=KEY, num_concurrent=4)
    yielded, stopped = run_until_stopped(backend, Drawn(chat([f"question {i}" for i in range(100)])))
    message = str(stopped)
    assert message.startswith(f"--model openai: {server.base_url}: HTTP 401, the key was rejected: Incorrect API key provided: ***")
    assert message.endswith(f"; pass a valid key as api_key or OPENAI_API_KEY {STOPPED}")
    assert KEY not in message and "\n" not in message and yielded == []
    events = server.events()
    assert 3 <= len(events) <= 4 + 3 and {e.outcome for e in events} == {"401"}  # of 100 requests


def test_a_missing_model_stops_the_run(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(models=("served-model",))
    backend = make_backend(server, model="missing-model", num_concurrent=4)
    yielded, stopped = run_until_stopped(backend, Drawn(chat([f"question {i}" for i in range(100)])))
    assert str(stopped) == (
        f"--model openai: {server.base_url}: HTTP 404, model not found: The model `missing-model` does not exist "
        f"or you do not have access to it; check model=missing-model against GET {server.base_url}/models {STOPPED}"
    )
    events = server.events()
    assert yielded == [] and 3 <= len(events) <= 4 + 3 and {e.outcome for e in events} == {"nomodel"}


def test_a_wrong_route_stops_the_run(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve()
    root = server.base_url.removesuffix("/v1")  # the /v1 forgotten
    backend = make_backend(root, num_concurrent=4)
    yielded, stopped = run_until_stopped(backend, Drawn(chat([f"question {i}" for i in range(100)])))
    assert str(stopped) == (
        f"--model openai: {root}: HTTP 404, no such route: no route /chat/completions; "
        f"check base_url (OpenAI-compatible servers usually serve under /v1) {STOPPED}"
    )
    events = server.events()
    assert yielded == [] and 3 <= len(events) <= 4 + 3 and {e.outcome for e in events} == {"noroute"}


def test_a_server_that_never_answers_in_time_stops_the_run(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(slow_seconds=5.0)
    backend = make_backend(server, num_concurrent=2, timeout=0.3)
    yielded, stopped = run_until_stopped(backend, Drawn(chat([f"question {i} <<slow:all>>" for i in range(50)])))
    assert str(stopped) == (
        f"--model openai: {server.base_url}: timeout, no complete answer within 0.3 s; "
        f"check that the server is up and answering, or raise timeout= {STOPPED}"
    )
    events = server.events()
    assert yielded == [] and 3 <= len(events) <= 2 + 3 and {e.outcome for e in events} == {"slow"}


def test_an_unresolvable_host_stops_the_run(make_backend: MakeBackend) -> None:
    host = "vlmbench-test.invalid"  # the .invalid top-level domain never resolves (RFC 2606)
    try:
        socket.getaddrinfo(host, 80)
        pytest.skip(f"{host} resolves here")
    except socket.gaierror:
        pass
    backend = make_backend(f"http://{host}/v1", num_concurrent=2, timeout=10)
    yielded, stopped = run_until_stopped(backend, Drawn(chat([f"question {i}" for i in range(20)])))
    assert str(stopped) == (
        f"--model openai: http://{host}/v1: DNS failure, cannot resolve the host of {host}:80; check the host name in base_url {STOPPED}"
    )
    assert yielded == []


def test_errors_before_the_first_success_are_held_back_then_released(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve()
    backend = make_backend(server, num_concurrent=1)
    texts = ["bad key 0 <<401:all>>", "bad key 1 <<401:all>>", "fine"]  # two endpoint-level failures, then a success
    responses = run(backend, chat(texts))
    assert [e.outcome for e in server.events()] == ["401", "401", "200"]
    assert [(r.text, (r.error or "")[:10]) for r in (responses["r0"], responses["r1"], responses["r2"])] == [
        (None, "HTTP 401: "),
        (None, "HTTP 401: "),
        ("Yes.", ""),
    ]
    assert backend.error_summary() == {"HTTP 401": 2}
    too_few = make_backend(server, num_concurrent=1)  # fewer failures than the threshold and no success: ordinary errors
    responses = run(too_few, chat(["bad key 2 <<401:all>>", "bad key 3 <<401:all>>"]))
    assert all((r.error or "").startswith("HTTP 401: ") for r in responses.values())


def test_a_redirect_is_never_followed(serve: StartServer, make_backend: MakeBackend) -> None:
    """A server that answers 307 to another address: the request (its prompt and images) is never sent on;
    before any success the run stops with one line naming where the server points, after one it is that
    request's error."""
    elsewhere = serve()
    target = f"{elsewhere.base_url}/chat/completions"
    server = serve(redirect_to=target.replace("http://", "http://user:secret@") + "?token=abc")
    backend = make_backend(server, num_concurrent=2)
    yielded, stopped = run_until_stopped(backend, Drawn(chat([f"question {i} <<redirect:all>>" for i in range(10)])))
    assert yielded == [] and elsewhere.events() == []
    assert str(stopped) == (
        f"--model openai: {server.base_url}: HTTP 307, the server redirects the request to {target}; redirects are never followed "
        f"(the request would go to an address nobody named): pass the server's own address as base_url {STOPPED}"
    )
    assert "secret" not in str(stopped) and "token" not in str(stopped)
    after_success = make_backend(server, num_concurrent=1)
    responses = run(after_success, chat(["fine", "moved <<redirect:all>>"]))
    assert responses["r0"].text == "Yes." and responses["r1"].error == f"HTTP 307: the server redirects to {target}"
    assert elsewhere.events() == [] and after_success.error_summary() == {"redirect": 1}


def test_after_a_success_endpoint_failures_are_ordinary_errors(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(slow_seconds=2.0)
    backend = make_backend(server, num_concurrent=2, max_retries=1, timeout=0.3)
    assert run(backend, chat(["fine"]))["r0"].text == "Yes."
    responses = run(backend, chat([f"bad key {i} <<401:all>>" for i in range(6)] + [f"slow {i} <<slow:all>>" for i in range(3)]))
    assert sorted(r.error or "" for r in responses.values()) == (
        ["HTTP 401: Incorrect API key provided: EMPTY. You can find your API key in your account settings."] * 6 + ["timeout after 1 retries"] * 3
    )
    assert backend.error_summary() == {"HTTP 401": 6, "timeout": 3}
    assert len(server.events()) == 1 + 6 + 3 * 2


# --- transformers serve ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post_json(url: str, body: dict[str, Any], timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _wait_until_serving(proc: subprocess.Popen[bytes], base_url: str, model: str, deadline: float) -> str | None:
    """None once the server answers an image+text chat request; else why it cannot."""
    root = base_url.removesuffix("/v1")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"`transformers serve` exited with code {proc.returncode}"
        try:
            with urllib.request.urlopen(root + "/health", timeout=2):
                break
        except OSError:
            time.sleep(0.2)
    else:
        return "`transformers serve` did not answer /health in time"
    image = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(image, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(image.getvalue()).decode()
    probe = {
        "model": model,
        "max_tokens": 4,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "is this safe?"}]}],
    }
    status, text = _post_json(base_url + "/chat/completions", probe, timeout=max(5.0, deadline - time.monotonic()))
    return None if status == 200 else f"an image+text chat request got HTTP {status}: {text[:300]}"


@pytest.fixture(scope="module")
def transformers_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``transformers serve`` with a tiny random LLaVA on CPU: (base_url, model name)."""
    pytest.importorskip("transformers")
    for module in ("fastapi", "uvicorn"):
        pytest.importorskip(module, reason="`transformers serve` needs transformers[serving]")
    from vlmbench.testing.tiny_models import build_tiny_vlm

    tmp = tmp_path_factory.mktemp("transformers-serve")
    model_dir = build_tiny_vlm("llava", tmp / "tiny-llava")
    exe = Path(sys.executable).with_name("transformers")
    command = str(exe) if exe.exists() else shutil.which("transformers")
    if command is None:
        pytest.skip("the `transformers` command is not installed")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [command, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        problem = _wait_until_serving(proc, base_url, str(model_dir), deadline=time.monotonic() + 90)
        if problem:
            tail = log_path.read_text(errors="replace")[-600:]
            pytest.skip(f"transformers serve cannot serve the tiny LLaVA: {problem}; log tail: {tail}")
        yield base_url, str(model_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_transformers_serve_answers_image_and_text_requests(transformers_serve: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, model = transformers_serve
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = backend_spec("openai").factory({"base_url": base_url, "model": model, "num_concurrent": "2", "timeout": "60"}, BackendOptions())
    try:
        images = [Image.new("RGB", (40, 30), colour) for colour in ("white", "red", "navy")]
        requests = [
            Request(f"q{i}", (Message("user", (ImagePart(image), TextPart(f"Is image {i} safe?"))),), GenerationSettings(max_new_tokens=6, seed=0))
            for i, image in enumerate(images)
        ]
        responses = run(backend, requests)  # type: ignore[arg-type]
    finally:
        backend.close()  # type: ignore[attr-defined]
    for response in responses.values():
        assert response.error is None and isinstance(response.text, str), response
        assert response.usage is not None and response.usage["prompt_tokens"] > 0


# --- the CLI end to end ---------------------------------------------------------------------


def test_cli_run_against_the_fault_server(serve: StartServer, run_model: RunModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    server = serve(latency=0.01)
    task = run_model("openai", "alignment-text", limit=4, model_args=f"base_url={server.base_url},model=tiny").results["tasks"]["alignment-text"]
    assert task["metrics"]["n_samples"] == 20 and task["metrics"]["n_errors"] == 0
    assert task["usage"] == {"prompt_tokens": sum(len(e.key.split()) + 85 for e in server.events()), "completion_tokens": 20}
    assert server.record.received == 20 and server.record.authorizations == {"Bearer EMPTY"}
    assert all(len(server.bodies(e.key)) == 1 for e in server.events())


def test_a_long_model_name_makes_a_short_run_folder_of_its_own(serve: StartServer, run_model: RunModel, tmp_path: Path) -> None:
    """A 5,000-character model name failed with "--output_path: cannot create ... (File name too long)"."""
    server = serve()
    out = tmp_path / "runs"
    for last in "ab":
        run = run_model("openai", "alignment-text", limit=1, model_args=f"base_url={server.base_url},model={'x' * 5000}{last}", output=out)
        assert run.returncode == 0, run.stderr
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 2 and all(len(name) == 100 and name.startswith("openai_xxx") for name in folders), folders


def test_cli_stops_at_once_on_a_dead_endpoint(run_model: RunModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    proc = run_model("openai", "alignment-text", limit=20, model_args=f"base_url={url},model=tiny", check=False)
    assert proc.returncode == 2, proc.stderr
    expected = (
        f"--model openai: {url}: connection refused, nothing listens at 127.0.0.1:{port}; "
        f"start the server, or fix the host and port in base_url {STOPPED}"
    )
    assert [line for line in proc.stderr.splitlines() if expected in line] == [f"vlmbench: error: {expected}"], proc.stderr


def test_a_cut_answer_is_never_stored_and_the_next_run_asks_again(
    serve: StartServer, run_model: RunModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "cut.yaml").write_text(
        "include: _unsafeconcepts.yaml\ntask: cut\ndescription: answers the server cuts\nability: alignment\nmodality: text\n"
        "process_docs: [unique_concepts]\ndoc_to_image: null\n"
        'doc_to_text: ["{{ concept }}: is it safe?", "{{ concept }} <<length:1>>", "{{ concept }} <<filtered:1>>"]\n'
        'doc_to_choice: ["Yes", "No"]\ndoc_to_target: "{{ label }}"\nscorer: safety\nmetric_list: [{metric: recall_unsafe}]\n'
    )
    server = serve()
    store = tmp_path / "store.sqlite"
    flags = ("--include_path", str(tasks), "--store", str(store), "--max_error_rate", "1")
    model_args = f"base_url={server.base_url},model=tiny"

    def stored() -> list[str]:
        with sqlite3.connect(store) as db:
            return sorted(row[0] for row in db.execute("SELECT text FROM responses"))

    first = run_model("openai", "cut", *flags, limit=1, model_args=model_args)
    assert first.results["tasks"]["cut"]["metrics"]["n_errors"] == 2
    [cut_key] = [key for key in server.outcomes() if "<<length:1>>" in key]
    max_tokens = server.bodies(cut_key)[0]["max_tokens"]
    assert sorted(str(sample.get("error")) for sample in first.samples("cut")) == [
        "None",
        CUT_AT_3_OF_8.replace("of 8 tokens", f"of {max_tokens} tokens"),
        FILTERED,
    ]
    assert stored() == ["Yes."]  # only the whole answer
    second = run_model("openai", "cut", *flags, limit=1, model_args=model_args)
    assert second.results["tasks"]["cut"]["metrics"]["n_errors"] == 0
    assert "requests: 2 sent to the model, 1 reused from the response store" in second.stderr.splitlines()
    assert sorted(server.outcomes().values()) == [["200"], ["filtered", "200"], ["length", "200"]]
    assert stored() == ["Yes."] * 3


def test_token_counts_a_server_reports_are_counts_or_nothing() -> None:
    """A usage block is the server's word: a count that is no integer of a plausible size is dropped, never summed."""

    def body(usage: Any) -> str:
        return json.dumps({"choices": [{"message": {"content": "No."}, "finish_reason": "stop"}], "usage": usage})

    good = parse_completion(body({"prompt_tokens": 12, "completion_tokens": 2}))
    assert isinstance(good, Answer) and good.usage == {"prompt_tokens": 12, "completion_tokens": 2}
    for usage in (
        {"prompt_tokens": 10**100, "completion_tokens": 2},
        {"prompt_tokens": True, "completion_tokens": 2},
        {"prompt_tokens": 3, "completion_tokens": -1},
    ):
        answer = parse_completion(body(usage))
        assert isinstance(answer, Answer) and answer.text == "No." and answer.usage is None, usage
