"""The bytes of one index record: what a container's index was parsed from, checksummed.

A record holds what `format.container.open_container` needs to parse a container again
(its tail from the index's first byte to the end, and its head when the parse had one),
never a pickled object: reopening re-parses the bytes, so nothing read back is trusted
beyond what the parser checks anyway. Its header echoes (source, key, etag) and the object
size, and carries a sha256 of everything after the checksum, so a damaged, truncated or
foreign record is refused. The on-disk store and the shared cache keep the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from desfs.errors import FormatError

MAGIC = b"DESFSIC1"
VERSION = 1
# magic, version, sha256 of the rest of the record
_PREFIX = struct.Struct("<8sH32s")
# object size, tail start, tail length, has head, head length, key/etag/source lengths
_FIELDS = struct.Struct("<QQQIIIII")


@dataclass(frozen=True, slots=True)
class CachedTail:
    """A record's bytes: the object's last `len(tail)` bytes and, maybe, its first bytes."""

    size: int
    tail: bytes
    head: bytes | None

    @property
    def tail_start(self) -> int:
        return self.size - len(self.tail)


def record_name(*parts: str) -> bytes:
    """Length-prefixed, so no choice of key or etag can collide with another."""
    encoded = [p.encode("utf-8", "surrogatepass") for p in parts]
    return b"".join(len(e).to_bytes(4, "little") + e for e in encoded)


def encode_record(
    source: str, key: str, etag: str, size: int, tail: bytes, head: bytes | None
) -> bytes:
    names = [s.encode("utf-8", "surrogatepass") for s in (key, etag, source)]
    head_bytes = head if head is not None else b""
    fields = _FIELDS.pack(
        size,
        size - len(tail),
        len(tail),
        int(head is not None),
        len(head_bytes),
        *(len(n) for n in names),
    )
    body = b"".join([fields, *names, head_bytes, tail])
    return _PREFIX.pack(MAGIC, VERSION, hashlib.sha256(body).digest()) + body


def decode_record(data: bytes, source: str, key: str, etag: str, size: int) -> CachedTail:
    if len(data) < _PREFIX.size + _FIELDS.size:
        raise FormatError(f"truncated: {len(data)} bytes")
    magic, version, digest = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"bad magic {magic!r}")
    if version != VERSION:
        raise FormatError(f"version {version}, expected {VERSION}")
    body = memoryview(data)[_PREFIX.size :]
    if hashlib.sha256(body).digest() != digest:
        raise FormatError("checksum mismatch")
    got_size, tail_start, tail_len, has_head, head_len, *lengths = _FIELDS.unpack_from(body)
    if _FIELDS.size + sum(lengths) + head_len + tail_len != len(body):
        raise FormatError("lengths do not add up to the record")
    at = _FIELDS.size
    echoed: list[str] = []
    for length in lengths:
        try:
            echoed.append(bytes(body[at : at + length]).decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise FormatError("echoed name is not UTF-8") from None
        at += length
    if echoed != [key, etag, source] or got_size != size or tail_start + tail_len != size:
        raise FormatError(f"record is for {echoed[0]!r} etag {echoed[1]!r} size {got_size}")
    head = bytes(body[at : at + head_len]) if has_head else None
    return CachedTail(size, bytes(body[at + head_len :]), head)
