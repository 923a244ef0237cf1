"""The ``openai`` backend: the OpenAI chat API and every OpenAI-compatible server.

``--model openai --model_args model=gpt-4o-mini`` (key from ``OPENAI_API_KEY``), or
``--model_args base_url=http://host:8000/v1,model=NAME`` for vLLM, SGLang, TGI, Ollama, LM Studio,
``transformers serve``: there the key is ``api_key`` or ``OPENAI_API_KEY`` when set, else ``EMPTY``.

Requests run concurrently on an asyncio loop in a background thread; ``generate`` yields each
response the moment it arrives. Concurrency adapts to rate limits (a 429 halves it, a run of
successes adds one back) and the client retries by itself, so the ``openai`` client's own
retries are off.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import email.utils
import io
import json
import logging
import os
import queue
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlmbench.backend import BackendOptions, BackendSpec, ImagePart, Message, Request, Response, TextPart
from vlmbench.errors import UserError
from vlmbench.hookspecs import hookimpl

log = logging.getLogger(__name__)

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "EMPTY"  # what OpenAI-compatible servers without auth expect in the Authorization header
DEFAULT_CONCURRENCY = 16
DEFAULT_RETRIES = 6
DEFAULT_TIMEOUT_S = 120.0
VALID_ARGS = ("model", "base_url", "api_key", "num_concurrent", "max_retries", "timeout")
RETRYABLE_4XX = (408, 409, 429)
MAX_RETRY_AFTER_S = 120.0  # a longer Retry-After (e.g. a daily quota) is not worth waiting for
_DONE = object()


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Validated ``--model_args``. ``repr`` never shows the key."""

    model: str
    base_url: str
    api_key: str = field(repr=False)
    num_concurrent: int = DEFAULT_CONCURRENCY
    max_retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT_S


