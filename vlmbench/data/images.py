"""Reading dataset images defensively: a bad image is one sample's error, never the end of a run.

Images in a dataset come from whoever made the copy: a file may be empty, truncated, not an image
at all, missing, or a decompression bomb (a small file that claims billions of pixels). Every such
problem raises :class:`BadImage`, which the runner records as that sample's error.

The size limit is Pillow's ``MAX_IMAGE_PIXELS`` (about 89 million pixels), enforced as a hard
error from the image header, before any pixel is decoded (Pillow itself only warns between one
and two times that size).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)


class BadImage(Exception):
    """An image that cannot be used: missing, unreadable, empty, truncated, not an image, or too large."""


def encoded_bytes(value: Any) -> bytes:
    """The encoded bytes of a dataset image cell (``{"bytes": ..., "path": ...}`` as ``datasets`` stores it)."""
    if not isinstance(value, dict):
        raise BadImage("the row holds no image")
    data = value.get("bytes")
    if data is not None:
        return bytes(data)
    path = value.get("path")
    if not path:
        raise BadImage("the row holds no image")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadImage(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None


def sha256(value: Any) -> str:
    """sha256 of an image cell's encoded bytes (nothing is decoded)."""
    return hashlib.sha256(encoded_bytes(value)).hexdigest()


def decode(value: Any, mode: str | None = None) -> Image.Image:
    """Decode an image cell fully, as ``datasets`` would (EXIF orientation applied, ``mode`` converted),
    refusing anything over :data:`MAX_PIXELS` before decoding it."""
    data = encoded_bytes(value)
    if not data:
        raise BadImage("the image file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # Pillow's warning is about images refused just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise BadImage(f"{width}x{height} pixels is over the limit of {MAX_PIXELS} (a decompression bomb?)")
        image.load()
        if image.getexif().get(ExifTags.Base.Orientation) is not None:
            image = ImageOps.exif_transpose(image)
        if mode and image.mode != mode:
            image = image.convert(mode)
    except BadImage:
        raise
    except Image.DecompressionBombError:
        raise BadImage(f"over the limit of {MAX_PIXELS} pixels (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise BadImage("not an image in a format Pillow reads") from None
    except Exception as exc:  # Pillow raises many types for hostile input (OSError, SyntaxError, ValueError, ...)
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise BadImage(f"not a readable image ({type(exc).__name__}: {reason})") from None
    return image
