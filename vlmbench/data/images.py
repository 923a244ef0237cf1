"""Reading dataset images defensively: a bad image is one sample's error, never the end of a run.

Images in a dataset come from whoever made the copy: a file may be empty, truncated, not an image
at all, missing, or a decompression bomb (a small file that claims billions of pixels). Every such
problem raises :class:`BadImage`, which the runner records as that sample's error.

The size limit is Pillow's ``MAX_IMAGE_PIXELS`` (about 89 million pixels), enforced as a hard
error from the image header, before any pixel is decoded (Pillow itself only warns between one
and two times that size). An image file named by path is read only when it is a regular file of at most
:data:`MAX_FILE_BYTES` (:func:`vlmbench.safefiles.read_regular_file`).
"""

from __future__ import annotations

import hashlib
import io
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from vlmbench.errors import first_line
from vlmbench.safefiles import FileRefused, read_regular_file

MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest image file read from a path a dataset names (64 MiB: far above any encoded image under
:data:`MAX_PIXELS`'s limit that a benchmark uses); a larger file, or anything but a regular file (a FIFO,
``/dev/zero``), is a :class:`BadImage`, never a hang or an exhausted memory."""


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
        return read_regular_file(Path(path), MAX_FILE_BYTES, "image file")
    except FileRefused as exc:
        raise BadImage(str(exc)) from None
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
        with warnings.catch_warnings():  # Pillow's warnings are about images refused below, or damaged metadata
            warnings.simplefilter("ignore")
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise BadImage(f"{width}x{height} pixels is over the limit of {MAX_PIXELS} (a decompression bomb?)")
            image.load()
            # Pillow fills the rows a PNG's pixel data lacks with black: refused, as what an API would be sent is
            if image.format == "PNG" and not png_pixels_complete(data):
                raise BadImage("the image file is truncated (its PNG pixel data ends early)")
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
        reason = first_line(exc, 160)
        raise BadImage(f"not a readable image ({type(exc).__name__}: {reason})") from None
    return image


# --- images as bytes: what a request carries until a backend needs pixels -------------------------

SENDABLE_FORMATS = ("PNG", "JPEG", "WEBP")
"""Formats an API accepts as they are stored; others are decoded and re-encoded by the backends that send bytes."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Text chunks that may carry an EXIF orientation (Pillow reads it from these too).
_PNG_ORIENTATION_HINTS = (b"Raw profile type exif", b"XML:com.adobe.xmp", b"Orientation")


@dataclass(frozen=True)
class EncodedImage:
    """An image as stored, checked without decoding a pixel.

    ``format`` is Pillow's name (``PNG``, ``JPEG``, ``WEBP``, ...), ``size`` is (width, height) as
    decoded, ``mode`` Pillow's mode from the header. ``faithful`` is True when decoding ``data``
    as it is gives the pixels :func:`decode` gives: no EXIF orientation to apply, not animated,
    no colour mode to convert to. A backend that sends ``data`` as it is (an API's data URL)
    re-encodes the decoded pixels instead when it is False.
    """

    data: bytes
    format: str
    size: tuple[int, int]
    mode: str
    sha256: str
    faithful: bool


