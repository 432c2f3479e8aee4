"""s4db stores (PyPI `s4db`, read at 0.10.0 and 0.8.0; docs/formats/s4db.md).

A store is `<prefix>index.idx` plus data files of append-only records. The index is the
commit point and lists live keys only, so the live set is the index alone: tombstones and
superseded records inside data files are never consulted. A value is read by fetching
`[offset, offset + length)` of one data file and passing those bytes to `decode_value`.

Index damage raises FormatError; a bad record raises EntryError (that key alone is lost).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

import cramjam

from desfs.errors import EntryError, FormatError

INDEX_NAME = "index.idx"
INDEX_VERSIONS = (1, 2)
DATA_MAGIC = b"S4DB"
DATA_VERSIONS = (1, 2)
DATA_HEADER_SIZE = 9
RECORD_OVERHEAD = 13  # flags, key_len, value_len before the key; CRC32 after the value

FLAG_TOMBSTONE = 0x01
FLAG_RAW = 0x02  # value stored as is: Snappy would not have made it smaller
FLAG_BINARY = 0x04  # the writer was given bytes, not str; the stored bytes are the same
KNOWN_FLAGS = FLAG_TOMBSTONE | FLAG_RAW | FLAG_BINARY

MAX_OFFSET = 2**63 - 1  # a record must end where an off_t can still point
# Snappy's densest element is a 3-byte copy of 64 bytes: no valid stream expands more
# than 64/3 times, so a preamble claiming more is a lie we refuse before allocating.
SNAPPY_MAX_EXPANSION = 22

_INDEX_HEADER = struct.Struct(">BII")  # version, next_file_num, entry_count
_U16 = struct.Struct(">H")
_CRC = struct.Struct(">I")
_V2_FIXED = struct.Struct(">QQI")  # file_id, offset, length
_V1_FIXED = struct.Struct(">IQI")  # file_num, offset, length
_RECORD_HEAD = struct.Struct(">BII")  # flags, key_len, value_len
_DATA_HEADER = struct.Struct(">4sBI")  # magic, version, low 32 bits of the sequence
_DATA_NAME = re.compile(r"data_(?:([0-9a-f]{8})_)?([0-9]{6,})\.s4db", re.ASCII)


@dataclass(frozen=True, slots=True)
class S4Entry:
    """One live key: its record is bytes `[offset, offset + length)` of one data file.

    `key` is the key's UTF-8 bytes (checked to be valid UTF-8). `file_id` is the writer id
    in the high 32 bits and the writer's file sequence in the low 32 (writer 0 = legacy
    names). `length` spans the whole record (framing, key, value, CRC), not the value.
    """

    key: bytes
    file_id: int
    offset: int
    length: int

    @property
    def file_name(self) -> str:
        return data_file_name(self.file_id)

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def head_length(self) -> int:
        """How many leading record bytes `value_size` needs: framing, key, Snappy preamble."""
        return min(self.length - _CRC.size, _RECORD_HEAD.size + len(self.key) + 5)


@dataclass(frozen=True, slots=True)
class S4Index:
    """A parsed `index.idx`: the live keys in index order, each key once.

    `next_file_num` is the legacy writer-0 file counter; readers have no use for it.
    """

    version: int
    next_file_num: int
    entries: tuple[S4Entry, ...]

    def data_files(self) -> tuple[str, ...]:
        """The names of the data files that hold live records, sorted."""
        return tuple(sorted({entry.file_name for entry in self.entries}))


@dataclass(frozen=True, slots=True)
class S4DataHeader:
    version: int
    seq: int  # low 32 bits of the file's sequence; the writer id is only in the name


def parse_index(data: bytes) -> S4Index:
    """The live entries of a whole `index.idx` object; FormatError when it is damaged."""
    if len(data) < _INDEX_HEADER.size:
        raise FormatError(f"s4db index: {len(data)} bytes, shorter than the 9-byte header")
    version, next_file_num, count = _INDEX_HEADER.unpack_from(data)
    if version not in INDEX_VERSIONS:
        raise FormatError(f"s4db index at offset 0: unsupported version {version}")
    # Version 1 has no CRC; version 2 ends with a CRC32 of everything before it.
    end = _check_crc(data) if version == 2 else len(data)
    fixed = _V2_FIXED if version == 2 else _V1_FIXED
    room = end - _INDEX_HEADER.size
    if count * (_U16.size + fixed.size) > room:
        raise FormatError(
            f"s4db index at offset 5: entry_count {count} needs at least "
            f"{count * (_U16.size + fixed.size)} bytes, the index has {room}"
        )
    live: dict[bytes, S4Entry] = {}
    pos = _INDEX_HEADER.size
    for number in range(count):
        entry, pos = _read_entry(data, pos, end, fixed, number)
        # A repeated key replaces the earlier entry in its place, as s4db's own reader
        # (a dict) does; s4db's writer never repeats one.
        live[entry.key] = entry
    if pos != end:
        raise FormatError(f"s4db index: {end - pos} trailing bytes at offset {pos}")
    return S4Index(version, next_file_num, tuple(live.values()))


def _check_crc(data: bytes) -> int:
    """Where the CRC-covered body ends; FormatError unless the stored CRC32 matches."""
    end = len(data) - _CRC.size
    if end < _INDEX_HEADER.size:
        raise FormatError(f"s4db index: {len(data)} bytes, too short for a version 2 CRC")
    (stored,) = _CRC.unpack_from(data, end)
    actual = zlib.crc32(memoryview(data)[:end])
    if stored != actual:
        raise FormatError(
            f"s4db index: CRC32 of bytes [0, {end}) is {actual:08x}, the index says {stored:08x}"
        )
    return end


def _read_entry(
    data: bytes, pos: int, end: int, fixed: struct.Struct, number: int
) -> tuple[S4Entry, int]:
    if pos + _U16.size > end:
        raise FormatError(f"s4db index entry {number} at offset {pos} runs past the end {end}")
    key_end = pos + _U16.size + _U16.unpack_from(data, pos)[0]
    if key_end + fixed.size > end:
        raise FormatError(f"s4db index entry {number} at offset {pos} runs past the end {end}")
    key = bytes(data[pos + _U16.size : key_end])
    file_id, offset, length = fixed.unpack_from(data, key_end)
    problem = _entry_problem(key, offset, length)
    if problem is not None:
        raise FormatError(
            f"s4db index entry {number} at offset {pos} (key {key[:80]!r}): {problem}"
        )
    return S4Entry(key, file_id, offset, length), key_end + fixed.size


def _entry_problem(key: bytes, offset: int, length: int) -> str | None:
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return "the key is not valid UTF-8 (s4db itself refuses such an index)"
    if offset < DATA_HEADER_SIZE:
        return f"offset {offset} is inside the {DATA_HEADER_SIZE}-byte data file header"
    if length < RECORD_OVERHEAD + len(key):
        return f"length {length} cannot hold a record with a {len(key)}-byte key"
    if offset + length > MAX_OFFSET:
        return f"record [{offset}, +{length}) ends past the largest file offset"
    return None


def check_extent(entry: S4Entry, file_size: int) -> None:
    """EntryError when the entry's record does not lie inside a data file of `file_size`."""
    if entry.end > file_size:
        raise EntryError(
            f"{_where(entry)}: ends at {entry.end}, past the end of the {file_size}-byte data file"
        )


