"""The DES2 writer (des-formats.md §2): header, payloads, index, 12-byte footer.

Payloads go to the output as they are added; only the index waits in memory until
`close()`. The bytes match the upstream writer's for the same input.
"""

from __future__ import annotations

import io
import re
import struct
from typing import BinaryIO

from desfs.errors import UsageError
from desfs.format.model import Codec
from desfs.format.writer import (
    Meta,
    Output,
    compress,
    copy_exact,
    encode_meta,
    encode_name,
    read_exact,
    smart_skips,
)

_DES2_INLINE = struct.Struct("<BQQBQQI")
_DES2_BIG_SIZE_META = struct.Struct("<QI")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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
        self._out = Output(out)
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