def check_encoded(data: bytes, mode: str | None = None, sha256: str | None = None) -> EncodedImage:
    """``data`` checked as an image file without decoding its pixels: the header (format, size,
    the decompression-bomb limit) and the file's structure (a PNG's chunks up to ``IEND``, a JPEG's
    end marker, a WebP's RIFF length, a GIF's trailer, a BMP's size), so an empty, truncated or non-image file is
    a :class:`BadImage` before any request is sent, as :func:`decode` would find it. Formats
    without such a check (and the rare PNG with orientation metadata) are decoded once to check them.
    ``sha256`` is the bytes' hash when the caller knows it already (else it is computed)."""
    if not data:
        raise BadImage("the image file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
        width, height = image.size
        image_format, image_mode = str(image.format or ""), image.mode
        animated = bool(getattr(image, "is_animated", False))
    except Image.DecompressionBombError:
        raise BadImage(f"over the limit of {MAX_PIXELS} pixels (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise BadImage("not an image in a format Pillow reads") from None
    except Exception as exc:
        reason = first_line(exc, 160)
        raise BadImage(f"not a readable image ({type(exc).__name__}: {reason})") from None
    if width * height > MAX_PIXELS:
        raise BadImage(f"{width}x{height} pixels is over the limit of {MAX_PIXELS} (a decompression bomb?)")
    complete = _structure_complete(image_format, data)
    orientation: Any = None
    if complete is None:  # no cheap check for this file: decode it once, as decode() would
        decoded = decode({"bytes": data}, mode)
        size, faithful = decoded.size, False
    else:
        if not complete:
            raise BadImage(f"the image file is truncated (its {image_format} data ends early)")
        if image_format != "PNG":
            orientation = _orientation(image)  # from the header: no pixel is decoded
        size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        faithful = orientation in (None, 1) and not animated and (mode is None or mode == image_mode)
    digest = sha256 or hashlib.sha256(data).hexdigest()
    return EncodedImage(data=data, format=image_format, size=size, mode=image_mode, sha256=digest, faithful=faithful)


def _orientation(image: Image.Image) -> Any:
    """The EXIF orientation of an opened image (None without one); damaged EXIF data is a :class:`BadImage`,
    as decoding finds it, and Pillow's warnings about it are not printed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return image.getexif().get(ExifTags.Base.Orientation)
    except Exception as exc:  # Pillow raises SyntaxError, ValueError, struct.error ... for damaged EXIF
        reason = first_line(exc, 160)
        raise BadImage(f"not a readable image (damaged EXIF data: {type(exc).__name__}: {reason})") from None


def _structure_complete(image_format: str, data: bytes) -> bool | None:
    """Whether the file's structure is complete (False: truncated), or None when there is no cheap
    check for it (the caller decodes it instead)."""
    if image_format == "PNG":
        return _png_complete(data)
    if image_format == "JPEG":
        # A complete JPEG ends with its EOI marker; one followed by padding or other bytes is rare
        # and decoded to check it, as is every file that does not end with the marker.
        return True if data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9") else None
    if image_format == "WEBP":
        return len(data) >= 12 and int.from_bytes(data[4:8], "little") + 8 <= len(data)
    if image_format == "GIF":
        return True if data.rstrip(b"\x00").endswith(b";") else None
    if image_format == "BMP":  # the header states the file's size
        return len(data) >= 6 and int.from_bytes(data[2:6], "little") <= len(data)
    return None


# Samples per pixel of each PNG colour type (greyscale, RGB, palette, greyscale + alpha, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 interlacing: each pass's first column and row, and its steps across and down.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_pixels_complete(data: bytes) -> bool:
    """Whether a PNG's compressed pixel data (its ``IDAT`` chunks) inflates to every row its header declares.

    The byte-level check (:func:`check_encoded`) walks the chunks but leaves the pixel data to the decoder; a file
    cut inside its compressed stream, or one whose stream holds too few rows, passes it. A backend that sends the
    stored bytes as they are (an API) runs this first: inflating is far cheaper than decoding, and what is
    inflated is counted, not kept. False for anything that is not a readable PNG."""
    view = memoryview(data)
    position, end = len(_PNG_SIGNATURE), len(data)
    if not data.startswith(_PNG_SIGNATURE) or end < position + 25 or bytes(view[position + 4 : position + 8]) != b"IHDR":
        return False
    width, height = int.from_bytes(view[position + 8 : position + 12], "big"), int.from_bytes(view[position + 12 : position + 16], "big")
    depth, colour, interlaced = data[position + 16], data[position + 17], data[position + 20] == 1
    bits = _PNG_CHANNELS.get(colour, 0) * depth
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        columns, rows = max(0, -(-(width - x0) // dx)), max(0, -(-(height - y0) // dy))
        if columns and rows:
            expected += rows * (1 + -(-(columns * bits) // 8))  # each row: a filter byte, then its packed samples
    inflater, produced = zlib.decompressobj(), 0
    try:
        while position + 12 <= end and produced < expected:
            length = int.from_bytes(view[position : position + 4], "big")
            stop = position + 12 + length
            if bytes(view[position + 4 : position + 8]) == b"IDAT":
                chunk = bytes(view[position + 8 : min(stop - 4, end)])
                while chunk and produced < expected:
                    produced += len(inflater.decompress(chunk, 1 << 20))
                    chunk = inflater.unconsumed_tail
            position = stop
    except zlib.error:
        return False
    return bits > 0 and produced >= expected


def _png_complete(data: bytes) -> bool | None:
    """Walk a PNG's chunks: True when they end with ``IEND``, False when the file stops before it;
    None when a chunk may carry an orientation (rare: the caller decodes the file to read it).
    A damaged ancillary or header chunk (bad CRC) is a :class:`BadImage`, as Pillow reports it;
    ``IDAT`` checksums are left to the decoder, as Pillow does."""
    view = memoryview(data)
    position, end, hinted = len(_PNG_SIGNATURE), len(data), False
    if not data.startswith(_PNG_SIGNATURE):
        return None
    while position + 12 <= end:
        length = int.from_bytes(view[position : position + 4], "big")
        kind = bytes(view[position + 4 : position + 8])
        stop = position + 12 + length
        if stop > end:
            return False
        if kind != b"IDAT":
            body = view[position + 8 : stop - 4]
            if zlib.crc32(view[position + 4 : stop - 4]) != int.from_bytes(view[stop - 4 : stop], "big"):
                raise BadImage(f"not a readable image (damaged PNG chunk {kind.decode('latin-1')!r}: bad checksum)")
            if kind == b"eXIf" or (kind in (b"tEXt", b"zTXt", b"iTXt") and any(hint in bytes(body[:4096]) for hint in _PNG_ORIENTATION_HINTS)):
                hinted = True
        if kind == b"IEND":
            return None if hinted else True
        position = stop
    return False