def parse_settings(model_args: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Settings:
    """Check ``model_args`` and resolve the endpoint and key; a mistake raises a one-line UserError."""
    from vlmbench.pluginmanager import did_you_mean

    environ = os.environ if environ is None else environ
    for name in model_args:
        if name not in VALID_ARGS:
            raise UserError(f"--model openai: unknown model_args '{name}'{did_you_mean(name, VALID_ARGS)}; "
                            f"valid: {', '.join(VALID_ARGS)}")
    model = model_args.get("model", "").strip()
    if not model:
        raise UserError("--model openai needs model=NAME in --model_args (e.g. model=gpt-4o-mini)")
    custom_url = (model_args.get("base_url") or environ.get("OPENAI_BASE_URL") or "").strip()
    if custom_url and not custom_url.startswith(("http://", "https://")):
        raise UserError(f"--model openai: base_url '{custom_url}' must start with http:// or https://")
    base_url = (custom_url or OFFICIAL_BASE_URL).rstrip("/")
    api_key = model_args.get("api_key") or environ.get("OPENAI_API_KEY") or ""
    if not api_key:
        if not custom_url:
            raise UserError("--model openai: no API key; set OPENAI_API_KEY (or pass base_url=... for a local server)")
        api_key = NO_KEY
    if "api_key" in model_args:
        log.warning("api_key in --model_args lands in shell history; prefer the OPENAI_API_KEY environment variable")
    return Settings(model=model, base_url=base_url, api_key=api_key,
                    num_concurrent=_int_arg(model_args, "num_concurrent", DEFAULT_CONCURRENCY, minimum=1),
                    max_retries=_int_arg(model_args, "max_retries", DEFAULT_RETRIES, minimum=0),
                    timeout=_timeout_arg(model_args))


def _int_arg(model_args: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = model_args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UserError(f"--model openai: {name} must be an integer >= {minimum}, got '{text}'")
    return value


def _timeout_arg(model_args: Mapping[str, str]) -> float:
    text = model_args.get("timeout")
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise UserError(f"--model openai: timeout must be a number of seconds > 0, got '{text}'")
    return value


# --- request building -----------------------------------------------------------------------


def encode_image(part: ImagePart) -> str:
    """The image as a base64 PNG data URL (lossless; low compression because it is CPU-bound)."""
    buffer = io.BytesIO()
    part.load().save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class _ImageUrls:
    """Encodes each distinct image once, off the event loop, remembering the last few.

    Consecutive requests often share one image object (the blank image, or several prompts about
    one picture); an entry holds the image itself so its ``id`` cannot be reused meanwhile.
    """

    KEEP = 16

    def __init__(self) -> None:
        self._futures: OrderedDict[Any, tuple[Any, asyncio.Future[str]]] = OrderedDict()

    def get(self, part: ImagePart) -> asyncio.Future[str]:
        image = part.image
        key = image if isinstance(image, (str, os.PathLike)) else id(image)
        if key not in self._futures:
            future = asyncio.get_running_loop().run_in_executor(None, encode_image, part)
            self._futures[key] = (image, future)
            if len(self._futures) > self.KEEP:
                self._futures.popitem(last=False)
        else:
            self._futures.move_to_end(key)
        return self._futures[key][1]


async def build_messages(messages: Sequence[Message], images: _ImageUrls) -> list[dict[str, Any]]:
    """Chat messages in the OpenAI format: a plain string for text-only turns, else an ordered part list."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if not message.images:
            out.append({"role": message.role, "content": message.text})
            continue
        content: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            else:
                content.append({"type": "image_url", "image_url": {"url": await images.get(part)}})
        out.append({"role": message.role, "content": content})
    return out


def generation_params(request: Request) -> dict[str, Any]:
    """Decoding settings as chat-completion parameters (greedy = temperature 0)."""
    settings = request.generation
    params: dict[str, Any] = {"max_tokens": settings.max_new_tokens,
                              "temperature": settings.temperature if settings.do_sample else 0.0}
    if settings.do_sample:
        params["top_p"] = settings.top_p
    if settings.seed is not None:
        params["seed"] = settings.seed
    if settings.stop:
        params["stop"] = list(settings.stop)
    return params


# --- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A parsed chat completion."""

    text: str
    usage: dict[str, int] | None


@dataclass(frozen=True)
class Failure:
    """Why one attempt failed, and what to do about it."""

    reason: str  # short, e.g. "HTTP 500", "timeout", "malformed response"
    retryable: bool
    rate_limited: bool = False
    retry_after: float | None = None  # seconds the server asked us to wait


def parse_completion(body: str) -> Answer:
    """The answer text and token usage of a chat-completion body; ValueError when malformed."""
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        raise ValueError("no choices")
    message = data["choices"][0].get("message") if isinstance(data["choices"][0], dict) else None
    if not isinstance(message, dict):
        raise ValueError("no message")
    text = message.get("content")
    if text is None:  # a refusal or an answer cut off before any content (e.g. reasoning models)
        text = message.get("refusal") or ""
    if not isinstance(text, str):
        raise ValueError("content is not text")
    return Answer(text=text, usage=_usage(data.get("usage")))


def _usage(usage: Any) -> dict[str, int] | None:
    if not isinstance(usage, dict):
        return None
    counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")}
    if not all(isinstance(v, int) for v in counts.values()):
        return None
    return counts  # type: ignore[return-value]


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``Retry-After-Ms`` / ``Retry-After`` (seconds or an HTTP-date); None when absent or unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        return seconds if seconds == seconds and seconds >= 0 else None  # rejects NaN and negatives
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def status_failure(status: int, headers: Mapping[str, str], body: Any, message: str) -> Failure:
    """Classify an HTTP error: 429 is a rate limit, 408/409/5xx are retried, any other 4xx is final."""
    code = _error_field(body, "code") or _error_field(body, "type")
    if status == 429 and code == "insufficient_quota":  # out of credit: waiting will not help
        return Failure(f"HTTP 429 insufficient_quota: {_short(message)}", retryable=False)
    if status == 429:
        return Failure("HTTP 429", retryable=True, rate_limited=True, retry_after=retry_after_seconds(headers))
    if status in RETRYABLE_4XX or status >= 500:
        return Failure(f"HTTP {status}", retryable=True, retry_after=retry_after_seconds(headers))
    return Failure(f"HTTP {status}: {_short(message)}", retryable=False)


def _error_field(body: Any, name: str) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    value = (error if isinstance(error, dict) else body if isinstance(body, dict) else {}).get(name)
    return value if isinstance(value, str) else None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- adaptive concurrency -------------------------------------------------------------------


class AdaptiveLimiter:
    """Caps requests in flight at ``limit``, which adapts to rate limits (AIMD).

    A 429 halves the limit (at least 1) and pauses every new request until its Retry-After
    has passed; the many 429s that answer requests sent under the old limit count as one.
    ``limit`` consecutive successes add one back, up to ``maximum``. Waiters are served in
    FIFO order and a freed slot is handed straight to the next one. Event-loop use only.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.lowest = maximum
        self.in_flight = 0
        self.peak = 0
        self.epoch = 0  # bumped at each decrease; a 429 from an older epoch does not decrease again
        self.resume_at = 0.0  # loop time before which nothing new starts (Retry-After)
        self._streak = 0
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _can_start(self) -> bool:
        return self.in_flight < self.limit and self._loop().time() >= self.resume_at

    def _take(self) -> int:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return self.epoch

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch the request is sent under."""
        if not self._waiters and self._can_start():
            return self._take()
        waiter: asyncio.Future[int] = self._loop().create_future()
        self._waiters.append(waiter)
        self._wake()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # a slot was handed over just before the cancel
                self.release(waiter.result())
            else:
                self._waiters.remove(waiter)
            raise

    def release(self, epoch: int, *, ok: bool = False, rate_limited: bool = False, wait: float = 0.0) -> None:
        """Free a slot and account for how the request went."""
        self.in_flight -= 1
        if rate_limited:
            self._on_rate_limit(epoch, wait)
        elif ok:
            self._streak += 1
            if self._streak >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._streak = 0
        self._wake()

    def _on_rate_limit(self, epoch: int, wait: float) -> None:
        self.resume_at = max(self.resume_at, self._loop().time() + wait)
        self._streak = 0
        if epoch == self.epoch:
            before, self.limit = self.limit, max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self.epoch += 1
            log.info("rate limited: concurrency %d -> %d, pausing %.1f s", before, self.limit, wait)

    def _wake(self) -> None:
        loop = self._loop()
        while self._waiters and self.in_flight < self.limit:
            if loop.time() < self.resume_at:
                if self._timer is None:
                    self._timer = loop.call_at(self.resume_at, self._on_timer)
                return
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._take())

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()


# --- the backend ----------------------------------------------------------------------------


class OpenAIBackend:
    """Chat completions against an OpenAI-compatible endpoint, many requests at a time.

    ``generate`` is a plain generator; the requests run on an event loop in a daemon thread and
    each finished :class:`Response` is handed over through a queue. A request that fails for good
    becomes a Response with ``error`` (e.g. ``"HTTP 500 after 6 retries"``), never an answer.
    """

    backoff_base = 0.5  # seconds before the first retry; doubles each retry, with jitter
    backoff_cap = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._limiter: AdaptiveLimiter | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        from vlmbench.results import redact_url

        return f"OpenAIBackend(base_url={redact_url(self.settings.base_url)!r}, model={self.settings.model!r})"

    def identity(self) -> dict[str, str]:
        """Which endpoint and model answered (never the key)."""
        from vlmbench.results import redact_url

        return {"backend": "openai", "base_url": redact_url(self.settings.base_url), "model": self.settings.model}

    @property
    def limiter(self) -> AdaptiveLimiter:
        """The adaptive concurrency limit (kept across ``generate`` calls)."""
        if self._limiter is None:
            self._limiter = AdaptiveLimiter(self.settings.num_concurrent)
        return self._limiter

    # -- sync side --

    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        """Send requests concurrently, drawing each from the stream when a slot is near; yield each
        response as soon as it is complete."""
        finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        future = asyncio.run_coroutine_threadsafe(self._run_all(requests, finished.put), self._ensure_loop())
        try:
            while (item := finished.get()) is not _DONE:
                yield item
            future.result()  # surfaces a bug in this module instead of silently dropping requests
        finally:
            if not future.done():  # the caller stopped early (Ctrl-C, an exception): cancel what is in flight
                future.cancel()

    def close(self) -> None:
        """Close the HTTP client and stop the background loop (generate starts them again)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        atexit.unregister(self.close)
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), loop).result(timeout=10)
            self._client = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
        self._limiter = None

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="vlmbench-openai", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.close)  # close connections cleanly at exit (no ResourceWarnings)
            return self._loop

    # -- async side --

    @property
    def _openai(self) -> Any:
        # Imported on first use: a run answered entirely from the response store never pays for it.
        import openai

        return openai

    def _client_for_loop(self) -> Any:
        if self._client is None:
            # The client's own retries are off: it would retry without shrinking concurrency.
            self._client = self._openai.AsyncOpenAI(api_key=self.settings.api_key, base_url=self.settings.base_url,
                                                    max_retries=0, timeout=self.settings.timeout)
        return self._client

    async def _run_all(self, requests: Iterable[Request], emit: Any) -> None:
        images = _ImageUrls()
        # Requests are drawn (and their images decoded) only this far ahead of the in-flight ones,
        # so memory stays bounded and no chunk boundary leaves slots idle.
        ahead = asyncio.Semaphore(2 * self.settings.num_concurrent)
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            ahead.release()

        try:
            for request in requests:
                await ahead.acquire()
                task = asyncio.create_task(self._run_one(request, images, emit))
                running.add(task)
                task.add_done_callback(finished)
            if running:
                await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            emit(_DONE)

    async def _run_one(self, request: Request, images: _ImageUrls, emit: Any) -> None:
        try:
            payload = {"model": self.settings.model, "messages": await build_messages(request.messages, images),
                       **generation_params(request)}
        except Exception as exc:  # an unreadable image file fails this request only
            emit(self._failed(request.id, f"could not build the request: {type(exc).__name__}: {exc}"))
            return
        try:
            emit(await self._send_with_retries(request.id, payload))
        except Exception as exc:  # never lose a request to a surprise; the run goes on
            emit(self._failed(request.id, f"unexpected error: {type(exc).__name__}: {_short(str(exc))}"))

    async def _send_with_retries(self, request_id: str, payload: dict[str, Any]) -> Response:
        retries = self.settings.max_retries
        failure: Failure | None = None
        for attempt in range(retries + 1):
            epoch = await self.limiter.acquire()
            started = time.perf_counter()
            try:
                outcome = await self._attempt(payload)
            except BaseException:
                self.limiter.release(epoch)
                raise
            latency = time.perf_counter() - started
            if isinstance(outcome, Answer):
                self.limiter.release(epoch, ok=True)
                return Response(request_id, text=outcome.text, usage=outcome.usage, latency_s=round(latency, 4))
            failure = outcome
            if failure.retry_after is not None and failure.retry_after > MAX_RETRY_AFTER_S:
                # e.g. a daily quota: fail now rather than stall the whole run
                failure = Failure(f"{failure.reason} (Retry-After {failure.retry_after:.0f} s)", retryable=False,
                                  rate_limited=failure.rate_limited)
            wait = self._wait_before_retry(failure, attempt) if failure.retryable else 0.0
            self.limiter.release(epoch, rate_limited=failure.rate_limited, wait=wait)
            if not failure.retryable:
                return self._failed(request_id, failure.reason)
            if attempt < retries:
                log.debug("request %s: %s; retry %d of %d in %.2f s", request_id, failure.reason, attempt + 1, retries, wait)
                await asyncio.sleep(wait)
        assert failure is not None
        return self._failed(request_id, f"{failure.reason} after {retries} retries")

    def _failed(self, request_id: str, reason: str) -> Response:
        """The error response; the first failure of each kind is a warning, repeats only debug lines."""
        reason = self._scrub(reason)
        kind = reason.split(":")[0]
        level = logging.DEBUG if kind in self._warned else logging.WARNING
        self._warned.add(kind)
        log.log(level, "request %s failed: %s", request_id, reason)
        return Response(request_id, error=reason)

    def _wait_before_retry(self, failure: Failure, attempt: int) -> float:
        """The server's Retry-After when it gave one, else exponential backoff with jitter."""
        if failure.retry_after is not None and failure.retry_after > 0:
            return failure.retry_after
        delay = min(self.backoff_cap, self.backoff_base * 2 ** attempt)
        return delay * random.uniform(0.5, 1.0)

    async def _attempt(self, payload: dict[str, Any]) -> Answer | Failure:
        """One HTTP round trip, classified. Never raises for an HTTP, network or parsing problem."""
        openai = self._openai
        client = self._client_for_loop()
        try:
            # The documented raw-request path: the typed ``chat.completions.create`` spends ~1 ms of
            # CPU per request transforming params and building models, which at high concurrency
            # delays every other request on the loop; we parse the JSON ourselves either way.
            body = await client.post("/chat/completions", body=payload, cast_to=str)
        except openai.APIStatusError as exc:
            message = _error_field(exc.body, "message") or exc.message
            return status_failure(exc.status_code, exc.response.headers, exc.body, self._scrub(message))
        except openai.APITimeoutError:
            return Failure("timeout", retryable=True)
        except openai.APIConnectionError:
            return Failure("connection error", retryable=True)
        except openai.OpenAIError as exc:
            return Failure(self._scrub(f"client error: {type(exc).__name__}: {_short(str(exc))}"), retryable=False)
        try:
            return parse_completion(body)
        except (ValueError, AttributeError, TypeError):
            return Failure("malformed response", retryable=True)

    def _scrub(self, text: str) -> str:
        """``text`` with the API key masked (servers echo it in 401 messages), including a key cut
        short by an earlier truncation of the message."""
        key = self.settings.api_key
        if not key or key == NO_KEY:
            return text
        text = text.replace(key, "***")
        for length in range(len(key) - 1, 5, -1):
            if key[:length] in text:
                text = text.replace(key[:length], "***")
        return text


def _factory(model_args: dict[str, str], options: BackendOptions) -> OpenAIBackend:
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        raise UserError("--model openai needs the openai package: pip install openai")
    return OpenAIBackend(parse_settings(model_args))


@hookimpl
def vlmbench_backends() -> list[BackendSpec]:
    """The OpenAI / OpenAI-compatible API backend."""
    return [BackendSpec("openai", "OpenAI API or an OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, ...); "
                        "model=NAME[,base_url=URL]", _factory)]
