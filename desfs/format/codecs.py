"""Decoding of stored bytes: entry payloads (none, zstd, lz4 frame) and metadata JSON.

Every decoder is bounded by what the index claims: a lying frame can never make desfs
allocate more than the entry's logical size plus a small read chunk.
"""

from __future__ import annotations

import io
import json
from typing import Protocol

import lz4.frame
import zstandard

from desfs.errors import EntryError
from desfs.format import s4db
from desfs.format.frames import ZstdFrameWalker
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
    EntryError when the entry is unreadable or its bytes do not decode to exactly
    `entry.size` under the rule of `PayloadStream`.
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
    if entry.codec is Codec.S4_RECORD:
        return _checked(entry, _s4_value(entry, stored), "s4db record")
    stream = PayloadStream(entry, io.BytesIO(stored))
    parts = []
    while chunk := stream.read(_CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def _s4_value(entry: Entry, stored: bytes) -> bytes:
    """The value of an s4db record (format.s4db checks its key, framing and CRC)."""
    where = entry.elsewhere
    file_id = None if where is None else s4db.parse_data_file_name(where.key)
    if file_id is None:
        raise EntryError(f"entry {entry.name!r}: not in an s4db data file")
    record = s4db.S4Entry(entry.name, file_id, entry.offset, entry.stored_length)
    return s4db.decode_value(stored, record)


def _checked(entry: Entry, data: bytes, what: str) -> bytes:
    if len(data) != entry.size:
        raise EntryError(
            f"entry {entry.name!r}: {what} decodes to {len(data)}"
            f"{'+' if len(data) > entry.size else ''} bytes, expected {entry.size}"
        )
    return bytes(data)


class Readable(Protocol):
    def read(self, size: int) -> bytes: ...


class _Input:
    """The stored bytes of one entry as the decoder pulls them: never more than
    `stored_length`, counted, and walked for frame boundaries (zstd)."""

    def __init__(self, source: Readable, length: int, walker: ZstdFrameWalker | None) -> None:
        self._source = source
        self._left = length
        self._walker = walker
        self.short = False  # the source ended before `length` bytes

    def read(self, size: int) -> bytes:
        size = min(size, self._left)
        if size <= 0:
            return b""
        data = self._source.read(size)
        if not data:
            self.short = True
            return b""
        self._left -= len(data)
        if self._walker is not None:
            self._walker.feed(data)  # raises EntryError on bytes that are not frames
        return data

    def drain(self) -> int:
        """Pull the bytes the decoder left unread; how many there were."""
        left = 0
        while chunk := self.read(_CHUNK):
            left += len(chunk)
        return left

    @property
    def exhausted(self) -> bool:
        return self._left == 0 and not self.short


class PayloadStream:
    """Incremental decoder of one compressed entry; stored bytes come from `source`.

    `read(n)` returns up to `n` decoded bytes and b"" at the end. One rule holds for
    every path (the mount's streaming and whole reads, `desfs cat`, `verify`): an entry
    is good only if its stored bytes are complete frames (zstd: one or more frames,
    skippable frames allowed; lz4: exactly one frame) that end exactly at the stored
    length, decode to exactly the entry's size, and pass their checksums where the frame
    has them. Anything else raises EntryError, at the latest on the read that reaches
    the entry's end, and the output never exceeds the entry's size.
    """

    def __init__(self, entry: Entry, source: Readable) -> None:
        if entry.error is not None:
            raise EntryError(f"entry {entry.name!r} is unreadable: {entry.error}")
        if entry.codec is Codec.NONE:
            raise EntryError(f"entry {entry.name!r} is not compressed")
        self._entry = entry
        self.position = 0
        self._finished = False
        self._zstd: zstandard.ZstdDecompressionReader | None = None
        self._lz4: lz4.frame.LZ4FrameDecompressor | None = None
        if entry.codec is Codec.ZSTD:
            self._walker: ZstdFrameWalker | None = ZstdFrameWalker()
            self._input = _Input(source, entry.stored_length, self._walker)
            window = min(max(entry.size, _ZSTD_MIN_WINDOW), _ZSTD_MAX_WINDOW)
            decompressor = zstandard.ZstdDecompressor(max_window_size=window)
            # Across frames: junk after the first frame is an error, a second frame more
            # output. zstandard accepts any object with read(); its stubs name IO[bytes].
            self._zstd = decompressor.stream_reader(
                self._input,  # type: ignore[arg-type]
                read_size=_CHUNK,
                read_across_frames=True,
            )
        else:
            self._walker = None
            self._input = _Input(source, entry.stored_length, None)
            self._lz4 = lz4.frame.LZ4FrameDecompressor()

    def read(self, size: int) -> bytes:
        try:
            return self._read(size)
        except EntryError as exc:
            name = repr(self._entry.name)
            raise exc if name in str(exc) else EntryError(f"entry {name}: {exc}") from None

    def _read(self, size: int) -> bytes:
        want = min(size, self._entry.size - self.position)
        if want <= 0:
            self._finish()
            return b""
        chunk = self._read_zstd(want) if self._zstd is not None else self._read_lz4(want)
        if not chunk:
            raise EntryError(
                f"entry {self._entry.name!r}: frame decodes to {self.position} bytes, "
                f"expected {self._entry.size}"
            )
        self.position += len(chunk)
        if self.position == self._entry.size:
            self._finish()
        return chunk

    def _finish(self) -> None:
        """At the entry's end: the frames must end here, and so must the stored bytes."""
        if self._finished:
            return
        name = self._entry.name
        if self._zstd is not None:
            if self._read_zstd(1):
                raise self._too_long()
            self._check_input(self._input.drain())
            assert self._walker is not None
            if not self._walker.complete:
                raise EntryError(f"entry {name!r}: zstd frame is incomplete")
        else:
            self._finish_lz4()
        self._finished = True

    def _finish_lz4(self) -> None:
        decoder, name = self._lz4, self._entry.name
        assert decoder is not None
        try:
            while not decoder.eof:
                pending = self._input.read(_CHUNK) if decoder.needs_input else b""
                if decoder.needs_input and not pending:
                    raise EntryError(f"entry {name!r}: lz4 frame has no end mark")
                if decoder.decompress(pending, max_length=1):
                    raise self._too_long()
        except RuntimeError as exc:
            raise EntryError(f"entry {name!r}: corrupt lz4 frame: {exc}") from None
        if decoder.unused_data:
            raise EntryError(
                f"entry {name!r}: {len(decoder.unused_data)} bytes after the lz4 frame"
            )
        self._check_input(self._input.drain())

    def _too_long(self) -> EntryError:
        codec, size = self._entry.codec.name.lower(), self._entry.size
        return EntryError(
            f"entry {self._entry.name!r}: {codec} payload decodes to {size + 1}+ bytes, "
            f"expected {size}"
        )

    def _check_input(self, unread: int) -> None:
        name = self._entry.name
        if unread or not self._input.exhausted:
            what = f"{unread} stored bytes after the frame" if unread else "stored bytes missing"
            raise EntryError(f"entry {name!r}: {what}")

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
                pending = self._input.read(_CHUNK) if needed else b""
                if needed and not pending:
                    return b""
                chunk: bytes = decoder.decompress(pending, max_length=want)
                if chunk:
                    return chunk
                starved = True
        except RuntimeError as exc:
            raise EntryError(f"entry {self._entry.name!r}: corrupt lz4 frame: {exc}") from None
        return b""