def value_size(head: bytes, entry: S4Entry) -> int:
    """The value's size from the first `entry.head_length` bytes of its record.

    The index does not record it, so this is the cheap way to a file size. Unverified: the
    CRC covers the whole record, so `decode_value` may still refuse the value later.
    """
    # Called once per key when a store opens: the message is made only on failure.
    if len(head) < entry.head_length or entry.length < RECORD_OVERHEAD:
        raise EntryError(
            f"{_where(entry)}: {len(head)} bytes, the record head needs {entry.head_length}"
        )
    flags, value_len, key_end = _frame(head, entry)
    if flags & FLAG_RAW:
        return value_len
    return _snappy_size(head[key_end : key_end + value_len], value_len, entry)[0]


def decode_value(stored: bytes, entry: S4Entry) -> bytes:
    """The value of `entry`, given the `entry.length` bytes at `entry.offset` of its file.

    Every check s4db makes (framing, CRC32, flags) plus what its reader leaves out: the
    record must hold the entry's own key, must not be a tombstone, and must decompress to
    exactly the size its Snappy preamble states. Raises EntryError otherwise.
    """
    where = _where(entry)
    if len(stored) != entry.length or len(stored) < RECORD_OVERHEAD:
        raise EntryError(f"{where}: {len(stored)} bytes, the index says {entry.length}")
    # The CRC comes first, as in s4db: damage then never reaches the decompressor.
    body_end = len(stored) - _CRC.size
    (stored_crc,) = _CRC.unpack_from(stored, body_end)
    actual = zlib.crc32(memoryview(stored)[:body_end])
    if stored_crc != actual:
        raise EntryError(f"{where}: CRC32 is {actual:08x}, the record says {stored_crc:08x}")
    flags, _, key_end = _frame(stored, entry)
    value = stored[key_end:body_end]
    return value if flags & FLAG_RAW else _unsnappy(value, entry)


