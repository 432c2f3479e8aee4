"""The zstd seekable format: independent zstd frames, then a seek table at the end.

A slice of the decompressed stream decompresses only the frames it touches: one range
read of the file's tail gives the seek table, one more the frames. The layout is in
docs/formats/conduit.md (ConduitFlatFileDB `.dat.zst` files, written by pyzstd's
SeekableZstdFile). Pure: bytes in, values out; sizes claimed by the table are checked
against the file size before anything is allocated or requested by them.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

from desfs.errors import FormatError, PartialContainer

SEEK_TABLE_MAGIC = 0x184D2A5E  # the skippable-frame magic the seek table uses
SEEKABLE_MAGIC = 0x8F92EAB1  # the last 4 bytes of a seekable file
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SEEK_TABLE_HEADER = 8  # skippable magic, frame size
SEEK_TABLE_FOOTER = 9  # number of frames, descriptor, seekable magic
MIN_TABLE_SIZE = SEEK_TABLE_HEADER + SEEK_TABLE_FOOTER
CHECKSUM_FLAG = 0x80
RESERVED_BITS = 0x7C  # bits 1-0 are "unused": writers may set them, readers ignore them
# The most output one compressed byte can stand for: an RLE block is 4 bytes (3-byte
# header, 1 byte) and yields at most 128 KiB. A table entry claiming more is a lie, and
# refusing it keeps a 10-byte frame from making us allocate gigabytes.
MAX_EXPANSION = (128 << 10) // 4
MAX_STREAM_SIZE = 2**63 - 1  # st_size is a signed off_t

_HEADER = struct.Struct("<II")
_FOOTER = struct.Struct("<IBI")
_ENTRY = struct.Struct("<II")
_ENTRY_CHECKSUM = struct.Struct("<III")

# A frame names its own window size and the decoder allocates it; cap it by the frame's
# recorded size (within the usual zstd range) instead of trusting the header.
_MIN_WINDOW = 8 << 20
_MAX_WINDOW = 128 << 20


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: compressed bytes `[offset, offset + length)` of the file decompress to
    bytes `[start, start + size)` of the stream. `checksum` is the seek table's XXH64-low-32
    of those bytes, when the table has checksums."""

    index: int  # position in the seek table, for messages
    offset: int
    length: int
    start: int
    size: int
    checksum: int | None = None

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True, slots=True)
class SeekTable:
    """A parsed seek table.

    `frames` holds only the frames that carry decompressed bytes, in stream order, so
    their `start`s strictly increase; entries of size 0 (an empty frame, or a skippable
    frame a writer counted as one) are never read and are left out. `frame_count` counts
    every entry. `data_size` is the compressed bytes before the table; `size` is the
    decompressed size of the whole stream.
    """

    frames: tuple[Frame, ...]
    frame_count: int
    has_checksums: bool
    table_size: int
    data_size: int
    size: int


# A 0-byte file is a valid empty stream: pyzstd reads it so, and ConduitFlatFileDB
# creates its first compressed data file that way.
EMPTY_TABLE = SeekTable((), 0, False, 0, 0, 0)


def parse_seek_table_footer(tail: bytes, file_size: int) -> tuple[int, bool, int]:
    """(frame_count, has_checksums, table_size) from the last 9 bytes of `tail`, which
    ends at the end of a `file_size`-byte file. `table_size` is the whole seek table
    (header, entries, footer): fetch that many bytes from the end for `parse_seek_table`.

    Raises PartialContainer when the file does not end in the seekable magic (not a
    seekable file, or a writer is appending: the table is rewritten on close), and
    FormatError when the footer is malformed or its table cannot fit in the file.
    """
    if file_size == 0:
        return 0, False, 0
    if file_size < MIN_TABLE_SIZE:
        raise FormatError(f"seekable zstd: a {file_size}-byte file is shorter than a seek table")
    if len(tail) < SEEK_TABLE_FOOTER:
        raise FormatError(f"seekable zstd: need the last 9 bytes, got {len(tail)}")
    count, descriptor, magic = _FOOTER.unpack_from(tail, len(tail) - SEEK_TABLE_FOOTER)
    if magic != SEEKABLE_MAGIC:
        raise PartialContainer(
            f"seekable zstd: no seek table at the end of the {file_size}-byte file "
            f"(last 4 bytes {magic:08x}): not seekable, or a writer is appending"
        )
    at = file_size - SEEK_TABLE_FOOTER + 4
    if descriptor & RESERVED_BITS:
        raise FormatError(f"seekable zstd: descriptor at offset {at} sets reserved bits")
    has_checksums = bool(descriptor & CHECKSUM_FLAG)
    table_size = MIN_TABLE_SIZE + count * _entry(has_checksums).size
    if table_size > file_size:
        raise FormatError(
            f"seekable zstd: footer claims {count} frames, a {table_size}-byte seek table, "
            f"in a {file_size}-byte file"
        )
    return count, has_checksums, table_size


def parse_seek_table(tail: bytes, file_size: int) -> SeekTable:
    """The seek table of a `file_size`-byte file from `tail`, the file's last bytes (at
    least the `table_size` that `parse_seek_table_footer` gives; more is ignored)."""
    count, has_checksums, table_size = parse_seek_table_footer(tail, file_size)
    if file_size == 0:
        return EMPTY_TABLE
    if len(tail) < table_size:
        raise FormatError(f"seekable zstd: need the last {table_size} bytes, got {len(tail)}")
    table = memoryview(tail)[len(tail) - table_size :]
    magic, frame_size = _HEADER.unpack_from(table)
    at = file_size - table_size
    if magic != SEEK_TABLE_MAGIC:
        raise FormatError(f"seekable zstd: seek table at offset {at}: bad magic {magic:08x}")
    if frame_size != table_size - SEEK_TABLE_HEADER:
        raise FormatError(
            f"seekable zstd: seek table at offset {at}: frame size {frame_size}, "
            f"expected {table_size - SEEK_TABLE_HEADER} for {count} frames"
        )
    entries = table[SEEK_TABLE_HEADER : table_size - SEEK_TABLE_FOOTER]
    frames, size = _frames(entries, has_checksums, at)
    return SeekTable(tuple(frames), count, has_checksums, table_size, at, size)


