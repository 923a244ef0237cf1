"""The ``openai`` backend: the OpenAI chat API and every OpenAI-compatible server.

``--model openai --model_args model=gpt-4o-mini`` (key from ``OPENAI_API_KEY``), or
``--model_args base_url=http://host:8000/v1,model=NAME`` for vLLM, SGLang, TGI, Ollama, LM Studio,
``transformers serve``: there the key is ``api_key`` or ``OPENAI_API_KEY`` when set, else ``EMPTY``.

Requests run concurrently on an asyncio loop in a background thread; ``generate`` yields each
response the moment it arrives. Concurrency adapts to rate limits (a 429 lowers it to what the
server takes, and only the refused request waits its Retry-After) and the client retries by
itself, so the ``openai`` client's own retries are off. Images that come as stored bytes are sent
as they are (a data URL of the PNG, JPEG or WebP file), never decoded; ``max_image_side=N``
downscales larger ones (and re-encodes them as PNG). The retry, limiter, fail-fast and redaction machinery is the shared
:mod:`vlmbench.http`.

No fault becomes an answer: a 200 reply without a usable answer (no choices, null, empty or
non-text content, or an ``error`` object beside its choices) is retried and then an error; ``timeout`` is a total deadline per attempt;
a reply longer than ``max_new_tokens`` could produce is an error (see :mod:`vlmbench.http.limits`).
A reply the server cut for its own reasons is an error too, never stored, so the next run asks
again: ``finish_reason`` ``length`` below ``max_new_tokens`` by its ``usage`` (its context limit,
e.g. vLLM's ``max_model_len``) or ``content_filter`` (see :func:`parse_completion`).
A dead or wrong endpoint (connection refused, DNS failure, timeouts, key rejected, no such
route or model) stops the run with one line naming the URL, unless a request has succeeded.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import importlib
import inspect
import io
import json
import logging
import os
import re
from collections import Counter, OrderedDict
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from vlmbench import BadImage, png_pixels_complete
from vlmbench.backend import BackendBase, BackendOptions, ImagePart, Message, Request, Response, TextPart, inert_line, token_count
from vlmbench.errors import UserError
from vlmbench.http import (
    AdaptiveLimiter,
    Emit,
    EndpointDown,
    EndpointGuard,
    Failure,
    LoopThread,
    Redactor,
    RetryPolicy,
    body_byte_limit,
    call_with_retries,
    check_api_key,
    check_base_url,
    connection_failure,
    error_field,
    read_limited,
    redact_url,
    reply_char_limit,
    shorten,
    status_failure,
    timeout_failure,
    within,
)

if TYPE_CHECKING:  # asyncio is imported on first use: listing backends and --help never load it
    import asyncio

log = logging.getLogger(__name__)

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "EMPTY"  # what OpenAI-compatible servers without auth expect in the Authorization header
DEFAULT_CONCURRENCY = 16
DEFAULT_RETRIES = 6
DEFAULT_TIMEOUT_S = 120.0
FAIL_FAST_AFTER = 3  # consecutive endpoint-level failures, with no success yet, that stop the run
VALID_ARGS = ("model", "base_url", "api_key", "num_concurrent", "max_retries", "timeout", "max_image_side")
SENDABLE_FORMATS = ("PNG", "JPEG", "WEBP")  # sent as they are stored; other formats are re-encoded as PNG
KEY_HINT = "pass the key as api_key or OPENAI_API_KEY"
LABEL = "--model openai"


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
    max_image_side: int | None = None  # images with a longer side are downscaled to it (and re-encoded)


def parse_settings(model_args: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Settings:
    """Check ``model_args`` and resolve the endpoint and key; a mistake raises a one-line UserError.

    A ``base_url`` carrying credentials (``user:password@``, ``?api-key=...``) is refused: the
    key belongs in ``api_key`` or ``OPENAI_API_KEY``, which never reach logs or results.
    """
    environ = os.environ if environ is None else environ
    for name in model_args:
        if name not in VALID_ARGS:
            raise UserError(f"{LABEL}: unknown model_args '{name}'{_did_you_mean(name, VALID_ARGS)}; valid: {', '.join(VALID_ARGS)}")
    model = model_args.get("model", "").strip()
    if not model:
        raise UserError(f"{LABEL} needs model=NAME in --model_args (e.g. model=gpt-4o-mini)")
    from_args = (model_args.get("base_url") or "").strip()
    if "base_url" in model_args and not from_args:  # e.g. base_url=$URL with URL unset: never the OpenAI API instead
        raise UserError(f"{LABEL}: base_url is empty; pass base_url=http://HOST:PORT/v1, or leave it out to use the OpenAI API")
    custom_url = from_args or (environ.get("OPENAI_BASE_URL") or "").strip()
    if custom_url:
        label = f"{LABEL}: base_url" if from_args else f"{LABEL}: OPENAI_BASE_URL"
        custom_url = check_base_url(custom_url, label=label, key_hint=KEY_HINT)
    base_url = custom_url or OFFICIAL_BASE_URL
    api_key = model_args.get("api_key") or environ.get("OPENAI_API_KEY") or ""
    if api_key:
        check_api_key(api_key, f"{LABEL}: api_key" if model_args.get("api_key") else f"{LABEL}: OPENAI_API_KEY")
    if not api_key:
        if not custom_url:
            raise UserError(f"{LABEL}: no API key; set OPENAI_API_KEY (or pass base_url=... for a local server)")
        api_key = NO_KEY
    if "api_key" in model_args:
        log.warning("api_key in --model_args lands in shell history; prefer the OPENAI_API_KEY environment variable")
    return Settings(
        model=model,
        base_url=base_url,
        api_key=api_key,
        num_concurrent=_int_arg(model_args, "num_concurrent", DEFAULT_CONCURRENCY, minimum=1),
        max_retries=_int_arg(model_args, "max_retries", DEFAULT_RETRIES, minimum=0),
        timeout=_timeout_arg(model_args),
        max_image_side=_int_arg(model_args, "max_image_side", 0, minimum=1) if "max_image_side" in model_args else None,
    )


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _int_arg(model_args: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = model_args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UserError(f"{LABEL}: {name} must be an integer >= {minimum}, got '{text}'")
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
        raise UserError(f"{LABEL}: timeout must be a number of seconds > 0, got '{text}'")
    return value


# --- request building -----------------------------------------------------------------------


def sends_as_stored(part: ImagePart, max_side: int | None = None) -> bool:
    """True when ``part``'s stored bytes go out as they are: a PNG, JPEG or WebP file whose bytes
    decode to the pixels the model should see (``faithful``), within ``max_side``."""
    if part.data is None or not part.faithful or part.format not in SENDABLE_FORMATS:
        return False
    return max_side is None or (part.size is not None and max(part.size) <= max_side)


def encode_image(part: ImagePart, max_side: int | None = None) -> str:
    """The image as a base64 data URL.

    An image that came as bytes (what the runner sends) goes out as its stored PNG, JPEG or WebP
    file, byte for byte: nothing is decoded or re-encoded. Otherwise (a PIL image, a path, another
    format, an EXIF orientation to apply, or a side longer than ``max_side``, which is downscaled to
    it) the pixels are encoded as a lossless PNG (low compression because it is CPU-bound).
    """
    if sends_as_stored(part, max_side):
        assert part.data is not None
        if part.format == "PNG" and not png_pixels_complete(part.data):  # never sent: decoding refuses it too
            part.load()  # raises BadImage naming where the image comes from
            raise BadImage("the image file is truncated (its PNG pixel data ends early)")
        return f"data:{part.mime_type};base64," + base64.b64encode(part.data).decode("ascii")
    image = part.load()
    if max_side is not None and max(image.size) > max_side:
        from PIL import Image

        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class _ImageUrls:
    """Encodes each distinct image once, remembering the last few; stored bytes are wrapped on the
    event loop (no decoding), pixels are encoded off it.

    Consecutive requests often share one image (the blank image, or several prompts about one
    picture); an entry holds the image itself so its ``id`` cannot be reused meanwhile.
    """

    KEEP = 16

    def __init__(self, max_side: int | None = None) -> None:
        self.max_side = max_side
        self._futures: OrderedDict[Any, tuple[Any, asyncio.Future[str]]] = OrderedDict()

    def get(self, part: ImagePart) -> asyncio.Future[str]:
        image = part.image if part.data is None else part
        key = image if isinstance(image, (str, os.PathLike)) else (part.sha256 or id(part)) if part.data is not None else id(image)
        if key not in self._futures:
            import asyncio

            loop = asyncio.get_running_loop()
            if sends_as_stored(part, self.max_side) and part.format != "PNG":  # a PNG's pixel data is checked off the loop
                future: asyncio.Future[str] = loop.create_future()
                future.set_result(encode_image(part, self.max_side))
            else:
                future = loop.run_in_executor(None, encode_image, part, self.max_side)
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


_IMAGE_SLOT = f"vlmbench-image-{os.getpid()}-{id(object())}-"  # a placeholder no request text contains


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as the JSON the client would send (UTF-8, compact), with each image's data URL
    spliced in rather than scanned by the JSON encoder: base64 needs no escaping, and scanning a
    few hundred kilobytes per image costs more CPU than the rest of the request."""
    urls: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("type") == "image_url" and isinstance(value.get("image_url"), dict):
                url = value["image_url"].get("url")
                if isinstance(url, str) and url.startswith("data:") and len(url) > 1024:
                    urls.append(url)
                    return {**value, "image_url": {**value["image_url"], "url": f"{_IMAGE_SLOT}{len(urls) - 1}"}}
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    text = json.dumps(swap(payload), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if not urls:
        return text.encode()
    pieces: list[bytes] = []
    for index, url in enumerate(urls):
        head, text = text.split(f'"{_IMAGE_SLOT}{index}"', 1)
        pieces += [head.encode(), b'"', url.encode("ascii"), b'"']
    pieces.append(text.encode())
    return b"".join(pieces)


def generation_params(request: Request) -> dict[str, Any]:
    """Decoding settings as chat-completion parameters (greedy = temperature 0)."""
    settings = request.generation
    params: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature if settings.do_sample else 0.0}
    if settings.do_sample:
        params["top_p"] = settings.top_p
    if settings.seed is not None:
        params["seed"] = settings.seed
    if settings.stop:
        params["stop"] = list(settings.stop)
    if request.response_schema is not None:  # structured output (OpenAI, vLLM, SGLang honour it; others ignore it)
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "strict": True, "schema": dict(request.response_schema)},
        }
    return params


