"""Decoding of stored bytes: entry payloads (none, zstd, lz4 frame) and metadata JSON.

Every decoder is bounded by what the index claims: a lying frame can never make desfs
allocate more than the entry's logical size plus a small read chunk.
"""

from __future__ import annotations

import json
from typing import Protocol

import lz4.frame
import zstandard

from desfs.errors import EntryError
from desfs.format.model import Codec, Entry

# A stateless decoder: calling it directly skips json.loads' per-call type dispatch.
_JSON = json.JSONDecoder()

# Output is pulled from the decompressor in chunks of this size, so the memory a frame
# can claim is bounded by the bytes it really produces, never by a header field.
_CHUNK = 1 << 20

# A zstd frame names its own window size, and the decoder allocates it. Real frames of
# a small payload have small windows, so cap the window by the payload size (within
# the usual zstd range) instead of trusting the header's claim up to 128 MiB.
_ZSTD_MIN_WINDOW = 8 << 20
_ZSTD_MAX_WINDOW = 128 << 20


def decode_meta(meta: bytes) -> dict[str, object]:
    """The metadata JSON object of an entry; `{}` when there is none.

    Raises EntryError when the bytes are not UTF-8 JSON or not a JSON object.
    """
    if not meta:
        return {}
    try:
        value = _JSON.decode(meta.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays exhaust the C scanner's stack guard.
        raise EntryError(f"metadata is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EntryError(f"metadata is JSON {type(value).__name__}, not an object")
    return value


def decode_payload(entry: Entry, stored: bytes) -> bytes:
    """The logical bytes of `entry`, given its stored bytes.

    For inline entries `stored` is `[offset, offset + stored_length)` of the container;
    for external entries it is the whole external object (always stored raw). Raises
    EntryError when the entry is unreadable or the result is not exactly `entry.size`.
    """
    if entry.error is not None:
        raise EntryError(f"entry {entry.name!r} is unreadable: {entry.error}")
    if entry.external is not None:
        return _checked(entry, stored, "external object")
    if len(stored) != entry.stored_length:
        raise EntryError(
            f"entry {entry.name!r}: got {len(stored)} stored bytes, "
            f"expected {entry.stored_length} at offset {entry.offset}"
        )
    if entry.codec is Codec.NONE:
        return _checked(entry, stored, "stored payload")
    if entry.codec is Codec.ZSTD:
        return _checked(entry, _zstd(entry, stored), "zstd payload")
    return _checked(entry, _lz4(entry, stored), "lz4 payload")


def _checked(entry: Entry, data: bytes, what: str) -> bytes:
    if len(data) != entry.size:
        raise EntryError(
            f"entry {entry.name!r}: {what} decodes to {len(data)}"
            f"{'+' if len(data) > entry.size else ''} bytes, expected {entry.size}"
        )
    return bytes(data)


def _zstd(entry: Entry, stored: bytes) -> bytes:
    limit = entry.size + 1
    parts: list[bytes] = []
    produced = 0
    try:
        window = min(max(entry.size, _ZSTD_MIN_WINDOW), _ZSTD_MAX_WINDOW)
        decompressor = zstandard.ZstdDecompressor(max_window_size=window)
        reader = decompressor.stream_reader(stored)
        while produced < limit:
            chunk = reader.read(min(_CHUNK, limit - produced))
            if not chunk:
                break
            parts.append(chunk)
            produced += len(chunk)
    except zstandard.ZstdError as exc:
        raise EntryError(f"entry {entry.name!r}: corrupt zstd frame: {exc}") from None
    return b"".join(parts)


def _lz4(entry: Entry, stored: bytes) -> bytes:
    limit = entry.size + 1
    parts: list[bytes] = []
    produced = 0
    decompressor = lz4.frame.LZ4FrameDecompressor()
    pending = stored
    try:
        while produced < limit and not decompressor.eof:
            chunk = decompressor.decompress(pending, max_length=min(_CHUNK, limit - produced))
            pending = b""
            if not chunk:
                break
            parts.append(chunk)
            produced += len(chunk)
    except RuntimeError as exc:
        raise EntryError(f"entry {entry.name!r}: corrupt lz4 frame: {exc}") from None
    if produced <= entry.size and not decompressor.eof:
        raise EntryError(f"entry {entry.name!r}: lz4 frame is truncated")
    return b"".join(parts)


class Readable(Protocol):
    def read(self, size: int) -> bytes: ...


class PayloadStream:
    """Incremental decoder of one compressed entry; stored bytes come from `source`.

    `read(n)` returns up to `n` decoded bytes and b"" at the end. The output is bounded
    by the entry's logical size: a frame that decodes to more, or ends short of it,
    raises EntryError. `position` counts the decoded bytes handed out so far.
    """

    def __init__(self, entry: Entry, source: Readable) -> None:
        if entry.error is not None:
            raise EntryError(f"entry {entry.name!r} is unreadable: {entry.error}")
        if entry.codec is Codec.NONE:
            raise EntryError(f"entry {entry.name!r} is not compressed")
        self._entry = entry
        self._source = source
        self.position = 0
        self._zstd: zstandard.ZstdDecompressionReader | None = None
        self._lz4: lz4.frame.LZ4FrameDecompressor | None = None
        if entry.codec is Codec.ZSTD:
            window = min(max(entry.size, _ZSTD_MIN_WINDOW), _ZSTD_MAX_WINDOW)
            decompressor = zstandard.ZstdDecompressor(max_window_size=window)
            # zstandard accepts any object with read(); its stubs name only IO[bytes].
            self._zstd = decompressor.stream_reader(source, read_size=_CHUNK)  # type: ignore[arg-type]
        else:
            self._lz4 = lz4.frame.LZ4FrameDecompressor()

    def read(self, size: int) -> bytes:
        want = min(size, self._entry.size + 1 - self.position)
        if want <= 0:
            return b""
        chunk = self._read_zstd(want) if self._zstd is not None else self._read_lz4(want)
        self.position += len(chunk)
        if self.position > self._entry.size:
            raise EntryError(f"entry {self._entry.name!r} decodes to more than {self._entry.size}")
        if not chunk and self.position < self._entry.size:
            raise EntryError(f"entry {self._entry.name!r}: frame ends at {self.position} bytes")
        return chunk

    def _read_zstd(self, want: int) -> bytes:
        assert self._zstd is not None
        try:
            return self._zstd.read(want)
        except zstandard.ZstdError as exc:
            raise EntryError(f"entry {self._entry.name!r}: corrupt zstd frame: {exc}") from None

    def _read_lz4(self, want: int) -> bytes:
        decoder = self._lz4
        assert decoder is not None
        try:
            starved = False
            while not decoder.eof:
                # An empty answer without needs_input still means: give me more input.
                needed = decoder.needs_input or starved
                pending = self._source.read(_CHUNK) if needed else b""
                if needed and not pending:
                    return b""
                chunk: bytes = decoder.decompress(pending, max_length=want)
                if chunk:
                    return chunk
                starved = True
        except RuntimeError as exc:
            raise EntryError(f"entry {self._entry.name!r}: corrupt lz4 frame: {exc}") from None
        return b""
