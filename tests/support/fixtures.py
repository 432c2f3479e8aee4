"""Test containers: the upstream-written fixture cases, and a tiny byte builder for both formats.

The builder follows des-formats.md directly and lets a test override any field, so tests
can make the lying, overlapping and oversized containers no real writer produces. It is
deliberately independent of `desfs.format.writer`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Copied from the workspace's shared fixtures; a clone of the repository needs nothing beside it.
UPSTREAM = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"


def cases() -> list[Path]:
    """Every fixture case directory (`<format>/<case>/`), sorted."""
    return sorted(p.parent for p in UPSTREAM.glob("*/*/manifest.json"))


def load_manifest(case: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((case / "manifest.json").read_text("utf-8"))
    return result


def containers() -> list[Path]:
    """Every fixture container file, sorted."""
    return sorted(UPSTREAM.glob("**/*.des"))


def patch(data: bytes, offset: int, fmt: str, *values: int | bytes) -> bytes:
    """`data` with `struct.pack(fmt, *values)` written at `offset` (negative: from the end)."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset if offset >= 0 else len(out) + offset, *values)
    return bytes(out)


# --- Format A: DESHEAD1 -----------------------------------------------------------------


@dataclass
class AEntry:
    """One DESHEAD1 entry. External entries (flags bit 0) keep `data` out of the container
    but still record its length. Any `*_offset`/`*_length` given overrides the real one."""

    name: bytes
    data: bytes = b""
    meta: bytes = b""
    flags: int = 0
    data_offset: int | None = None
    data_length: int | None = None
    meta_offset: int | None = None
    meta_length: int | None = None


A_FOOTER = struct.Struct("<8sB7s7Q")


def build_deshead1(entries: Sequence[AEntry], file_count: int | None = None) -> bytes:
    data = bytearray()
    data_pos: list[int] = []
    for e in entries:
        data_pos.append(0 if e.flags & 1 else 16 + len(data))
        if not e.flags & 1:
            data += e.data
    meta_start = 16 + len(data)
    meta = bytearray()
    index = bytearray()
    for e, pos in zip(entries, data_pos, strict=True):
        meta_pos = meta_start + len(meta)
        meta += e.meta
        index += struct.pack("<H", len(e.name)) + e.name
        index += struct.pack(
            "<QQQQI",
            pos if e.data_offset is None else e.data_offset,
            len(e.data) if e.data_length is None else e.data_length,
            meta_pos if e.meta_offset is None else e.meta_offset,
            len(e.meta) if e.meta_length is None else e.meta_length,
            e.flags,
        )
    index_start = meta_start + len(meta)
    count = len(entries) if file_count is None else file_count
    footer = A_FOOTER.pack(
        b"DESFOOT1", 1, bytes(7), 16, len(data), meta_start, len(meta), index_start,
        len(index), count,
    )  # fmt: skip
    return b"DESHEAD1\x01" + bytes(7) + bytes(data) + bytes(meta) + bytes(index) + footer


# --- Format B: DES2 ---------------------------------------------------------------------


@dataclass
class BEntry:
    """One DES2 entry. Inline unless `bigfile_hash` is given. `size` is the uncompressed
    size (default: len(stored)); `offset`, `length`, `compressed_size` override."""

    name: bytes
    stored: bytes = b""
    codec: int = 0
    size: int | None = None
    meta: bytes = b""
    flags: int = 0
    bigfile_hash: bytes | None = None
    bigfile_size: int = 0
    offset: int | None = None
    length: int | None = None
    compressed_size: int | None = None


def build_des2(
    entries: Sequence[BEntry],
    version: int = 2,
    variant: str = "codec",
    entry_count: int | None = None,
    trailing: bytes = b"",
) -> bytes:
    """A DES2 container; `variant` picks the v1 layout ("codec" or "nocodec")."""
    data = bytearray()
    index = bytearray(struct.pack("<I", len(entries) if entry_count is None else entry_count))
    for e in entries:
        offset = 8 + len(data)
        if e.bigfile_hash is None:
            data += e.stored
        index += struct.pack("<H", len(e.name)) + e.name
        index += _b_entry_tail(e, offset, version, variant)
    index += trailing
    header = b"DES2" + bytes([version]) + bytes(3)
    return header + bytes(data) + bytes(index) + b"DESI" + struct.pack("<Q", len(index))


def _b_entry_tail(e: BEntry, offset: int, version: int, variant: str) -> bytes:
    off = offset if e.offset is None else e.offset
    length = len(e.stored) if e.length is None else e.length
    compressed = length if e.compressed_size is None else e.compressed_size
    size = len(e.stored) if e.size is None else e.size
    if version == 1 and variant == "nocodec":
        return struct.pack("<QQ", off, length)
    if version == 1:
        return struct.pack("<QQBQQ", off, length, e.codec, compressed, size)
    if e.bigfile_hash is not None:
        head = struct.pack("<BH", e.flags | 1, len(e.bigfile_hash)) + e.bigfile_hash
        return head + struct.pack("<QI", e.bigfile_size, len(e.meta)) + e.meta
    fixed = struct.pack("<BQQBQQI", e.flags, off, length, e.codec, compressed, size, len(e.meta))
    return fixed + e.meta