# --- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A parsed chat completion. ``served_model``: the reply's ``model``, the model the server says answered."""

    text: str
    usage: dict[str, int] | None
    served_model: str | None = None


def parse_completion(body: str | bytes, max_chars: int | None = None, max_tokens: int | None = None) -> Answer | Failure:
    """The answer text, token usage and served model (the body's ``model``) of a chat-completion body, or why it is no answer.

    Unreadable JSON, no ``choices``, no ``message`` or non-text content are a retryable
    ``malformed response``; an ``error`` beside the choices a retryable ``error in a 200 reply``; null, empty or blank content a retryable ``empty answer`` (a null
    content with a non-empty ``refusal`` is the model's refusal, an answer). Text longer than
    ``max_chars`` is a final ``reply too long``: the server did not honour ``max_tokens``, and
    greedy decoding would only repeat it (see :mod:`vlmbench.http.limits`).

    A reply the server cut for its own reasons is a final error, never an answer (see :func:`_cut_by_server`):
    ``finish_reason`` ``length`` with fewer completion tokens than ``max_tokens`` (the request's
    ``max_new_tokens``) is ``answer cut by the server`` (its context limit: the prompt nearly filled
    it); ``content_filter`` is ``answer cut by a content filter``, whatever the text. ``length`` at
    ``max_tokens`` is an answer (the request asked for that many tokens), and so is ``length``
    without a usage block that counts completion tokens (nothing says it stopped early).
    """
    malformed = Failure("malformed response", retryable=True)
    try:
        data = json.loads(body)
    except ValueError:
        return malformed
    error = data.get("error") if isinstance(data, dict) else None
    if _reports_error(error):  # the server says it failed: whatever choices it holds are no answer
        return Failure(f"error in a 200 reply: {_error_text(error)}", retryable=True, kind="error in a 200 reply")
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return malformed
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return malformed
    text = message.get("content")
    if text is None:  # a refusal, or an answer cut off before any content (e.g. reasoning models)
        refusal = message.get("refusal")
        text = refusal if isinstance(refusal, str) else ""
    if not isinstance(text, str):
        return malformed
    cut = _cut_by_server(choices[0].get("finish_reason"), data.get("usage"), max_tokens)
    if cut is not None:
        return cut
    if not text.strip():
        return Failure("empty answer", retryable=True)
    if max_chars is not None and len(text) > max_chars:
        return Failure(
            f"reply too long: {len(text)} characters, more than max_tokens could produce (limit {max_chars})", retryable=False, kind="reply too long"
        )
    return Answer(text=text, usage=_usage(data.get("usage")), served_model=inert_line(data.get("model")))


