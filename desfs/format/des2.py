"""Format B (DES2/DESI, des-formats.md §2): header, footer and the three index layouts.

Version 2 and the two historical version 1 layouts ("codec", "nocodec") are parsed here.
Container-level damage raises FormatError; an entry with a bad codec, flag, hash, range
or metadata gets its own `error` and the others stay readable.
"""

from __future__ import annotations

import re
import struct
from array import array
from dataclasses import dataclass

from desfs.errors import EntryError, FormatError
from desfs.format.codecs import decode_meta
from desfs.format.model import DES_CODECS, Codec, ContainerIndex, Entry, External, Format
from desfs.format.table import EntryTable, compact, offsets

HEAD_MAGIC = b"DES2"
FOOT_MAGIC = b"DESI"
VERSIONS = (1, 2)
HEADER_SIZE = 8
FOOTER_SIZE = 12
MIN_SIZE = HEADER_SIZE + 4 + FOOTER_SIZE
FLAG_BIGFILE = 0x01

# Smallest possible entry of each layout (empty name, empty hash, no meta).
V2_MIN_ENTRY = 17
V1_CODEC_MIN_ENTRY = 35
V1_NOCODEC_MIN_ENTRY = 18

MAX_ENTRY_SIZE = 2**63 - 1  # st_size is a signed off_t

_HEADER = struct.Struct("<4sB3s")
_FOOTER = struct.Struct("<4sQ")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
# flags, offset, length, codec, compressed_size, uncompressed_size, meta_len
_V2_INLINE = struct.Struct("<BQQBQQI")
_BIG_TAIL = struct.Struct("<QI")  # bigfile_size, meta_len
_META_LEN = struct.Struct("<I")  # the last field of an inline entry, 34 bytes after the name
_V1_CODEC = struct.Struct("<QQBQQ")
_V1_NOCODEC = struct.Struct("<QQ")
_SHA256_HEX = re.compile(rb"[0-9a-f]{64}")
_CODEC_BY_ID = DES_CODECS


def parse_header(head: bytes) -> int:
    """The version (1 or 2) from the 8-byte header; FormatError when it is not DES2."""
    if len(head) < HEADER_SIZE:
        raise FormatError(f"DES2 header at offset 0: only {len(head)} of 8 bytes")
    magic, version, reserved = _HEADER.unpack_from(head)
    if magic != HEAD_MAGIC:
        raise FormatError(f"DES2 header at offset 0: bad magic {magic!r}")
    if version not in VERSIONS:
        raise FormatError(f"DES2 header at offset 4: unsupported version {version}")
    if reserved != b"\0\0\0":
        raise FormatError(f"DES2 header at offset 5: reserved bytes {reserved.hex()} are not 0")
    return int(version)


def read_footer(size: int, tail: bytes) -> int | None:
    """The index offset from the 12-byte footer at the end of `tail`.

    None when the DESI magic is absent; FormatError when it is present but the index
    it describes cannot fit between the header and the footer.
    """
    if size < MIN_SIZE or len(tail) < FOOTER_SIZE:
        return None
    magic, index_size = _FOOTER.unpack_from(tail, len(tail) - FOOTER_SIZE)
    if magic != FOOT_MAGIC:
        return None
    at = size - FOOTER_SIZE
    if index_size > size - HEADER_SIZE - FOOTER_SIZE:
        raise FormatError(
            f"DES2 footer at offset {at}: index_size {index_size} does not fit "
            f"in a {size}-byte object"
        )
    if index_size < 4:
        raise FormatError(f"DES2 footer at offset {at}: index_size {index_size} is below 4")
    return int(at - index_size)


