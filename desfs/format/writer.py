"""What both container writers share: names, metadata, codecs and the output sink.

The writers (`deshead1_writer`, `des2_writer`) stream payloads to the output as they are
added; only the index (and the DESHEAD1 META region) waits in memory until `close()`.
Their bytes match what the upstream writers produce for the same input. A writer that
failed part-way is unusable: the caller discards its output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import BinaryIO

import lz4.frame
import zstandard

from desfs.errors import ObjectChanged, UsageError
from desfs.format.model import Codec

Meta = Mapping[str, object] | bytes | None
"""Entry metadata: a JSON object, or bytes stored verbatim, or nothing."""

MAX_NAME_BYTES = 0xFFFF
SMART_SKIP_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".gz", ".zip", ".bz2", ".xz"})

_COPY_CHUNK = 1 << 20


def encode_name(name: str | bytes) -> bytes:
    """UTF-8 bytes of an entry name, refused when it cannot be stored (u16 length)."""
    if isinstance(name, str):
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UsageError(f"entry name {name!r} is not encodable as UTF-8") from exc
    else:
        raw = bytes(name)
    if len(raw) > MAX_NAME_BYTES:
        raise UsageError(f"entry name is {len(raw)} bytes; the limit is {MAX_NAME_BYTES}")
    return raw


def encode_meta(meta: Mapping[str, object]) -> bytes:
    """Compact, ASCII-only JSON, as both upstream writers serialise metadata."""
    try:
        text = json.dumps(dict(meta), separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"metadata is not JSON-serialisable: {exc}") from exc
    return text.encode("ascii")


def smart_skips(name: str | bytes) -> bool:
    """True when DES smart compression leaves this name uncompressed (§2.5)."""
    text = name if isinstance(name, str) else name.decode("utf-8", "surrogateescape")
    return PurePosixPath(text).suffix.lower() in SMART_SKIP_SUFFIXES


def compress(data: bytes, codec: Codec, level: int | None) -> bytes:
    """One payload encoded as the DES writer does: a single zstd or LZ4 frame."""
    if codec is Codec.ZSTD:
        # Upstream treats both None and 0 as level 3.
        return zstandard.ZstdCompressor(level=level or 3).compress(data)
    if codec is Codec.LZ4:
        if level is None:
            return bytes(lz4.frame.compress(data))
        return bytes(lz4.frame.compress(data, compression_level=level))
    return data


def copy_exact(source: BinaryIO, size: int, sink: Callable[[bytes], object]) -> None:
    """Copy exactly `size` bytes; a source that is shorter or longer has changed."""
    remaining = size
    while remaining:
        chunk = source.read(min(remaining, _COPY_CHUNK))
        if not chunk:
            raise ObjectChanged(f"source ended {remaining} bytes short of its size {size}")
        sink(chunk)
        remaining -= len(chunk)
    if source.read(1):
        raise ObjectChanged(f"source grew beyond its size {size} while being written")


def read_exact(source: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    copy_exact(source, size, parts.append)
    return b"".join(parts)


class Output:
    """Position-tracking sink with the writer life cycle: open, failed or closed."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.position = 0
        self._state = "open"

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self.position += len(data)

    def check_open(self) -> None:
        if self._state != "open":
            raise UsageError(f"the container writer is {self._state}")

    def guarded(self, step: Callable[[], None]) -> None:
        """Run one add/close step; any failure leaves the writer unusable."""
        self.check_open()
        try:
            step()
        except BaseException:
            self._state = "failed"
            raise

    def finish(self) -> None:
        self._out.flush()
        self._state = "closed"
