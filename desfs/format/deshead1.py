"""Format A (DESHEAD1/DESFOOT1, des-formats.md §1): footer validation and index parsing.

Container-level damage raises FormatError; damage confined to one entry (flags, metadata,
payload range) becomes that entry's `error` and the rest of the container stays readable.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass

from desfs.errors import EntryError, FormatError
from desfs.format.codecs import decode_meta
from desfs.format.model import Codec, ContainerIndex, Entry, External, Format
from desfs.format.table import EntryTable, compact, offsets

HEAD_MAGIC = b"DESHEAD1"
FOOT_MAGIC = b"DESFOOT1"
VERSION = 1
HEADER_SIZE = 16
FOOTER_SIZE = 72
MIN_SIZE = HEADER_SIZE + FOOTER_SIZE
ENTRY_MIN_SIZE = 38  # u16 name_len + empty name + 4 x u64 + u32

FLAG_EXTERNAL = 0x01
FLAG_COMPRESSED = 0x02
FLAG_ENCRYPTED = 0x04
FLAG_DELETED = 0x08
_HONOURED_FLAGS = FLAG_EXTERNAL | FLAG_DELETED

# st_size is a signed 64-bit off_t; a larger logical size cannot be shown.
MAX_ENTRY_SIZE = 2**63 - 1

_FOOTER = struct.Struct("<8sB7s7Q")
_NAME_LEN = struct.Struct("<H")
_FIXED = struct.Struct("<QQQQI")
_FLAGS = struct.Struct("<I")  # the last field of an entry, 32 bytes after its name


@dataclass(frozen=True, slots=True)
class Footer:
    """The region table of a DESHEAD1 container, already checked against its size."""

    data_start: int
    data_length: int
    meta_start: int
    meta_length: int
    index_start: int
    index_length: int
    file_count: int


def has_footer_magic(size: int, tail: bytes) -> bool:
    """Whether the last 72 bytes (present in `tail`) start with the DESFOOT1 magic."""
    if size < MIN_SIZE or len(tail) < FOOTER_SIZE:
        return False
    start = len(tail) - FOOTER_SIZE
    return tail[start : start + len(FOOT_MAGIC)] == FOOT_MAGIC


def check_header(head: bytes) -> None:
    """Validate the 16-byte header; the version byte is checked when `head` holds it."""
    if head[: len(HEAD_MAGIC)] != HEAD_MAGIC:
        raise FormatError(f"DESHEAD1 header at offset 0: bad magic {head[:8]!r}")
    if len(head) > 8 and head[8] != VERSION:
        raise FormatError(f"DESHEAD1 header at offset 8: unsupported version {head[8]}")


def parse_footer(raw: bytes, size: int) -> Footer:
    """Parse the 72-byte footer of a `size`-byte object and check every region bound."""
    at = size - FOOTER_SIZE
    if size < MIN_SIZE or len(raw) != FOOTER_SIZE:
        raise FormatError(f"DESHEAD1 object of {size} bytes is shorter than {MIN_SIZE}")
    magic, version, _reserved, *fields = _FOOTER.unpack(raw)
    if magic != FOOT_MAGIC:
        raise FormatError(f"DESHEAD1 footer at offset {at}: bad magic {magic!r}")
    if version != VERSION:
        raise FormatError(f"DESHEAD1 footer at offset {at + 8}: unsupported version {version}")
    footer = Footer(*fields)
    _check_regions(footer, at)
    return footer


def _check_regions(f: Footer, footer_at: int) -> None:
    # Python integers cannot wrap, and every sum is compared with a bound at most
    # `size`, so no u64 overflow can sneak past these equalities.
    where = f"DESHEAD1 footer at offset {footer_at}"
    if f.data_start != HEADER_SIZE:
        raise FormatError(f"{where}: data_start {f.data_start} is not {HEADER_SIZE}")
    if f.data_start + f.data_length != f.meta_start:
        raise FormatError(
            f"{where}: data region [{f.data_start}, +{f.data_length}) "
            f"does not end at meta_start {f.meta_start}"
        )
    if f.meta_start + f.meta_length != f.index_start:
        raise FormatError(
            f"{where}: meta region [{f.meta_start}, +{f.meta_length}) "
            f"does not end at index_start {f.index_start}"
        )
    if f.index_start + f.index_length != footer_at:
        raise FormatError(
            f"{where}: index region [{f.index_start}, +{f.index_length}) does not end at the footer"
        )
    if f.file_count * ENTRY_MIN_SIZE > f.index_length:
        raise FormatError(
            f"{where}: file_count {f.file_count} cannot fit in an index of {f.index_length} bytes"
        )


def parse_index(footer: Footer, size: int, buf: bytes, base: int) -> ContainerIndex:
    """Parse META and INDEX from `buf`, which holds the object's bytes from `base` on.

    `base` must be at most `footer.meta_start` and `buf` must reach the footer. Only the
    entry boundaries are read now; each entry is built (and checked) when asked for.
    """
    starts = _scan_entries(footer, buf, base)
    regions = _Regions.of(footer)

    def decode(data: bytes, start: int, position: int) -> Entry:
        return _decode(data, start, position, regions, base)

    return ContainerIndex(
        format=Format.DESHEAD1,
        version=VERSION,
        size=size,
        data_start=footer.data_start,
        data_end=footer.meta_start,
        index_start=footer.meta_start,
        entries=EntryTable(buf, compact(starts), decode, _deleted),
    )


def _scan_entries(footer: Footer, buf: bytes, base: int) -> array[int]:
    pos = footer.index_start - base
    end = pos + footer.index_length
    starts = offsets()
    unpack_len = _NAME_LEN.unpack_from
    fixed_size = _FIXED.size
    while pos < end:
        # The footer follows the index in `buf`, so this u16 read stays in bounds even
        # when fewer than 2 index bytes remain; the check below rejects such an entry.
        name_end = pos + 2 + unpack_len(buf, pos)[0]
        if name_end + fixed_size > end:
            raise FormatError(
                f"DESHEAD1 index entry {len(starts)} at offset {pos + base} runs past the "
                f"index end {end + base}"
            )
        starts.append(pos)
        pos = name_end + fixed_size
    if len(starts) != footer.file_count:
        raise FormatError(
            f"DESHEAD1 index at offset {footer.index_start}: holds {len(starts)} entries, "
            f"footer file_count says {footer.file_count}"
        )
    return starts


def _deleted(buf: bytes, start: int) -> bool:
    name_end = start + 2 + _NAME_LEN.unpack_from(buf, start)[0]
    return bool(_FLAGS.unpack_from(buf, name_end + 32)[0] & FLAG_DELETED)


def _decode(buf: bytes, start: int, position: int, regions: _Regions, base: int) -> Entry:
    name_end = start + 2 + _NAME_LEN.unpack_from(buf, start)[0]
    fields = _FIXED.unpack_from(buf, name_end)
    return _entry(position, buf[start + 2 : name_end], fields, regions, buf, base)


@dataclass(frozen=True, slots=True)
class _Regions:
    """The DATA and META bounds every entry is checked against."""

    data_start: int
    data_end: int
    meta_start: int
    meta_end: int

    @classmethod
    def of(cls, f: Footer) -> _Regions:
        return cls(f.data_start, f.meta_start, f.meta_start, f.index_start)


def _entry(
    position: int,
    name: bytes,
    fields: tuple[int, int, int, int, int],
    regions: _Regions,
    buf: bytes,
    base: int,
) -> Entry:
    data_offset, data_length, meta_offset, meta_length, flags = fields
    meta, error, hint = b"", None, None
    if meta_length:
        meta, error, hint = _meta(meta_offset, meta_length, regions, buf, base)
    if flags & ~_HONOURED_FLAGS:
        error = error or f"flags 0x{flags:08x} set compressed, encrypted or unknown bits"
    external = None
    offset, stored = data_offset, data_length
    if flags & FLAG_EXTERNAL:
        external = External(key_hint=hint)
        offset = stored = 0
        if data_length > MAX_ENTRY_SIZE:
            error = error or f"size {data_length} is too large"
    elif not regions.data_start <= data_offset <= regions.data_end - data_length:
        error = error or (
            f"payload [{data_offset}, +{data_length}) is outside the data region "
            f"[{regions.data_start}, {regions.data_end})"
        )
    deleted = bool(flags & FLAG_DELETED)
    return Entry(
        name, position, data_length, offset, stored, Codec.NONE, meta, external, deleted, error
    )


def _meta(
    offset: int, length: int, regions: _Regions, buf: bytes, base: int
) -> tuple[bytes, str | None, str | None]:
    """The entry's meta bytes, the problem with them if any, and its `external_key`."""
    if not regions.meta_start <= offset <= regions.meta_end - length:
        return (
            b"",
            f"metadata [{offset}, +{length}) is outside the meta region "
            f"[{regions.meta_start}, {regions.meta_end})",
            None,
        )
    raw = buf[offset - base : offset - base + length]
    try:
        value = decode_meta(raw)
    except EntryError as exc:
        return raw, str(exc), None
    hint = value.get("external_key")
    return raw, None, hint if isinstance(hint, str) else None
