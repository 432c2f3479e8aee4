"""Streaming writers for DESHEAD1 and DES2 containers (des-formats.md §1 and §2).

Payloads go to the output file object as they are added; only the index (and the
DESHEAD1 META region) waits in memory until `close()`. The bytes match what the
upstream writers produce for the same input, so upstream readers accept them.
A writer that failed part-way is unusable: the caller discards its output.
"""

from __future__ import annotations

import io
import json
import re
import struct
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
DESHEAD1_MAX_META = 10 * 1024 * 1024  # the upstream HEAD writer's limit
SMART_SKIP_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".gz", ".zip", ".bz2", ".xz"})

_COPY_CHUNK = 1 << 20
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DH1_HEAD = b"DESHEAD1\x01" + bytes(7)
_DH1_ENTRY = struct.Struct("<QQQQI")
_DH1_FOOTER = struct.Struct("<8sB7sQQQQQQQ")
_DH1_DATA_START = len(_DH1_HEAD)
_DH1_EXTERNAL = 0x01
_DES2_INLINE = struct.Struct("<BQQBQQI")
_DES2_BIG_SIZE_META = struct.Struct("<QI")


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


class _Output:
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


class DesHead1Writer:
    """Writes one DESHEAD1 container: header, DATA, META, INDEX, 72-byte footer (§1)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = _Output(out)
        self._meta = bytearray()
        self._index = bytearray()
        self._count = 0
        self._out.write(_DH1_HEAD)

    @property
    def entry_count(self) -> int:
        return self._count

    def add(self, name: str | bytes, data: bytes, meta: Meta = None) -> None:
        """Add an inline payload held in memory."""
        self.add_stream(name, io.BytesIO(data), len(data), meta)

    def add_stream(self, name: str | bytes, source: BinaryIO, size: int, meta: Meta = None) -> None:
        """Add an inline payload copied from `source`, which must yield exactly `size` bytes."""

        def step() -> None:
            raw = encode_name(name)
            meta_bytes = self._meta_bytes(meta, size, None)
            offset = self._out.position
            copy_exact(source, size, self._out.write)
            self._record(raw, offset, size, meta_bytes, 0)

        self._out.guarded(step)

    def add_external(
        self, name: str | bytes, size: int, external_key: str, meta: Meta = None
    ) -> None:
        """Add an entry whose payload the caller stores at `external_key` (§1.7)."""

        def step() -> None:
            raw = encode_name(name)
            meta_bytes = self._meta_bytes(meta, size, external_key)
            self._record(raw, 0, size, meta_bytes, _DH1_EXTERNAL)

        self._out.guarded(step)

    def close(self) -> int:
        """Write META, INDEX and the footer; return the container's size in bytes."""
        self._out.guarded(self._write_tail)
        self._out.finish()
        return self._out.position

    def _meta_bytes(self, meta: Meta, size: int, external_key: str | None) -> bytes:
        if isinstance(meta, bytes):
            encoded = meta
        else:
            fields = dict(meta or {})
            fields["size"] = size  # the HEAD writer always (over)writes it
            if external_key is not None:
                fields["is_external"] = True
                fields["external_key"] = external_key
            encoded = encode_meta(fields)
        if len(encoded) > DESHEAD1_MAX_META:
            raise UsageError(f"metadata is {len(encoded)} bytes; the limit is {DESHEAD1_MAX_META}")
        return encoded

    def _record(self, raw: bytes, offset: int, size: int, meta: bytes, flags: int) -> None:
        # meta offsets are relative until close() knows where META starts
        fixed = _DH1_ENTRY.pack(offset, size, len(self._meta), len(meta), flags)
        self._index += struct.pack("<H", len(raw)) + raw + fixed
        self._meta += meta
        self._count += 1

    def _write_tail(self) -> None:
        meta_start = self._out.position
        self._out.write(bytes(self._meta))
        index_start = self._out.position
        self._write_index(meta_start)
        data_length = meta_start - _DH1_DATA_START
        index_length = self._out.position - index_start
        footer = _DH1_FOOTER.pack(
            b"DESFOOT1", 1, bytes(7), _DH1_DATA_START, data_length, meta_start,
            len(self._meta), index_start, index_length, self._count,
        )  # fmt: skip
        self._out.write(footer)

    def _write_index(self, meta_start: int) -> None:
        pos = 0
        for _ in range(self._count):
            (name_len,) = struct.unpack_from("<H", self._index, pos)
            at = pos + 2 + name_len + 16  # meta_offset follows data_offset and data_length
            (relative,) = struct.unpack_from("<Q", self._index, at)
            struct.pack_into("<Q", self._index, at, meta_start + relative)
            pos += 2 + name_len + _DH1_ENTRY.size
        self._out.write(bytes(self._index))