def _entry(has_checksums: bool) -> struct.Struct:
    return _ENTRY_CHECKSUM if has_checksums else _ENTRY


def _frames(entries: memoryview, has_checksums: bool, data_size: int) -> tuple[list[Frame], int]:
    """Walk the entries; every running sum is checked against the bytes before the table."""
    frames: list[Frame] = []
    offset = start = 0
    for index, fields in enumerate(_entry(has_checksums).iter_unpack(entries)):
        length, size = fields[0], fields[1]
        checksum = fields[2] if has_checksums else None
        where = f"seekable zstd: frame {index} at offset {offset}"
        if size > length * MAX_EXPANSION:
            raise FormatError(f"{where}: {length} bytes cannot decompress to {size}")
        if offset + length > data_size:
            raise FormatError(f"{where}: {length} bytes run past the seek table at {data_size}")
        if size:
            frames.append(Frame(index, offset, length, start, size, checksum))
        offset += length
        start += size
    if offset != data_size:
        raise FormatError(
            f"seekable zstd: frames cover {offset} bytes, but the seek table starts at {data_size}"
        )
    if start > MAX_STREAM_SIZE:
        raise FormatError(f"seekable zstd: stream of {start} bytes is too large")
    return frames, start


def frames_for(table: SeekTable, offset: int, length: int) -> Sequence[Frame]:
    """The frames holding stream bytes `[offset, offset + length)`, in order; a range past
    the end of the stream is cut at it (so it may need no frame at all)."""
    if offset < 0 or length < 0:
        raise ValueError(f"bad range: offset {offset}, length {length}")
    end = min(offset + length, table.size)
    if offset >= end:
        return ()
    first = bisect_right(table.frames, offset, key=_start) - 1
    last = bisect_left(table.frames, end, key=_start)
    return table.frames[first:last]


def _start(frame: Frame) -> int:
    return frame.start


def span(frames: Sequence[Frame]) -> tuple[int, int]:
    """The compressed byte range `[start, end)` holding `frames` (from `frames_for`): one
    range read. Slice each frame's bytes at `frame.offset - start`."""
    if not frames:
        return 0, 0
    return frames[0].offset, frames[-1].offset + frames[-1].length


def decode_frame(data: bytes, frame: Frame) -> bytes:
    """The decompressed bytes of `frame`, given exactly its compressed bytes.

    Checks that they are one whole zstd frame ending exactly at `frame.length`, that it
    decodes to exactly `frame.size` bytes, that its own content checksum holds (zstd
    checks that while decoding) and that the seek table's checksum, if any, matches.
    """
    where = f"seekable zstd: frame {frame.index} at offset {frame.offset}"
    if len(data) != frame.length:
        raise FormatError(f"{where}: got {len(data)} bytes, expected {frame.length}")
    if data[:4] != ZSTD_MAGIC:
        raise FormatError(f"{where}: no zstd frame magic")
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where}: bad frame header: {exc}") from None
    # With a content size in its header the decoder allocates that size and ignores
    # max_output_size, so the header must agree before we decode.
    if params.content_size not in (zstandard.CONTENTSIZE_UNKNOWN, frame.size):
        raise FormatError(f"{where}: header says {params.content_size} bytes, table {frame.size}")
    window = min(max(frame.size, _MIN_WINDOW), _MAX_WINDOW)
    try:
        out = zstandard.ZstdDecompressor(max_window_size=window).decompress(
            data, max_output_size=frame.size, allow_extra_data=False
        )
    except zstandard.ZstdError as exc:
        # Also a frame that ends early or would decode to more than frame.size.
        raise FormatError(f"{where}: {exc}") from None
    if len(out) != frame.size:
        raise FormatError(f"{where}: decodes to {len(out)} bytes, expected {frame.size}")
    if frame.checksum is not None and _checksum(data, params, out) != frame.checksum:
        raise FormatError(f"{where}: seek table checksum {frame.checksum:08x} does not match")
    return out


def _checksum(data: bytes, params: zstandard.FrameParameters, out: bytes) -> int:
    """XXH64-low-32 of `out`: the same value a zstd frame stores as its content checksum
    (RFC 8878 §3.1.1), so take the frame's own (zstd verified it against `out`), or
    else have zstd compute it by compressing `out` (zstandard has no XXH64 call)."""
    if params.has_checksum:
        return int.from_bytes(data[-4:], "little")
    compressor = zstandard.ZstdCompressor(level=1, write_checksum=True, write_content_size=False)
    return int.from_bytes(compressor.compress(out)[-4:], "little")


def read(
    table: SeekTable, frames: Sequence[Frame], decoded: Sequence[bytes], offset: int, length: int
) -> bytes:
    """Stream bytes `[offset, offset + length)` (cut at the end of the stream) from
    `decoded`, the outputs of `decode_frame` for `frames_for(table, offset, length)`."""
    end = min(offset + length, table.size)
    if offset >= end:
        return b""
    if len(decoded) != len(frames) or not frames:
        raise ValueError("decoded must hold one output per frame")
    joined = b"".join(decoded)
    base = frames[0].start
    return joined[offset - base : end - base]