def parse_index(
    version: int, size: int, index_offset: int, buf: bytes, base: int
) -> ContainerIndex:
    """Parse the index from `buf`, which holds the object's bytes from `base` on.

    `base` must be at most `index_offset` and `buf` must reach the end of the object.
    """
    start = index_offset - base
    (count,) = _U32.unpack_from(buf, start)
    span = _Span(buf, base, start + 4, size - FOOTER_SIZE - base, index_offset)
    variant = None
    if version == 2:
        starts = _scan_v2(span, count)

        bounds = (span.base, span.start, span.end, span.data_end)  # not the bytes: see table

        def decode(data: bytes, at: int, position: int) -> Entry:
            parsed = _v2_entry(_Span(data, *bounds), at, position)
            assert parsed is not None  # the scan proved every entry fits
            return parsed[0]

    else:
        starts, variant, layout = _scan_v1(span, count)
        data_end = span.data_end

        def decode(data: bytes, at: int, position: int) -> Entry:
            name_end = at + 2 + _U16.unpack_from(data, at)[0]
            fields = layout.unpack_from(data, name_end)
            return _v1_entry(data[at + 2 : name_end], position, fields, data_end)

    return ContainerIndex(
        format=Format.DES2,
        version=version,
        size=size,
        data_start=HEADER_SIZE,
        data_end=index_offset,
        index_start=index_offset,
        entries=EntryTable(buf, compact(starts), decode),
        variant=variant,
    )


@dataclass(frozen=True, slots=True)
class _Span:
    """The entries are `buf[start:end]`; buffer position p is object offset p + base."""

    buf: bytes
    base: int
    start: int
    end: int
    data_end: int  # == index_offset: every inline payload must end by here

    def fits(self, count: int, min_entry: int) -> bool:
        return count * min_entry <= self.end - self.start


def _scan_v2(span: _Span, count: int) -> array[int]:
    if not span.fits(count, V2_MIN_ENTRY):
        raise FormatError(
            f"DES2 index at offset {span.start - 4 + span.base}: entry_count {count} needs "
            f"at least {count * V2_MIN_ENTRY} bytes, the index has {span.end - span.start}"
        )
    starts = offsets()
    pos = span.start
    for position in range(count):
        after = _v2_next(span, pos)
        if after is None:
            raise FormatError(
                f"DES2 index entry {position} at offset {pos + span.base} runs past the "
                f"index end {span.end + span.base}"
            )
        starts.append(pos)
        pos = after
    if pos != span.end:
        raise FormatError(
            f"DES2 index: {span.end - pos} trailing bytes at offset {pos + span.base} "
            f"after {count} entries"
        )
    return starts


def _v2_next(span: _Span, pos: int) -> int | None:
    """Where the entry at `pos` ends; None when it runs past the index."""
    buf, end = span.buf, span.end
    if end - pos < 3:
        return None
    name_end = pos + 2 + _U16.unpack_from(buf, pos)[0]
    if name_end >= end:
        return None
    if buf[name_end] & FLAG_BIGFILE:
        hash_at = name_end + 1
        if hash_at + 2 > end:
            return None
        hash_end = hash_at + 2 + _U16.unpack_from(buf, hash_at)[0]
        if hash_end + _BIG_TAIL.size > end:
            return None
        after = hash_end + _BIG_TAIL.size + _BIG_TAIL.unpack_from(buf, hash_end)[1]
    else:
        if name_end + _V2_INLINE.size > end:
            return None
        after = name_end + _V2_INLINE.size + _META_LEN.unpack_from(buf, name_end + 34)[0]
    return after if after <= end else None


def _v2_entry(span: _Span, pos: int, position: int) -> tuple[Entry, int] | None:
    """The entry at `pos` and the position after it; None when it runs past the index."""
    buf, end = span.buf, span.end
    if end - pos < 3:
        return None
    name_end = pos + 2 + _U16.unpack_from(buf, pos)[0]
    if name_end >= end:
        return None
    name = buf[pos + 2 : name_end]
    if buf[name_end] & FLAG_BIGFILE:
        return _v2_bigfile(span, name, name_end, position)
    if name_end + _V2_INLINE.size > end:
        return None
    flags, offset, length, codec, compressed, size, meta_len = _V2_INLINE.unpack_from(buf, name_end)
    meta_at = name_end + _V2_INLINE.size
    next_pos = meta_at + meta_len
    if next_pos > end:
        return None
    meta = buf[meta_at:next_pos]
    error = f"flags 0x{flags:02x} set unknown bits" if flags else None
    error = error or _inline_error(span.data_end, offset, length, codec, compressed)
    error = error or _size_error(codec, length, size)
    if meta and error is None:
        error = _meta_error(meta)
    entry = Entry(name, position, size, offset, length, _codec(codec), meta, None, False, error)
    return entry, next_pos