class Des2Writer:
    """Writes one DES2 version 2 container: header, DATA, INDEX, 12-byte footer (§2).

    `codec`/`level` apply to every inline entry unless `add` names a codec; with
    `smart_skip` the names in SMART_SKIP_SUFFIXES stay uncompressed, as upstream.
    """

    def __init__(
        self,
        out: BinaryIO,
        codec: Codec = Codec.NONE,
        level: int | None = None,
        smart_skip: bool = False,
    ) -> None:
        self._out = _Output(out)
        self._codec = codec
        self._level = level
        self._smart_skip = smart_skip
        self._index = bytearray()
        self._names: set[bytes] = set()
        self._out.write(b"DES2\x02\x00\x00\x00")

    @property
    def entry_count(self) -> int:
        return len(self._names)

    def codec_for(self, name: str | bytes) -> Codec:
        """The codec an inline entry of this name gets from the writer's defaults."""
        if self._smart_skip and smart_skips(name):
            return Codec.NONE
        return self._codec

    def add(
        self, name: str | bytes, data: bytes, meta: Meta = None, codec: Codec | None = None
    ) -> Codec:
        """Add an inline payload; returns the codec it was stored with."""
        return self.add_stream(name, io.BytesIO(data), len(data), meta, codec)

    def add_stream(
        self,
        name: str | bytes,
        source: BinaryIO,
        size: int,
        meta: Meta = None,
        codec: Codec | None = None,
    ) -> Codec:
        """Add an inline payload from `source` (exactly `size` bytes).

        Uncompressed payloads are streamed; a compressed one is read whole first,
        because the stored frame must be the one-shot frame upstream writes.
        """
        chosen = self.codec_for(name) if codec is None else codec

        def step() -> None:
            raw = self._new_name(name)
            meta_bytes = _des2_meta(meta)
            offset = self._out.position
            if chosen is Codec.NONE:
                copy_exact(source, size, self._out.write)
            else:
                self._out.write(compress(read_exact(source, size), chosen, self._level))
            stored = self._out.position - offset
            fixed = _DES2_INLINE.pack(0, offset, stored, chosen, stored, size, len(meta_bytes))
            self._append(raw, fixed + meta_bytes)

        self._out.guarded(step)
        return chosen

    def add_bigfile(self, name: str | bytes, sha256: str, size: int, meta: Meta = None) -> None:
        """Add a BigFile entry; the caller stores the payload under its SHA-256 (§2.6)."""

        def step() -> None:
            if _SHA256_HEX.fullmatch(sha256) is None:
                raise UsageError(f"BigFile hash {sha256!r} is not 64 lowercase hex digits")
            raw = self._new_name(name)
            meta_bytes = _des2_meta(meta)
            hash_bytes = sha256.encode("ascii")
            tail = _DES2_BIG_SIZE_META.pack(size, len(meta_bytes))
            body = b"\x01" + struct.pack("<H", len(hash_bytes)) + hash_bytes + tail + meta_bytes
            self._append(raw, body)

        self._out.guarded(step)

    def close(self) -> int:
        """Write the index and the footer; return the container's size in bytes."""

        def step() -> None:
            index = struct.pack("<I", len(self._names)) + bytes(self._index)
            self._out.write(index)
            self._out.write(b"DESI" + struct.pack("<Q", len(index)))

        self._out.guarded(step)
        self._out.finish()
        return self._out.position

    def _new_name(self, name: str | bytes) -> bytes:
        raw = encode_name(name)
        if raw in self._names:
            raise UsageError(f"duplicate entry name {raw!r} in one DES2 container")
        return raw

    def _append(self, raw: bytes, body: bytes) -> None:
        self._index += struct.pack("<H", len(raw)) + raw + body
        self._names.add(raw)


def _des2_meta(meta: Meta) -> bytes:
    if isinstance(meta, bytes):
        return _checked_u32_meta(meta)
    # no meta is meta_len 0, never "{}"
    return _checked_u32_meta(encode_meta(meta) if meta else b"")


def _checked_u32_meta(encoded: bytes) -> bytes:
    if len(encoded) > 0xFFFFFFFF:
        raise UsageError("metadata does not fit a u32 length")
    return encoded