def _reports_error(error: Any, depth: int = 0) -> bool:
    """Whether a reply's ``error`` field says something failed: null, false, 0, empty text and containers that hold
    nothing but such values say nothing."""
    if isinstance(error, str):
        return bool(error.strip())
    if isinstance(error, (Mapping, list)):
        values = list(error.values()) if isinstance(error, Mapping) else error
        if depth >= 4:  # nested past what is worth reading: anything in it counts
            return bool(values)
        return any(_reports_error(v, depth + 1) for v in values)
    return bool(error) if isinstance(error, (bool, int, float)) else error is not None


_ERROR_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _error_text(error: Any) -> str:
    """What a 200 reply's ``error`` says, as far as it is safe to show: its ``type`` or ``code`` when that is a
    short name (its ``message`` may echo the request or a credential, and is left out)."""
    for field_name in ("type", "code"):
        value = error.get(field_name) if isinstance(error, dict) else None
        if isinstance(value, str) and _ERROR_NAME.fullmatch(value):
            return value
    return "the server sent an error object beside its answer"


def _cut_by_server(finish_reason: Any, usage: Any, max_tokens: int | None) -> Failure | None:
    """Why a reply the server cut for its own reasons is no answer, or None when it is one.

    ``length`` below ``max_tokens``: the server ran out of context (the prompt nearly filled
    vLLM's ``max_model_len``), not out of the tokens the request allowed. Stored, the fragment
    would be scored as the model's answer and reused after the server got a larger context.

    ``content_filter``: an error too, not the provider's answer. What comes back is a fragment (or
    nothing) that the model did not finish, cut by a filter that sits outside the model and changes
    with the endpoint's settings; a safety benchmark scores the model, whose own refusals come as
    ordinary answers (``finish_reason`` ``stop``, or the ``refusal`` field) and are kept. As an
    error it is counted by class (``answer cut by a content filter``) in the run's error summary,
    never scored as the model's words, and asked again by the next run. Neither is retried within
    the run: the same request would be cut again.
    """
    if finish_reason == "content_filter":
        return Failure(
            "the server's content filter cut the answer (finish_reason content_filter), the model did not; "
            "relax the endpoint's content filter or use one without it",
            retryable=False,
            kind="answer cut by a content filter",
        )
    given = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if finish_reason == "length" and type(given) is int and max_tokens is not None and given < max_tokens:
        return Failure(
            f"the server cut the answer at {given} of {max_tokens} tokens (finish_reason length: its context limit?); "
            "raise the server's max_model_len or lower max_new_tokens",
            retryable=False,
            kind="answer cut by the server",
        )
    return None