def _v2_bigfile(span: _Span, name: bytes, flags_at: int, position: int) -> tuple[Entry, int] | None:
    buf, end = span.buf, span.end
    pos = flags_at + 1
    if pos + 2 > end:
        return None
    hash_end = pos + 2 + _U16.unpack_from(buf, pos)[0]
    if hash_end + _BIG_TAIL.size > end:
        return None
    digest = buf[pos + 2 : hash_end]
    size, meta_len = _BIG_TAIL.unpack_from(buf, hash_end)
    meta_at = hash_end + _BIG_TAIL.size
    next_pos = meta_at + meta_len
    if next_pos > end:
        return None
    meta = buf[meta_at:next_pos]
    flags = buf[flags_at]
    valid = _SHA256_HEX.fullmatch(digest) is not None
    error = f"flags 0x{flags:02x} set unknown bits" if flags & ~FLAG_BIGFILE else None
    if not valid:
        error = error or f"BigFile hash {digest[:80]!r} is not 64 lowercase hex digits"
    if size > MAX_ENTRY_SIZE:
        error = error or f"BigFile size {size} is too large"
    external = External(sha256=digest.decode("ascii") if valid else None)
    entry = Entry(name, position, size, 0, 0, Codec.NONE, meta, external, False, error)
    return entry, next_pos


def _codec(codec: int) -> Codec:
    return _CODEC_BY_ID[codec] if codec < len(_CODEC_BY_ID) else Codec.NONE


def _inline_error(
    data_end: int, offset: int, length: int, codec: int, compressed: int
) -> str | None:
    if codec >= len(_CODEC_BY_ID):
        return f"unknown codec {codec}"
    if length != compressed:
        return f"length {length} differs from compressed_size {compressed}"
    if not HEADER_SIZE <= offset <= data_end - length:
        return (
            f"payload [{offset}, +{length}) is outside the data section [{HEADER_SIZE}, {data_end})"
        )
    return None


def _size_error(codec: int, length: int, uncompressed: int) -> str | None:
    if codec == 0 and uncompressed != length:
        return f"codec none but uncompressed_size {uncompressed} differs from length {length}"
    if uncompressed > MAX_ENTRY_SIZE:
        return f"uncompressed_size {uncompressed} is too large"
    return None


def _meta_error(meta: bytes) -> str | None:
    try:
        decode_meta(meta)
    except EntryError as exc:
        return str(exc)
    return None


def _scan_v1(span: _Span, count: int) -> tuple[array[int], str, struct.Struct]:
    """Try the "codec" layout, then "nocodec"; keep the one that fits the index exactly."""
    for variant, layout, min_entry in (
        ("codec", _V1_CODEC, V1_CODEC_MIN_ENTRY),
        ("nocodec", _V1_NOCODEC, V1_NOCODEC_MIN_ENTRY),
    ):
        if span.fits(count, min_entry):
            starts = _v1_starts(span, count, layout)
            if starts is not None:
                return starts, variant, layout
    raise FormatError(
        f"DES2 v1 index at offset {span.start - 4 + span.base} with entry_count {count} "
        f"fits neither the codec nor the nocodec layout in {span.end - span.start + 4} bytes"
    )


def _v1_starts(span: _Span, count: int, layout: struct.Struct) -> array[int] | None:
    """The entry starts in `layout`, or None unless it fits exactly with in-range payloads."""
    buf, end, data_end = span.buf, span.end, span.data_end
    starts = offsets()
    pos = span.start
    for _ in range(count):
        if end - pos < 2:
            return None
        name_end = pos + 2 + _U16.unpack_from(buf, pos)[0]
        if name_end + layout.size > end:
            return None
        fields = layout.unpack_from(buf, name_end)
        if not HEADER_SIZE <= fields[0] <= data_end - fields[1]:
            return None
        starts.append(pos)
        pos = name_end + layout.size
    return starts if pos == end else None


def _v1_entry(name: bytes, position: int, fields: tuple[int, ...], data_end: int) -> Entry:
    if len(fields) == 2:
        offset, length = fields
        return Entry(name, position, length, offset, length)
    offset, length, codec, compressed, size = fields
    error = _inline_error(data_end, offset, length, codec, compressed)
    error = error or _size_error(codec, length, size)
    return Entry(name, position, size, offset, length, _codec(codec), error=error)
