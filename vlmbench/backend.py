"""The backend contract: a batch of requests in, one response per request out.

A request is a chat (messages whose content interleaves text and images) plus generation
settings. Backends may answer in any order (an async API client finishes requests out of order);
each response names the request it answers. Backends yield responses as they finish so the
runner can persist every answer the moment it exists.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

from vlmbench.errors import UserError, printable

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class TextPart:
    """A piece of text inside a message."""

    text: str


MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


class ImagePart:
    """An image inside a message: a PIL image, a path to an image file, or the image's encoded bytes.

    The runner sends images **as bytes until someone needs pixels**: ``data`` holds the file's bytes
    as stored, with ``format`` (Pillow's name: ``PNG``, ``JPEG``, ``WEBP``, ...), ``size`` ((width,
    height) as decoded) and ``sha256`` (of ``data``, the hash the response store keys on), all read
    from the header. A backend that can send bytes (an API's data URL) sends ``data`` as it is when
    ``faithful`` is true, and never decodes; one that needs pixels calls :meth:`load`, which decodes
    once (thread-safe) and keeps the result. Nothing is decoded for a backend that does neither.

    ``faithful`` is False when :meth:`load` gives other pixels than decoding ``data`` as it is would
    (an EXIF orientation to apply, an animation, a dataset's colour mode): send :meth:`load`'s pixels then.

    ``ImagePart(image)`` with a PIL image or a path works as before; :attr:`image` is that PIL image
    or path, or for a part made from bytes the decoded image (decoded on first use).
    """

    __slots__ = ("_decoded", "_decoder", "_image", "_lock", "data", "faithful", "format", "sha256", "size")

    data: bytes | None
    format: str | None
    size: tuple[int, int] | None
    sha256: str | None
    faithful: bool
    _image: Image.Image | str | Path | None
    _decoder: Callable[[], Image.Image] | None
    _decoded: Image.Image | None
    _lock: threading.Lock

    def __init__(
        self,
        image: Image.Image | str | Path | None = None,
        *,
        data: bytes | None = None,
        format: str | None = None,
        size: tuple[int, int] | None = None,
        sha256: str | None = None,
        faithful: bool = True,
        decoder: Callable[[], Image.Image] | None = None,
    ) -> None:
        if image is None and data is None:
            raise TypeError("ImagePart needs an image, a path or data=bytes")
        setter = object.__setattr__
        setter(self, "_image", image)
        setter(self, "data", None if data is None else bytes(data))
        setter(self, "format", format.upper() if format else None)
        setter(self, "size", tuple(size) if size is not None else None)
        setter(self, "sha256", sha256)
        setter(self, "faithful", faithful)
        setter(self, "_decoder", decoder)
        setter(self, "_decoded", None)
        setter(self, "_lock", threading.Lock())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ImagePart is immutable: cannot set {name}")

    @property
    def image(self) -> Image.Image | str | Path:
        """The PIL image or path it was made from; for a part made from bytes, the decoded image."""
        return self._image if self._image is not None else self.load()

    @property
    def decoded(self) -> bool:
        """Whether pixels have been decoded for this part (always True for a PIL image)."""
        return self._decoded is not None or _is_pil(self._image)

    @property
    def mime_type(self) -> str | None:
        """``image/png``, ``image/jpeg``, ... for ``format``; None when unknown."""
        return MIME_TYPES.get(self.format or "")

    def load(self) -> Image.Image:
        """Return the image as an RGB PIL image: opening it from disk if it is a path, decoding
        ``data`` (once) if it was made from bytes."""
        with self._lock:
            decoded = self._decoded
            if decoded is None:
                image = self._decode()
                decoded = image if image.mode == "RGB" else image.convert("RGB")
                object.__setattr__(self, "_decoded", decoded)
            return decoded

    def _decode(self) -> Image.Image:
        source = self._image
        if _is_pil(source):
            return source
        if source is not None:
            from PIL import Image

            assert not isinstance(source, Image.Image)
            return Image.open(source)
        if self._decoder is not None:
            return self._decoder()
        from vlmbench.data.images import decode

        return decode({"bytes": self.data})

    def __copy__(self) -> ImagePart:
        return self  # immutable: a copy may share it

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (for another process) as what it was made from: the image, path or stored bytes with
        their decoder; pixels decoded from bytes stay behind (the other process decodes them again)."""
        return (_rebuild_image_part, (self._image, self.data, self.format, self.size, self.sha256, self.faithful, self._decoder))

    def __deepcopy__(self, memo: dict[int, Any]) -> ImagePart:
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImagePart):
            return NotImplemented
        if self.data is not None or other.data is not None:
            return self.data == other.data
        return bool(self._image == other._image)

    def __hash__(self) -> int:
        return hash(self.sha256 or self.data) if self.data is not None else hash(self._image if not _is_pil(self._image) else id(self._image))

    def __repr__(self) -> str:
        if self.data is None:
            return f"ImagePart({self._image!r})"
        size = f" {self.size[0]}x{self.size[1]}" if self.size else ""
        return f"ImagePart({self.format or 'image'}{size}, {len(self.data)} bytes, sha256={(self.sha256 or '?')[:12]})"


def _rebuild_image_part(
    image: Any, data: bytes | None, format: str | None, size: tuple[int, int] | None, sha256: str | None, faithful: bool, decoder: Any
) -> ImagePart:
    return ImagePart(image, data=data, format=format, size=size, sha256=sha256, faithful=faithful, decoder=decoder)


def _is_pil(value: object) -> TypeGuard[Image.Image]:
    """True for a PIL image (without importing PIL when no image was ever made)."""
    image_module = sys.modules.get("PIL.Image")
    return image_module is not None and isinstance(value, image_module.Image)


Part = TextPart | ImagePart


@dataclass(frozen=True)
class Message:
    """One chat turn. ``content`` keeps the order in which text and images appear."""

    role: str
    content: tuple[Part, ...]

    @property
    def text(self) -> str:
        """All text parts joined, for backends or logs that need plain text."""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        """The image parts, in order."""
        return [part for part in self.content if isinstance(part, ImagePart)]


@dataclass(frozen=True)
class GenerationSettings:
    """How to decode. Greedy unless ``do_sample`` is true."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], seed: int | None = None) -> GenerationSettings:
        """Build settings from a task's ``generation_kwargs`` (unknown keys are rejected by the task schema)."""
        values = dict(values)
        if "until" in values:  # lm-evaluation-harness spelling
            values["stop"] = values.pop("until")
        values["stop"] = tuple(values.get("stop", ()))
        if not values.get("do_sample", False):
            values["temperature"] = 0.0
        elif 0 < float(values.get("temperature", 1.0)) < MIN_SAMPLING_TEMPERATURE:  # logits / 1e-40 overflow: no distribution to sample
            raise UserError(
                f"generation: temperature {values['temperature']} is too small to sample with (at least {MIN_SAMPLING_TEMPERATURE}); "
                "for greedy decoding set do_sample=false"
            )
        return cls(**values, seed=seed)


@dataclass(frozen=True)
class Request:
    """One generation request.

    ``answer_choices`` is the answer space the task expects (e.g. ``["A", "B", "C", "D"]`` or
    ``["Yes", "No"]``) when it has one; baselines and constrained decoders may use it.
    ``response_schema`` is a JSON Schema the answer should follow (a model judge asks for
    ``{"verdict": ...}``); backends whose server supports structured output pass it on, the
    others ignore it, so callers still parse the answer strictly.
    """

    id: str
    messages: tuple[Message, ...]
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    answer_choices: tuple[str, ...] | None = None
    response_schema: Mapping[str, Any] | None = None

    @property
    def has_image(self) -> bool:
        """True when any message carries an image."""
        return any(m.images for m in self.messages)


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (a JSON ``"\\ud800"`` escape decodes to one) as U+FFFD, the
    replacement character: no UTF-8 file, store or page can hold one."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


@dataclass
class Response:
    """The answer to one request. Exactly one of ``text`` and ``error`` is set.

    A request that failed for good is an error, never an answer: it is not scored as one.
    """

    request_id: str
    text: str | None = None
    error: str | None = None
    usage: dict[str, int] | None = None
    latency_s: float | None = None
    prompt: str | None = None  # the exact text the model saw (after its chat template), when known
    # The model the server says answered (an API reply's ``model``, e.g. the dated version behind an
    # alias); None when the backend names its model exactly in its identity (local weights) or says nothing.
    served_model: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.error is None):
            raise ValueError("a Response needs exactly one of text and error")
        self.served_model = inert_line(self.served_model)  # a server's words: short and inert
        # A lone surrogate (an API's JSON may escape one: "\ud800") is no Unicode character: no file or
        # store can hold it. It becomes U+FFFD, the replacement character; the rest of the text is kept.
        for name in ("text", "error", "prompt"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    raise TypeError(f"Response.{name} must be text (str) or None, not {type(value).__name__}")
                setattr(self, name, without_lone_surrogates(value))


MIN_SAMPLING_TEMPERATURE = 1e-3
"""The smallest temperature sampling accepts (greedy decoding is ``do_sample=false``)."""

MAX_TOKEN_COUNT = 2**40
"""The largest token count a server or a store may report (far beyond any request's): a bigger one is no count."""


def token_count(value: object) -> int | None:
    """A token count from another party (a server's usage block, a stored one): an integer from 0 to
    :data:`MAX_TOKEN_COUNT`, else None (``true`` is no count, nor is 10**100)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


INERT_MAX_CHARS = 200


def inert_line(value: object, limit: int = INERT_MAX_CHARS) -> str | None:
    """Text from another party (a server, a shared file) as vlmbench records or prints it: text only, on
    one line (control and other unprintable characters become U+FFFD), at most ``limit`` characters
    (longer is cut, ending in "..."); None for a missing, non-text or blank value."""
    if not isinstance(value, str):
        return None
    text = printable(value.strip())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


@runtime_checkable
class Backend(Protocol):
    """A model. ``generate`` yields one :class:`Response` per request, in any order.

    ``requests`` is a lazy stream: each request's images are decoded when it is drawn, so pull
    requests as capacity frees up (an API client) or a bounded chunk at a time (a local model
    sorting by length); never hold the whole stream. Yield each response as soon as it exists.

    The rest of the contract has defaults in :class:`BackendBase`:

    - ``identity()``: what the model is (e.g. hub id, revision, dtype, base URL), recorded in the
      results and keying the response store, so two models never share stored answers. Never put
      secrets in it (they are redacted, but leave them out).
    - ``cacheable``: whether responses may be stored and reused (False for free baselines).
    - ``close()``: release resources (connections, GPU memory) at the end of a run.

    Optional, found by name (see :func:`backend_error_summary`): ``error_summary()`` returns the
    requests that ended as errors in this run, by error class (e.g. ``{"HTTP 500": 3, "timeout": 1}``),
    and ``attempt_summary()`` every failed attempt, retried ones included (e.g. ``{"HTTP 429": 40}``).
    ``vlmbench run`` prints both at the end of a run in which requests failed.
    """

    def generate(self, requests: Iterable[Request]) -> Iterable[Response]: ...

    def identity(self) -> dict[str, Any]: ...

    @property
    def cacheable(self) -> bool: ...

    def close(self) -> None: ...


class BackendBase:
    """Defaults for the backend contract: subclass it and implement :meth:`generate`.

    A backend built by a factory gets ``name`` and ``model_args`` set by the harness when it does
    not set them itself; the default identity is those two.
    """

    name: str = ""
    model_args: Mapping[str, str] = {}
    cacheable: bool = True

    def generate(self, requests: Iterable[Request]) -> Iterable[Response]:
        """Yield one response per request (required)."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """The backend name and its arguments (override to add revisions, hashes, dtype...)."""
        return {"backend": self.name, "args": dict(self.model_args)}

    def close(self) -> None:
        """Nothing to release by default."""


def build_backend(spec: BackendSpec, model_args: dict[str, str], options: BackendOptions) -> Any:
    """The backend ``spec``'s factory builds for these arguments. A factory that returns no backend (nothing
    with a ``generate`` method) is a one-line error naming it, not a crash at the first request."""
    backend = spec.factory(model_args, options)
    if not callable(getattr(backend, "generate", None)):
        raise UserError(
            f"backend '{spec.name}': its factory returned {type(backend).__name__}, not a backend (an object with a generate method); "
            "this is a bug in the plugin that registers it"
        )
    return backend


def backend_identity(backend: Any, name: str, model_args: Mapping[str, str]) -> dict[str, Any]:
    """A backend's identity, using the default for objects that only implement ``generate``. It is written
    to results and keys the response store, so one that JSON cannot hold is a one-line error naming the backend.

    A :class:`BackendBase` that did not set its ``name`` or ``model_args`` gets the run's."""
    if isinstance(backend, BackendBase):
        backend.name = backend.name or name
        backend.model_args = backend.model_args or dict(model_args)
    given = backend.identity() if callable(getattr(backend, "identity", None)) else None
    identity = dict(given) if isinstance(given, Mapping) else {"backend": name, "args": dict(model_args)}
    try:
        json.dumps(identity, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise UserError(f"backend '{name}': its identity() holds what JSON cannot ({exc}); this is a bug in the plugin that registers it") from None
    return identity


def backend_cacheable(backend: Any) -> bool:
    """Whether a backend's responses may be stored and reused (default True)."""
    return bool(getattr(backend, "cacheable", True))


def backend_error_summary(backend: Any) -> dict[str, dict[str, int]]:
    """The optional ``error_summary()`` and ``attempt_summary()`` of a backend, as
    ``{"requests": {class: count}, "attempts": {class: count}}``, leaving out what it does not
    provide or what is empty (a faulty method costs nothing but its entry)."""
    summary: dict[str, dict[str, int]] = {}
    for key, method in (("requests", "error_summary"), ("attempts", "attempt_summary")):
        function = getattr(backend, method, None)
        try:
            counts = function() if callable(function) else None
        except Exception:  # a plugin's bookkeeping must not cost the run
            counts = None
        if isinstance(counts, Mapping):
            clean = {str(k): int(v) for k, v in counts.items() if isinstance(v, int) and v > 0}
            if clean:
                summary[key] = clean
    return summary


def close_backend(backend: Any) -> None:
    """Call a backend's ``close()`` when it has one."""
    close = getattr(backend, "close", None)
    if callable(close):
        close()


@dataclass(frozen=True)
class BackendOptions:
    """Run-wide settings a backend factory may use.

    Under data parallelism (``accelerate launch``) each process builds its own backend: ``rank``,
    ``world_size`` and ``local_rank`` tell it which process it is, so a local model picks its own
    device (e.g. ``cuda:{local_rank}``).
    """

    batch_size: int | str | None = None
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


BackendFactory = Callable[[dict[str, str], BackendOptions], Backend]


@dataclass(frozen=True)
class BackendSpec:
    """A named backend a plugin registers.

    ``factory(model_args, options)`` builds the backend; import heavy packages inside it, so
    listing backends never imports torch. ``check_args(model_args)``, when given, raises the one-line
    :class:`~vlmbench.errors.UserError` the factory would raise for those arguments, without building
    anything (no model loaded, no request sent): a run checks a model judge's backend with it before
    the model answers.
    """

    name: str
    description: str
    factory: BackendFactory
    check_args: Callable[[Mapping[str, str]], None] | None = None