def _where(entry: S4Entry) -> str:
    return f"s4db record of key {entry.key[:80]!r} at {entry.file_name}:{entry.offset}"


def _frame(record: bytes, entry: S4Entry) -> tuple[int, int, int]:
    """The flags, value_len and key end of a record that is the live value of `entry`."""
    flags, key_len, value_len = _RECORD_HEAD.unpack_from(record)
    if RECORD_OVERHEAD + key_len + value_len != entry.length:
        raise EntryError(
            f"{_where(entry)}: key_len {key_len} + value_len {value_len} disagree with the "
            f"{entry.length}-byte record the index describes"
        )
    if flags & ~KNOWN_FLAGS:
        raise EntryError(f"{_where(entry)}: unknown flag bits 0x{flags:02x}")
    if flags & FLAG_TOMBSTONE:
        raise EntryError(f"{_where(entry)}: the index points at a tombstone")
    key_end = _RECORD_HEAD.size + key_len
    # s4db's reader does not compare keys; we do, so a wrong offset cannot serve another key.
    if record[_RECORD_HEAD.size : key_end] != entry.key:
        raise EntryError(
            f"{_where(entry)}: the record holds key {record[_RECORD_HEAD.size : key_end][:80]!r}"
        )
    return flags, value_len, key_end


def _unsnappy(data: bytes, entry: S4Entry) -> bytes:
    """Raw (unframed) Snappy: a varint of the uncompressed size, then the elements."""
    size, _ = _snappy_size(data, len(data), entry)
    try:
        value = bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as exc:
        raise EntryError(f"{_where(entry)}: bad Snappy data: {exc}") from None
    if len(value) != size:
        where = _where(entry)
        raise EntryError(f"{where}: Snappy gave {len(value)} bytes, its preamble says {size}")
    return value


def _snappy_size(data: bytes, stream_len: int, entry: S4Entry) -> tuple[int, int]:
    """The size a Snappy stream of `stream_len` bytes claims and the preamble's length.

    The preamble is a little-endian base-128 varint below 2**32, at most 5 bytes long.
    """
    size = 0
    for at, byte in enumerate(data[:5]):
        size |= (byte & 0x7F) << (7 * at)
        if byte & 0x80:
            continue
        if size >= 2**32:
            break
        if size > SNAPPY_MAX_EXPANSION * (stream_len - at - 1):
            raise EntryError(
                f"{_where(entry)}: Snappy claims {size} bytes, "
                f"more than {stream_len - at - 1} bytes of Snappy can expand to"
            )
        return size, at + 1
    raise EntryError(f"{_where(entry)}: bad Snappy length preamble {data[:5].hex()}")


def parse_data_header(head: bytes) -> S4DataHeader:
    """The 9-byte header every data file starts with. Readers do not need it: it is for
    checking a whole file (its `seq` should equal the low half of the name's file id)."""
    if len(head) < DATA_HEADER_SIZE:
        raise FormatError(f"s4db data file: {len(head)} bytes, shorter than the 9-byte header")
    magic, version, seq = _DATA_HEADER.unpack_from(head)
    if magic != DATA_MAGIC:
        raise FormatError(f"s4db data file at offset 0: bad magic {magic!r}")
    if version not in DATA_VERSIONS:
        raise FormatError(f"s4db data file at offset 4: unsupported version {version}")
    return S4DataHeader(version, seq)


def data_file_name(file_id: int) -> str:
    """The object name (after the prefix) of data file `file_id`."""
    writer, seq = file_id >> 32, file_id & 0xFFFFFFFF
    return f"data_{seq:06d}.s4db" if writer == 0 else f"data_{writer:08x}_{seq:06d}.s4db"


def parse_data_file_name(name: str) -> int | None:
    """The file id a data file name encodes; None when `name` is not one, as written."""
    match = _DATA_NAME.fullmatch(name)
    if match is None:
        return None
    writer, seq = int(match[1] or "0", 16), int(match[2])
    file_id = writer << 32 | seq
    # Only the canonical spelling: it is the one name readers look up for this id.
    return file_id if seq < 2**32 and data_file_name(file_id) == name else None
