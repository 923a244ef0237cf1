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
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import load_results, vlmbench
from vlmbench.testing.fault_server import FaultServer, Faults
from PIL import Image

from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, Response, TextPart
from vlmbench.errors import UserError
from vlmbench.http import retry_after_seconds, status_failure
from vlmbench.pluginmanager import backend_spec, backend_specs

pytest.importorskip("openai")

from vlmbench_plugins.openai_api import OpenAIBackend  # noqa: E402

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

    def make(server: FaultServer, **args: Any) -> OpenAIBackend:
        model_args = {"base_url": server.base_url, "model": "tiny", **{k: str(v) for k, v in args.items()}}
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
    return [Request(f"r{i}", (Message("user", parts + (TextPart(text),)),), settings or GenerationSettings(max_new_tokens=8))
            for i, text in enumerate(texts)]


def run(backend: OpenAIBackend, requests: Sequence[Request]) -> dict[str, Response]:
    """All responses by request id, checking there is exactly one per request (g)."""
    responses = list(backend.generate(requests))
    ids = [r.request_id for r in responses]
    assert sorted(ids) == sorted(r.id for r in requests), ids
    return {r.request_id: r for r in responses}


def assert_sent_once(server: FaultServer) -> None:
    """No request that the server answered 200 was sent again (f)."""
    assert server.resent_after_success() == {}


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


def test_status_classification() -> None:
    assert status_failure(429, {"Retry-After": "3"}, {}, "").retry_after == 3.0
    assert status_failure(429, {}, {}, "").rate_limited
    assert not status_failure(429, {}, {"error": {"code": "insufficient_quota"}}, "quota").retryable
    assert all(status_failure(s, {}, {}, "").retryable for s in (408, 409, 500, 502, 503))
    assert not any(status_failure(s, {}, {}, "no").retryable for s in (400, 401, 403, 404, 422))


# --- the fault server -----------------------------------------------------------------------


def test_concurrency_is_bounded(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.1)
    backend = make_backend(server, num_concurrent=4)
    started = time.perf_counter()
    responses = run(backend, chat([f"question {i}" for i in range(24)]))
    elapsed = time.perf_counter() - started
    assert server.max_in_flight == 4  # (a): the cap is reached and never exceeded
    assert elapsed < 24 * 0.1 / 2  # concurrent, not sequential (6 waves take ~0.6 s)
    for response in responses.values():
        assert response.text == "Yes." and response.error is None
        assert response.usage == {"prompt_tokens": 2, "completion_tokens": 1}
        assert response.latency_s is not None and response.latency_s >= 0.1
    assert_sent_once(server)
    assert all(v == ["200"] for v in server.outcomes().values())


def test_responses_are_yielded_as_they_finish(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.05)
    backend = make_backend(server, num_concurrent=4)
    started = time.perf_counter()
    arrivals = [(r.request_id, time.perf_counter() - started)
                for r in backend.generate(chat(["slow one <<delay:1.0>>", "fast one", "fast two"]))]
    assert [rid for rid, _ in arrivals][-1] == "r0"
    assert all(t < 0.6 for rid, t in arrivals if rid != "r0")
    assert arrivals[-1][1] >= 1.0


def test_rate_limit_halves_concurrency_and_honours_retry_after(serve: StartServer, make_backend: MakeBackend) -> None:
    server = serve(latency=0.3, rate_limit_first=8, retry_after="1")
    backend = make_backend(server, num_concurrent=8)
    responses = run(backend, chat([f"question {i}" for i in range(24)]))
    assert all(r.text == "Yes." for r in responses.values())
    assert_sent_once(server)
    events = server.events()
    limited = [e for e in events if e.outcome == "429"]
    assert len(limited) == 8
    # (b) eight 429s to requests sent together halve the limit once, not three times
    assert backend.limiter.lowest == 4
    assert backend.limiter.limit > 4  # and successes grow it back
    first_reply = min(e.finished for e in limited if e.finished is not None)
    later = [e for e in events if e.outcome != "429"]
    # Retry-After: 1 pauses every request, not only the rate-limited ones
    assert min(e.arrived for e in later) >= first_reply + 0.9
    for event in limited:
        retry = next(e for e in later if e.key == event.key)
        assert retry.arrived - event.arrived >= 1.0 + 0.3 - 0.1
    resumed = min(e.arrived for e in later)
    assert max(e.in_flight for e in later if e.arrived < resumed + 0.25) <= 4


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
    texts = ["slow once <<slow:1>>", "always slow <<slow:all>>", "truncated once <<badjson:1>>",
             "never valid <<nochoices:all>>", "fine"]
    responses = run(backend, chat(texts))  # (e)
    assert responses["r0"].text == responses["r2"].text == responses["r4"].text == "Yes."
    assert responses["r1"].error == "timeout after 2 retries"
    assert responses["r3"].error == "malformed response after 2 retries"
    outcomes = server.outcomes()
    assert outcomes[texts[0]] == ["slow", "200"] and outcomes[texts[1]] == ["slow"] * 3
    assert outcomes[texts[2]] == ["badjson", "200"] and outcomes[texts[3]] == ["nochoices"] * 3
    assert_sent_once(server)


