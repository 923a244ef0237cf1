"""Published data files pinned by commit and content hash: fetched once, checked, cached.

Some of a study's data is not a Hugging Face dataset but a file in the authors' repository (the
UnsafeConcepts contextual questions). Each such file is known here by a key
(``OWNER/REPO:PATH``), the raw URL at a fixed commit, and the sha256 of its bytes. On first use
the file is downloaded, checked against the hash and kept in the vlmbench cache folder
(``$VLMBENCH_CACHE_DIR`` or ``~/.cache/vlmbench``, under ``published/``); later runs read the cached
copy. ``--data_files KEY=PATH`` gives a local copy instead (checked against the same hash). With
``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1`` nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vlmbench.errors import UserError
from vlmbench.safefiles import replace_file

MAX_BYTES = 16 * 1024 * 1024
TIMEOUT_S = 30.0


class Unavailable(UserError):
    """A published file that is neither cached nor given as a local copy, and cannot be downloaded now
    (downloads off, no network): a task that needs it is skipped rather than the run stopped."""


@dataclass(frozen=True)
class PublishedFile:
    """A file of a public repository at a fixed commit, with the sha256 its bytes must have."""

    key: str
    url: str
    sha256: str
    note: str


SAFERVLM_COMMIT = "22632cf1b1d0a91dba8541df95a8d400fc59db52"
CONTEXT_QUESTIONS = PublishedFile(
    key="TrustAIRLab/SaferVLM:data/contexts/generated_questions.json",
    url=f"https://raw.githubusercontent.com/TrustAIRLab/SaferVLM/{SAFERVLM_COMMIT}/data/contexts/generated_questions.json",
    sha256="fb791851e2241d4b4688352535790e18eeebe48a6067d7d01820112101c020e9",
    note="UnsafeConcepts contextual questions (Qu et al., USENIX Security 2025): one safe- and one unsafe-context question per concept",
)
PUBLISHED = {CONTEXT_QUESTIONS.key: CONTEXT_QUESTIONS}


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _download(url: str) -> bytes:
    """The bytes at ``url`` (at most :data:`MAX_BYTES`); ``OSError`` when the download fails."""
    request = urllib.request.Request(url, headers={"User-Agent": "vlmbench"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
        data: bytes = reply.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise OSError(f"more than {MAX_BYTES} bytes")
    return data


def _checked(data: bytes, published: PublishedFile, where: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != published.sha256:
        raise UserError(
            f"{where}: sha256 {digest} does not match {published.key} at its pinned commit (sha256 {published.sha256}); "
            f"use an unmodified copy of {published.url}"
        )
    return data


def cache_path(published: PublishedFile) -> Path:
    """Where the checked copy of ``published`` is kept."""
    from vlmbench.cache import cache_dir

    return cache_dir() / "published" / f"{published.sha256}{Path(published.url).suffix}"


def read_published(published: PublishedFile, local: str | None = None) -> tuple[bytes, str]:
    """The checked bytes of ``published`` and where they came from (a local copy, the cache, or the URL)."""
    if local:
        path = Path(local).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"--data_files {published.key}={local}: cannot read ({exc.strerror or exc}); check the path") from None
        return _checked(data, published, str(path)), str(path)
    cached = cache_path(published)
    if cached.is_file():
        data = cached.read_bytes()
        if hashlib.sha256(data).hexdigest() == published.sha256:
            return data, str(cached)
    if _offline():
        raise Unavailable(
            f"{published.key}: not cached and downloads are off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE); "
            f"pass a local copy with --data_files {published.key}=PATH"
        )
    try:
        data = _download(published.url)
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Unavailable(
            f"cannot fetch {published.url} ({reason}); without network pass a local copy with --data_files {published.key}=PATH"
        ) from None
    _checked(data, published, published.url)
    _keep(cached, data)
    return data, published.url


def _keep(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a concurrent run writes the same bytes); a cache that cannot be written is skipped."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, data)
