"""The DESHEAD1 writer (des-formats.md §1): header, DATA, META, INDEX, 72-byte footer.

Payloads go to the output as they are added; only the META region and the index wait in
memory until `close()`. The bytes match the upstream writer's for the same input.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

from desfs.errors import UsageError
from desfs.format.writer import (
    Meta,
    Output,
    copy_exact,
    encode_meta,
    encode_name,
)

_DH1_HEAD = b"DESHEAD1\x01" + bytes(7)
_DH1_ENTRY = struct.Struct("<QQQQI")
_DH1_FOOTER = struct.Struct("<8sB7sQQQQQQQ")
_DH1_DATA_START = len(_DH1_HEAD)
_DH1_EXTERNAL = 0x01
DESHEAD1_MAX_META = 10 * 1024 * 1024  # the upstream HEAD writer's limit


class DesHead1Writer:
    """Writes one DESHEAD1 container: header, DATA, META, INDEX, 72-byte footer (§1)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = Output(out)
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
