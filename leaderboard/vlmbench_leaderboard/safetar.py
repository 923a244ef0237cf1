"""A bounded reader for the ``.tar.gz`` of a bundle: untrusted input, parsed by hand with hard caps.

Python's ``tarfile`` reads a PAX or GNU extended header (of any declared size) before a caller
can look at the member, and recurses over chained extended headers; so bundles are not opened
with it. This reader decompresses at most :data:`Limits.total` bytes, checks every header's
checksum, accepts only regular files (plus at most one small PAX and one GNU long-name header
per member), and checks each size against its cap *before* reading the data.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from vlmbench import whole_number
from vlmbench_leaderboard.problems import Rejected

BLOCK = 512
REGULAR = (b"0", b"\0", b"7")  # "7" (contiguous file) is a regular file to every reader
PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK = b"x", b"g", b"L", b"K"
PAX_KEYS = frozenset({"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"})


@dataclass(frozen=True)
class Limits:
    """Hard caps on what a bundle may hold (bytes unless said otherwise)."""

    compressed: int = 64 * 2**20
    total: int = 96 * 2**20
    members: int = 64
    extended_header: int = 4096
    name: int = 256


@dataclass(frozen=True)
class Member:
    """One regular file of the archive, read into memory."""

    name: str
    data: bytes


class _Stream:
    """The decompressed tar stream, read with a hard cap on the total."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._limit, self.read_bytes = limit, 0

    def read(self, size: int, what: str, end_ok: bool = False) -> bytes:
        """Exactly ``size`` bytes (or b"" at a clean end, with ``end_ok``); a short read is a damaged archive."""
        if self.read_bytes + size > self._limit:
            raise Rejected([f"more than {self._limit} bytes once decompressed; a bundle holds at most that"])
        chunks, wanted = [], size
        try:
            while wanted:
                chunk = self._gzip.read(min(wanted, 2**20))
                if not chunk:
                    break
                chunks.append(chunk)
                wanted -= len(chunk)
        except EOFError:
            raise Rejected(["damaged archive (the compressed stream is truncated)"]) from None
        except (OSError, zlib.error) as exc:
            raise Rejected([f"damaged archive ({_short(exc)})"]) from None
        data = b"".join(chunks)
        self.read_bytes += len(data)
        if len(data) != size and (data or not end_ok):
            raise Rejected([f"damaged archive (it ends inside {what})"])
        return data


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:100] or type(exc).__name__


def _octal(field: bytes, what: str) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if field[:1] and field[0] & 0x80:
        raise Rejected([f"damaged archive (base-256 {what}; a bundle's files are small)"])
    if not text:
        return 0
    if not all(48 <= c <= 55 for c in text):
        raise Rejected([f"damaged archive (header field {what} is not an octal number)"])
    return int(text, 8)


def _checksum_ok(header: bytes) -> bool:
    stored = _octal(header[148:156], "checksum")
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)
    signed = sum(b - 256 if b > 127 else b for b in blanked)
    return stored in (unsigned, signed)