def test_api_key_never_appears_in_errors_logs_or_reprs(serve: StartServer, make_backend: MakeBackend,
                                                      monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
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
    seen = [caplog.text, out, err, repr(backend), repr(backend.settings), str(backend.identity()), repr(from_env),
            repr(from_env.settings), str(bad_args.value), *(repr(r) for r in responses.values())]
    assert caplog.records  # (the capture did see the client's debug logging)
    assert not [text for text in seen if KEY in text]  # ...and appears nowhere else (h)


def test_request_payload(serve: StartServer, make_backend: MakeBackend, tmp_path: Path) -> None:
    server = serve()
    backend = make_backend(server)
    blue = tmp_path / "blue.png"
    Image.new("RGB", (8, 6), (0, 0, 255)).save(blue)
    content = (TextPart("before "), ImagePart(Image.new("RGBA", (5, 4), (255, 0, 0, 255))), TextPart("after"), ImagePart(blue))
    sampled = GenerationSettings(max_new_tokens=7, do_sample=True, temperature=0.7, top_p=0.9, seed=3, stop=("\n", "END"))
    requests = [Request("mixed", (Message("system", (TextPart("be brief"),)), Message("user", content)), sampled),
                Request("plain", (Message("user", (TextPart("just text"),)),), GenerationSettings(max_new_tokens=5))]
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
        "model": "tiny", "max_tokens": 7, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n", "END"]}
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
    time.sleep(0.6)
    assert server.record.received <= 4  # 2 at first, then at most the 2 slots freed meanwhile
    assert run(backend, chat(["again"]))["r0"].text == "Yes."  # the backend still works


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
    probe = {"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "is this safe?"}]}]}
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
        proc = subprocess.Popen([command, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
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


def test_transformers_serve_answers_image_and_text_requests(transformers_serve: tuple[str, str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, model = transformers_serve
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = backend_spec("openai").factory({"base_url": base_url, "model": model, "num_concurrent": "2", "timeout": "60"},
                                             BackendOptions())
    try:
        images = [Image.new("RGB", (40, 30), colour) for colour in ("white", "red", "navy")]
        requests = [Request(f"q{i}", (Message("user", (ImagePart(image), TextPart(f"Is image {i} safe?"))),),
                            GenerationSettings(max_new_tokens=6, seed=0)) for i, image in enumerate(images)]
        responses = run(backend, requests)  # type: ignore[arg-type]
    finally:
        backend.close()  # type: ignore[attr-defined]
    for response in responses.values():
        assert response.error is None and isinstance(response.text, str), response
        assert response.usage is not None and response.usage["prompt_tokens"] > 0


# --- the CLI end to end ---------------------------------------------------------------------


def test_cli_run_against_the_fault_server(serve: StartServer, tmp_path: Path, data_cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    server = serve(latency=0.01)
    out = tmp_path / "out"
    vlmbench("run", "--model", "openai", "--model_args", f"base_url={server.base_url},model=tiny",
             "--tasks", "alignment-text", "--limit", "4", "--output_path", str(out),
             env={"VLMBENCH_CACHE_DIR": str(data_cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    task = load_results(out)["tasks"]["alignment-text"]
    assert task["metrics"]["n_samples"] == 20 and task["metrics"]["n_errors"] == 0
    assert task["usage"] == {"prompt_tokens": sum(len(e.key.split()) + 85 for e in server.events()), "completion_tokens": 20}
    assert server.record.received == 20 and server.record.authorizations == {"Bearer EMPTY"}
    assert all(len(server.bodies(e.key)) == 1 for e in server.events())