def _usage(usage: Any) -> dict[str, int] | None:
    if not isinstance(usage, dict):
        return None
    counts = {k: token_count(usage.get(k)) for k in ("prompt_tokens", "completion_tokens")}
    if any(v is None for v in counts.values()):
        return None
    return counts  # type: ignore[return-value]


# --- the backend ----------------------------------------------------------------------------


@dataclass
class _Run:
    """One ``generate`` call: where responses go, the image cache, and errors held back while the
    endpoint has not yet answered (dropped if it turns out dead, sent at the first success)."""

    emit: Emit[Response]
    images: _ImageUrls
    policy: RetryPolicy
    held: list[tuple[str, Failure]] = field(default_factory=list)


class _Window:
    """The requests of one ``generate`` call drawn from the stream but not yet done with: at most ``size``.

    A request's place is freed when whoever iterates ``generate`` has taken its response and asked for
    the next one (so has stored it), or when its task ends without a response to hand over (an error
    held back, a cancellation). Answers the caller has not stored yet therefore never pile up: were
    its disk to fill, at most ``size`` requests would have been sent and their answers lost, and the
    answers waiting in memory stay bounded too. Places are taken and freed on the event loop;
    :meth:`taken` may be called from any thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._places: asyncio.Semaphore | None = None
        # Counts per request id, not sets: a caller may repeat an id, and each request holds its own place.
        self._holding: Counter[str] = Counter()  # places held
        self._to_take: Counter[str] = Counter()  # responses handed over by tasks that are still running

    async def enter(self, request_id: str) -> None:
        """Wait for a place for ``request_id`` (on the loop)."""
        import asyncio

        if self._places is None:
            self._loop, self._places = asyncio.get_running_loop(), asyncio.Semaphore(self.size)
        await self._places.acquire()
        self._holding[request_id] += 1

    def emitted(self, request_id: str) -> None:
        """``request_id``'s response is on its way to the caller (on the loop)."""
        if self._to_take[request_id] < self._holding[request_id]:  # not an error held back and handed over after its task ended
            self._to_take[request_id] += 1

    def ended(self, request_id: str) -> None:
        """``request_id``'s task is over (on the loop): its place is freed unless its response is still to be taken."""
        if self._to_take[request_id] > 0:
            self._to_take[request_id] -= 1
        else:
            self._free(request_id)
        if not self._to_take[request_id]:
            del self._to_take[request_id]

    def taken(self, request_id: str) -> None:
        """The caller is done with ``request_id``'s response (any thread)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile (backend.close()): nothing to free
                self._loop.call_soon_threadsafe(self._free, request_id)

    def _free(self, request_id: str) -> None:
        if self._holding[request_id] > 0:
            self._holding[request_id] -= 1
            assert self._places is not None
            self._places.release()
        if not self._holding[request_id]:
            del self._holding[request_id]


class OpenAIBackend(BackendBase):
    """Chat completions against an OpenAI-compatible endpoint, many requests at a time.

    ``generate`` is a plain generator; the requests run on an event loop in a daemon thread and
    each finished :class:`Response` is handed over through a queue. A request that fails for good
    becomes a Response with ``error`` (e.g. ``"HTTP 500 after 6 retries"``), never an answer.
    When the endpoint is dead or wrong, ``generate`` raises a one-line :class:`UserError` instead.
    :meth:`error_summary` counts the requests that ended as errors, by class.
    """

    backoff_base = 0.5  # seconds before the first retry; doubles each retry, with jitter
    backoff_cap = 30.0
    name = "openai"
    cacheable = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = redact_url(settings.base_url)  # the endpoint as it may be shown
        self._client: Any = None
        self._bridge = LoopThread("vlmbench-openai", cleanup=self._close_client)
        self._limiter: AdaptiveLimiter | None = None
        self._bytes_body: bool | None = None  # whether the client's post() takes content=bytes (None: not known yet)
        self._warned: set[str] = set()
        self._redact = Redactor([settings.api_key] if settings.api_key != NO_KEY else [])
        self._guard = EndpointGuard(
            self.url,
            LABEL,
            threshold=FAIL_FAST_AFTER,
            fixes={
                "HTTP 401": "pass a valid key as api_key or OPENAI_API_KEY",
                "HTTP 403": "pass a key allowed to use this model as api_key or OPENAI_API_KEY",
                "HTTP 404 model_not_found": f"check model={self.settings.model} against GET {self.url}/models",
            },
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.url!r}, model={self.settings.model!r})"

    def identity(self) -> dict[str, str]:
        """Which endpoint and model answered (never the key)."""
        identity = {"backend": "openai", "base_url": self.url, "model": self.settings.model}
        if self.settings.max_image_side is not None:  # downscaled images are other requests
            identity["max_image_side"] = str(self.settings.max_image_side)
        return identity

    @property
    def limiter(self) -> AdaptiveLimiter:
        """The adaptive concurrency limit (kept across ``generate`` calls)."""
        if self._limiter is None:
            self._limiter = AdaptiveLimiter(self.settings.num_concurrent)
        return self._limiter

    def error_summary(self) -> dict[str, int]:
        """Requests that ended as errors over this backend's life (one run), by class, most frequent first,
        e.g. ``{"HTTP 500": 3, "timeout": 1}``; empty when every request was answered."""
        return self._guard.error_summary()

    def attempt_summary(self) -> dict[str, int]:
        """Every failed attempt, including those a retry then fixed, by class (e.g. ``{"HTTP 429": 40}``)."""
        return self._guard.attempt_summary()

    # -- sync side --

    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        """Send requests concurrently, drawing each from the stream when a slot is near; yield each
        response as soon as it is complete. Raises :class:`UserError` when the endpoint is dead or wrong."""

        # Requests are drawn (and their images decoded) at most this far ahead of the answers taken,
        # so memory stays bounded and no chunk boundary leaves slots idle.
        window = _Window(2 * self.settings.num_concurrent)

        def produce(emit: Emit[Response]) -> Coroutine[Any, Any, None]:
            return self._run_all(requests, emit, window)

        self._guard.rearm()
        stream = self._bridge.stream(produce)
        try:
            for response in stream:
                yield response
                window.taken(response.request_id)  # the caller asked for the next one: it has dealt with this one
        finally:
            stream.close()  # a caller that stops early cancels what is in flight now, not when this is collected

    def close(self) -> None:
        """Close the HTTP client and stop the background loop (generate starts them again)."""
        self._bridge.close()
        self._limiter = None

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async side --

    @property
    def _openai(self) -> Any:
        # Imported on first use: a run answered entirely from the response store never pays for it.
        import openai

        return openai

    @property
    def _http(self) -> Any:
        """The HTTP library the ``openai`` client is built on (``httpx``, or ``httpx2`` in newer releases)."""
        base = next((c for c in self._openai.DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient"), None)
        return importlib.import_module(base.__module__.split(".")[0] if base is not None else "httpx")

    def _client_for_loop(self) -> Any:
        if self._client is None:
            # The client's own retries are off: it would retry without shrinking concurrency. Redirects are not
            # followed: a request (prompt and images) is never sent on to an address the user did not name; a 3xx
            # reply is an error that names where the server points (vlmbench.http.classify.status_failure).
            make_http = getattr(self._openai, "DefaultAsyncHttpxClient", None)
            extra = {"http_client": make_http(follow_redirects=False)} if make_http is not None else {}
            self._client = self._openai.AsyncOpenAI(
                api_key=self.settings.api_key, base_url=self.settings.base_url, max_retries=0, timeout=self.settings.timeout, **extra
            )
        return self._client

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _run_all(self, requests: Iterable[Request], emit: Emit[Response], window: _Window) -> None:
        import asyncio

        def handed_over(response: Response) -> None:
            window.emitted(response.request_id)
            emit(response)

        policy = RetryPolicy(self.settings.max_retries, self.backoff_base, self.backoff_cap)
        run = _Run(handed_over, _ImageUrls(self.settings.max_image_side), policy)
        running: dict[asyncio.Task[None], str] = {}
        main = asyncio.current_task()
        stop: list[BaseException] = []  # what ended a request task with an exception (a dead endpoint)

        def finished(task: asyncio.Task[None]) -> None:
            window.ended(running.pop(task))
            if not task.cancelled() and task.exception() is not None and not stop:
                stop.append(task.exception())  # type: ignore[arg-type]
                if main is not None:
                    main.cancel()

        try:
            for request in requests:
                await window.enter(request.id)
                self._guard.raise_if_stopped()
                task = asyncio.create_task(self._run_one(request, run))
                running[task] = request.id
                task.add_done_callback(finished)
            if running:
                await asyncio.gather(*running)
            self._release_held(run)
        except (asyncio.CancelledError, EndpointDown):
            if stop:
                raise stop[0] from None
            raise
        finally:
            for task in running:
                task.cancel()

    async def _run_one(self, request: Request, run: _Run) -> None:
        try:
            payload = {"model": self.settings.model, "messages": await build_messages(request.messages, run.images), **generation_params(request)}
        except Exception as exc:  # an unreadable image file fails this request only
            self._finish(
                run,
                request.id,
                Failure(f"could not build the request: {type(exc).__name__}: {exc}", retryable=False, kind="could not build the request"),
            )
            return
        max_new_tokens = request.generation.max_new_tokens
        if self._bytes_body is None:
            self._bytes_body = "content" in inspect.signature(self._client_for_loop().post).parameters
        body = encode_body(payload) if self._bytes_body else None
        try:
            done = await call_with_retries(
                lambda: self._attempt(payload, body, max_new_tokens),
                run.policy,
                self.limiter,
                observe=self._guard.observe,
                label=f"request {request.id}",
            )
        except EndpointDown:
            raise
        except Exception as exc:  # never lose a request to a surprise; the run goes on
            self._finish(
                run,
                request.id,
                Failure(f"unexpected error: {type(exc).__name__}: {shorten(self._redact(str(exc)))}", retryable=False, kind="unexpected error"),
            )
            return
        if isinstance(done.result, Failure):
            self._finish(run, request.id, done.result)
            return
        self._release_held(run)  # the endpoint works: errors held back are ordinary errors after all
        answer = done.result
        run.emit(Response(request.id, text=answer.text, usage=answer.usage, latency_s=round(done.latency_s, 4), served_model=answer.served_model))

    def _finish(self, run: _Run, request_id: str, failure: Failure) -> None:
        """Emit a request's error, or hold it back while it may be the symptom of a dead endpoint."""
        if self._guard.holds_back(failure):
            run.held.append((request_id, failure))
        else:
            run.emit(self._failed(request_id, failure))

    def _release_held(self, run: _Run) -> None:
        held, run.held = run.held, []
        for request_id, failure in held:
            run.emit(self._failed(request_id, failure))

    def _failed(self, request_id: str, failure: Failure) -> Response:
        """The error response, counted; the first failure of each class is a warning, repeats only debug lines."""
        reason = self._redact(failure.reason)
        self._guard.count_error(failure.kind)
        level = logging.DEBUG if failure.kind in self._warned else logging.WARNING
        self._warned.add(failure.kind)
        log.log(level, "request %s failed: %s", request_id, reason)
        return Response(request_id, error=reason)

    async def _attempt(self, payload: dict[str, Any], body: bytes | None, max_new_tokens: int) -> Answer | Failure:
        """One HTTP round trip within the total deadline ``timeout``, classified and redacted.
        Never raises for an HTTP, network or parsing problem."""
        self._guard.raise_if_stopped()  # another request found the endpoint dead meanwhile
        try:
            outcome = await within(self.settings.timeout, self._round_trip(payload, body, max_new_tokens))
        except TimeoutError:
            outcome = timeout_failure(self.settings.timeout)
        if isinstance(outcome, Failure):
            outcome = replace(
                outcome, reason=self._redact(outcome.reason), kind=outcome.kind, endpoint=self._redact(outcome.endpoint) if outcome.endpoint else None
            )
        return outcome

    async def _post(self, client: Any, payload: dict[str, Any], body: bytes | None) -> Any:
        """POST the request: its body as encoded bytes (:func:`encode_body`) when the client takes a
        ``content`` of bytes (recent ``openai`` releases; the JSON content type is the client's
        default header), else the payload for the client to encode."""
        http = self._http
        if body is not None and self._bytes_body:
            return await client.post("/chat/completions", content=body, cast_to=http.Response, stream=True)
        return await client.post("/chat/completions", body=payload, cast_to=http.Response, stream=True)

    async def _round_trip(self, payload: dict[str, Any], body: bytes | None, max_new_tokens: int) -> Answer | Failure:
        openai, http = self._openai, self._http
        client = self._client_for_loop()
        try:
            # The documented raw-request path: the typed ``chat.completions.create`` spends ~1 ms of
            # CPU per request transforming params and building models, which at high concurrency
            # delays every other request on the loop; we parse the JSON ourselves either way.
            # The body is streamed so that a runaway reply is cut off at its size bound.
            response = await self._post(client, payload, body)
        except openai.APIStatusError as exc:
            # redacted before status_failure shortens it: a cut could leave half a credential unrecognisable
            message = self._redact(error_field(exc.body, "message") or exc.message)
            return status_failure(exc.status_code, exc.response.headers, exc.body, message)
        except openai.APITimeoutError:
            return timeout_failure(self.settings.timeout)
        except openai.APIConnectionError as exc:
            return connection_failure(exc, self.url)
        except openai.OpenAIError as exc:
            return Failure(f"client error: {type(exc).__name__}: {shorten(self._redact(str(exc)))}", retryable=False, kind="client error")
        limit = body_byte_limit(max_new_tokens)
        try:
            body = await read_limited(response.aiter_bytes(), limit)
        except http.TimeoutException:
            return timeout_failure(self.settings.timeout)
        except http.TransportError as exc:
            return connection_failure(exc, self.url)
        finally:
            await response.aclose()
        if body is None:
            return Failure(
                f"reply too long: over {limit} bytes, more than max_tokens={max_new_tokens} could produce", retryable=False, kind="reply too long"
            )
        return parse_completion(body, reply_char_limit(max_new_tokens), max_tokens=max_new_tokens)


def check_model_args(model_args: Mapping[str, str]) -> None:
    """The one-line errors :func:`factory` would raise for ``model_args`` (endpoint, key, numbers), without a client."""
    parse_settings(model_args)


def factory(model_args: dict[str, str], options: BackendOptions) -> OpenAIBackend:
    """The ``openai`` backend for ``--model_args`` (UserError without the openai package)."""
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        raise UserError("--model openai needs the openai package: pip install openai")
    return OpenAIBackend(parse_settings(model_args))