def _text(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", errors="backslashreplace")


def _pax_records(data: bytes) -> dict[str, str]:
    """The ``length key=value\\n`` records of a PAX header; only harmless keys are accepted."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        if data[position:].strip(b"\0") == b"":
            break
        space = data.find(b" ", position, position + 12)
        length_text = data[position:space] if space > 0 else b""
        if not length_text.isdigit():
            raise Rejected(["damaged archive (a PAX header record has no length)"])
        length = int(length_text)
        record = data[space + 1 : position + length]
        if length <= 0 or position + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise Rejected(["damaged archive (a PAX header record is malformed)"])
        key_bytes, _, value = record[:-1].partition(b"=")
        try:
            key, text = key_bytes.decode("ascii"), value.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(["PAX header record is not UTF-8; pack the bundle with `vlmbench submit`"]) from None
        if key not in PAX_KEYS:
            raise Rejected([f"PAX header key {key[:40]!r} is refused (links, sparse files and other extensions are not bundle members)"])
        records[key] = text
        position += length
    return records


def read_members(raw: BinaryIO, size: int, check: Callable[[str, int], str | None], limits: Limits = Limits()) -> Iterator[Member]:
    """The regular files of the ``.tar.gz`` in ``raw`` (``size`` bytes), checked as they are read.

    ``check(name, size)`` returns why a member is refused (or None); it is asked before the
    member's data is read. Raises :class:`Rejected` with one line for any problem.
    """
    if size > limits.compressed:
        raise Rejected([f"{size} bytes; a bundle file is at most {limits.compressed} bytes"])
    if raw.read(2) != b"\x1f\x8b":
        raise Rejected(["not a .tar.gz bundle (no gzip header); pack it with `vlmbench submit`"])
    raw.seek(0)
    overhead = limits.members * (3 * BLOCK + limits.extended_header + limits.name) + 4 * BLOCK  # headers and padding
    yield from _members(_Stream(raw, limits.total + overhead), limits, check)


def _members(stream: _Stream, limits: Limits, check: Callable[[str, int], str | None]) -> Iterator[Member]:
    members = headers = 0
    long_name: str | None = None
    pax: dict[str, str] | None = None
    while True:
        header = stream.read(BLOCK, "a header", end_ok=True)
        if not header or header == bytes(BLOCK):
            if long_name is not None or pax is not None:
                raise Rejected(["damaged archive (an extended header without its member)"])
            return
        headers += 1
        if headers > 3 * limits.members:  # at most one PAX and one long-name header per member
            raise Rejected(
                [f"more than {limits.members} members; a bundle holds run.json, results.json, metadata, manifest and one samples file per task"]
            )
        if not _checksum_ok(header):
            raise Rejected(["damaged archive (a header checksum does not match)"])
        kind, size = header[156:157], _octal(header[124:136], "size")
        if kind in (PAX, GNU_LONGNAME):
            if (pax if kind == PAX else long_name) is not None:
                raise Rejected([f"two {'PAX' if kind == PAX else 'GNU long-name'} headers in a row; refused"])
            cap = limits.extended_header if kind == PAX else limits.name
            if size > cap:
                raise Rejected([f"{'PAX' if kind == PAX else 'GNU long-name'} header of {size} bytes; at most {cap} are accepted"])
            data = _data(stream, size)
            if kind == PAX:
                pax = _pax_records(data)
            else:
                long_name = _text(data)
            continue
        if kind == PAX_GLOBAL:
            raise Rejected(["global PAX header refused; pack the bundle with `vlmbench submit`"])
        name = _name(header, long_name, pax)
        long_name = None
        shown = _shown(name)
        if kind == GNU_LONGLINK or kind not in REGULAR:
            raise Rejected([f"member {shown}: not a regular file (links, folders and devices are refused)"])
        if len(name.encode("utf-8", errors="replace")) > limits.name:
            raise Rejected([f"member {shown}: name longer than {limits.name} bytes"])
        if pax is not None and "size" in pax:
            pax_size = whole_number(pax["size"], max_digits=15)
            if pax_size is None:
                raise Rejected([f"member {shown}: damaged archive (PAX size is not a number)"])
            size = pax_size
        pax = None
        problem = check(name, size)
        if problem:
            raise Rejected([f"member {shown}: {problem}"])
        members += 1
        if members > limits.members:
            raise Rejected(
                [f"more than {limits.members} members; a bundle holds run.json, results.json, metadata, manifest and one samples file per task"]
            )
        yield Member(name, _data(stream, size, shown))


def _name(header: bytes, long_name: str | None, pax: dict[str, str] | None) -> str:
    if pax is not None and "path" in pax:
        return pax["path"]
    if long_name is not None:
        return long_name
    name = _text(header[0:100])
    prefix = _text(header[345:500]) if header[257:263] == b"ustar\0" else ""  # POSIX ustar only; GNU keeps times there
    return f"{prefix}/{name}" if prefix else name


def _shown(name: str) -> str:
    import json

    return json.dumps(name)[:120]


def _data(stream: _Stream, size: int, what: str = "an extended header") -> bytes:
    padded = -(-size // BLOCK) * BLOCK
    return stream.read(padded, what)[:size] if padded else b""
