"""Bound what one reply may cost: its size relative to ``max_new_tokens`` and its total time.

A generation of ``max_new_tokens`` tokens cannot be arbitrarily long: even long tokens average
far fewer than :data:`CHARS_PER_TOKEN` characters. A reply longer than
``max_new_tokens * CHARS_PER_TOKEN + REPLY_SLACK_CHARS`` characters was not produced under that
limit (the server ignored ``max_tokens``, or something other than the model answered), so a
backend treats it as a fault rather than truncating it: a truncated text would be scored as if
the model had said it. The body is read with a byte cap derived from the same bound, so a
runaway reply costs neither memory nor time.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable
from typing import TypeVar

T = TypeVar("T")

CHARS_PER_TOKEN = 32
"""Characters one generated token may account for, generously (English averages about 4)."""

REPLY_SLACK_CHARS = 1024
"""Characters allowed beyond ``max_new_tokens * CHARS_PER_TOKEN`` (stop strings, special tokens spelled out)."""

JSON_BYTES_PER_CHAR = 12
"""The most bytes JSON may spend on one character (an escaped astral character: ``\\ud83d\\ude00``)."""

BODY_SLACK_BYTES = 64 * 1024
"""Bytes allowed for the rest of a reply body (ids, usage, finish reason, headers of a JSON envelope)."""


def reply_char_limit(max_new_tokens: int) -> int:
    """The longest answer text, in characters, that ``max_new_tokens`` tokens can plausibly produce."""
    return max(0, max_new_tokens) * CHARS_PER_TOKEN + REPLY_SLACK_CHARS


def body_byte_limit(max_new_tokens: int) -> int:
    """The largest reply body, in bytes, worth reading for a ``max_new_tokens`` generation."""
    return reply_char_limit(max_new_tokens) * JSON_BYTES_PER_CHAR + BODY_SLACK_BYTES


async def read_limited(chunks: AsyncIterable[bytes], limit: int) -> bytes | None:
    """The concatenated ``chunks``, or None as soon as they exceed ``limit`` bytes (the rest is not read)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > limit:
            return None
    return bytes(buffer)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or :class:`TimeoutError` once ``seconds`` have passed in total.

    A total deadline, unlike a client's per-read timeout: a server trickling one byte at a time
    cannot hold the request past it. The awaitable is cancelled at the deadline.
    """
    import asyncio

    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no complete answer within {seconds:g} s") from None
