"""datas3t2 dataranges (docs/formats/datas3t2.md): object keys, the index, TAR headers.

A datarange is a TAR of datapoints `%020d.<ext>` plus an index of 16 bytes per
datapoint. Everything here is pure: bytes in, frozen dataclasses out. Damage to a
datarange as a whole raises FormatError; damage to one datapoint's header raises
EntryError (a FormatError), so the caller may hide that datapoint and keep the rest.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

import zstandard

from desfs.errors import EntryError, FormatError

BLOCK = 512
END_OF_ARCHIVE = 2 * BLOCK  # two zero blocks close every TAR that archive/tar writes
RECORD_SIZE = 16
MAX_KEY = 2**63 - 1  # datapoint keys are Go int64 and Postgres BIGINT upstream
MAX_OFFSET = 2**63 - 1  # st_size and read offsets are a signed off_t
# The index is read into memory whole; a key naming more datapoints than this is
# refused before anything is decompressed (upstream has no limit of its own).
MAX_RECORDS = 1 << 20

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_MAX_WINDOW = 128 << 20

_KEY_NAME = re.compile(r"([0-9]{20})-([0-9]{20})\.(tar|index\.zst)")
_DATASET = re.compile(r"[A-Za-z0-9_-]+")
_DATAPOINT = re.compile(r"([0-9]{20})\.([^.]*)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RECORD = struct.Struct(">QH6s")

# Type flags of a datapoint: archive/tar writes "0"; NUL is the old spelling of it.
_REGULAR = frozenset({"0", "\0"})
# PAX and GNU long-name headers: their payload names the next member, so the member
# spans more than the one header block that datas3t2's index always records.
_EXTENDED = frozenset({"x", "g", "L", "K"})
_USTAR = b"ustar\x0000"
_GNU = b"ustar  \x00"
_V7 = b"\0" * 8


@dataclass(frozen=True, slots=True)
class DatarangeName:
    """A datarange object's file name: datapoints first..last (inclusive), and which
    of the pair it is ("tar" or "index")."""

    first: int
    last: int
    kind: str

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """One datapoint as the index describes it; `key` is first + its position."""

    key: int
    header_offset: int
    header_blocks: int
    size: int


@dataclass(frozen=True, slots=True)
class TarMember:
    """The fields of one TAR header that desfs uses; `name` is the raw bytes."""

    name: bytes
    size: int
    typeflag: str
    mtime: int


def datarange_keys(dataset: str, first: int, last: int) -> tuple[str, str]:
    """The object keys of the TAR and of the index of a datarange."""
    if not _DATASET.fullmatch(dataset):
        raise FormatError(f"datas3t2 dataset name {dataset!r} is not [A-Za-z0-9_-]+")
    _check_range(first, last, "datarange")
    stem = f"datas3t/{dataset}/dataranges/{first:020d}-{last:020d}"
    return f"{stem}.tar", f"{stem}.index.zst"


def parse_datarange_key(name: str) -> DatarangeName | None:
    """The range named by an object key (or its last component).

    None when the name is not shaped like a datarange object at all (some other
    object: ignore it). FormatError when it is shaped like one but names an impossible
    range (first > last, or a key past int64).
    """
    match = _KEY_NAME.fullmatch(name.rpartition("/")[2])
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    _check_range(first, last, f"datarange key {name!r}")
    return DatarangeName(first, last, "tar" if match[3] == "tar" else "index")


def parse_index(
    data: bytes,
    first: int,
    last: int,
    tar_size: int | None,
    *,
    max_records: int = MAX_RECORDS,
) -> tuple[IndexRecord, ...]:
    """The records of the index object of datarange first..last.

    `data` is the index object as stored: raw 16-byte records (what datas3t2 writes,
    despite the `.zst` name) or one zstd stream of them. `tar_size`, when known, is
    the TAR object's size, and every record's header and data must lie inside it.
    """
    _check_range(first, last, "index")
    count = last - first + 1
    if count > max_records:
        raise FormatError(
            f"datas3t2 index {first}-{last}: {count} datapoints exceed the limit of {max_records}"
        )
    raw = _index_bytes(data, count * RECORD_SIZE, first, last)
    limit = MAX_OFFSET if tar_size is None else tar_size
    records: list[IndexRecord] = []
    free_from = 0  # the first TAR byte not taken by an earlier record
    for i in range(count):
        record = _record(raw, i, first + i)
        free_from = _check_record(record, free_from, limit, tar_size is not None)
        records.append(record)
    return tuple(records)


def data_range(record: IndexRecord) -> tuple[int, int]:
    """(offset, length) of the datapoint's bytes in the TAR. Length 0 means nothing
    to fetch: a zero-length range request is invalid HTTP."""
    return record.header_offset + record.header_blocks * BLOCK, record.size


def tar_size_for(records: tuple[IndexRecord, ...]) -> int:
    """The TAR size datas3t2 requires for these records when it completes an upload:
    the last datapoint's padded end plus the end-of-archive blocks."""
    start, length = data_range(records[-1])
    return start + _padded(length) + END_OF_ARCHIVE


def header_range(record: IndexRecord) -> tuple[int, int]:
    """(offset, length) of the datapoint's header blocks in the TAR."""
    return record.header_offset, record.header_blocks * BLOCK


def parse_tar_header(blocks: bytes, at: int | None = None) -> TarMember:
    """The one 512-byte header block of a datapoint; `at` is its TAR offset, for messages.

    PAX and GNU long-name headers are refused: datas3t2's index records one header
    block per datapoint and cannot describe them (docs/formats/datas3t2.md).
    """
    where = "TAR header" if at is None else f"TAR header at offset {at}"
    if len(blocks) != BLOCK:
        raise EntryError(f"{where}: {len(blocks)} bytes, expected one {BLOCK}-byte block")
    if blocks == bytes(BLOCK):
        raise EntryError(f"{where}: a zero block (end of archive), not a header")
    _check_checksum(blocks, where)
    magic = blocks[257:265]
    if magic not in (_USTAR, _GNU, _V7):
        raise EntryError(f"{where}: unknown magic {magic!r}")
    typeflag = chr(blocks[156])
    if typeflag in _EXTENDED:
        raise EntryError(
            f"{where}: type {typeflag!r} is a PAX/GNU extended header; "
            "the datas3t2 index counts one header block and cannot describe it"
        )
    name = _cstring(blocks[0:100])
    prefix = _cstring(blocks[345:500]) if magic == _USTAR else b""
    if prefix:
        name = prefix + b"/" + name
    size = _number(blocks[124:136], "size", where)
    mtime = _number(blocks[136:148], "mtime", where)
    return TarMember(name=name, size=size, typeflag=typeflag, mtime=mtime)


def verify_member(record: IndexRecord, member: TarMember) -> str:
    """The datapoint's file name, once its header agrees with its index record."""
    where = f"datapoint {record.key} (TAR header at offset {record.header_offset})"
    if member.typeflag not in _REGULAR:
        raise EntryError(f"{where}: type {member.typeflag!r} is not a regular file")
    if member.size != record.size:
        raise EntryError(f"{where}: header size {member.size}, index size {record.size}")
    return datapoint_name(member.name, record.key)


def datapoint_name(name: bytes, key: int) -> str:
    """`name` as a file name, if it is exactly `%020d.<ext>` for `key`.

    The extension is what upstream accepts after the only dot: anything but a dot.
    desfs also refuses slashes (absolute or nested names), NUL and control characters,
    and names that are not UTF-8.
    """
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise EntryError(f"datapoint {key}: name {name!r} is not UTF-8") from None
    if "/" in text or text in (".", ".."):
        raise EntryError(f"datapoint {key}: name {text!r} is a path, not a file name")
    if _CONTROL.search(text):
        raise EntryError(f"datapoint {key}: name {text!r} has a control character")
    match = _DATAPOINT.fullmatch(text)
    if match is None:
        raise EntryError(f"datapoint {key}: name {text!r} is not %020d.<ext>")
    if int(match[1]) != key:
        raise EntryError(f"datapoint {key}: name {text!r} belongs to datapoint {int(match[1])}")
    return text


def _check_range(first: int, last: int, what: str) -> None:
    if not 0 <= first <= MAX_KEY or not 0 <= last <= MAX_KEY:
        raise FormatError(f"datas3t2 {what}: {first}-{last} is outside 0..{MAX_KEY}")
    if first > last:
        raise FormatError(f"datas3t2 {what}: first {first} is after last {last}")


def _index_bytes(data: bytes, want: int, first: int, last: int) -> bytes:
    """The raw records: `data` itself, or its zstd stream decoded to at most want + 1
    bytes, so a claimed content size or a bomb never sets how much is allocated."""
    where = f"datas3t2 index {first}-{last}"
    if data[:4] == ZSTD_MAGIC:
        data = _unzstd(data, want + 1, where)
    if len(data) != want:
        raise FormatError(
            f"{where}: {len(data)} bytes of records, the key names "
            f"{want // RECORD_SIZE} datapoints ({want} bytes)"
        )
    return data


def _unzstd(data: bytes, limit: int, where: str) -> bytes:
    window = min(max(limit, 1 << 20), _ZSTD_MAX_WINDOW)
    decompressor = zstandard.ZstdDecompressor(max_window_size=window)
    out = bytearray()
    try:
        with decompressor.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
            while len(out) < limit:
                chunk = reader.read(limit - len(out))
                if not chunk:
                    break
                out += chunk
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where}: corrupt zstd stream: {exc}") from None
    return bytes(out)


def _record(raw: bytes, i: int, key: int) -> IndexRecord:
    position, blocks, size = _RECORD.unpack_from(raw, i * RECORD_SIZE)
    return IndexRecord(key, position, blocks, int.from_bytes(size, "big"))


def _check_record(record: IndexRecord, free_from: int, limit: int, sized: bool) -> int:
    """FormatError unless `record` is aligned, after the previous one and inside the
    TAR; returns the first byte after its padded data."""
    at = f"datas3t2 index record of datapoint {record.key}"
    pos = record.header_offset
    if pos % BLOCK:
        raise FormatError(f"{at}: header offset {pos} is not a multiple of {BLOCK}")
    if record.header_blocks != 1:
        # archive/tar headers datas3t2 accepts are one block; tarindex always writes 1.
        raise FormatError(f"{at}: {record.header_blocks} header blocks, datas3t2 writes 1")
    if pos < free_from:
        raise FormatError(
            f"{at}: header offset {pos} is before the end of the previous datapoint ({free_from})"
        )
    start, length = data_range(record)
    if start + length > limit:
        inside = f"the {limit}-byte TAR" if sized else "an off_t"
        raise FormatError(f"{at}: header at {pos} with {length} data bytes does not fit {inside}")
    return start + _padded(length)


def _padded(length: int) -> int:
    return -(-length // BLOCK) * BLOCK


def _check_checksum(block: bytes, where: str) -> None:
    stored = _number(block[148:156], "checksum", where)
    summed = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(summed)
    if stored == unsigned:
        return
    # Old writers summed signed chars; archive/tar and GNU tar accept either sum.
    if stored != unsigned - 256 * sum(b > 127 for b in summed):
        raise EntryError(f"{where}: checksum {stored} does not match the header ({unsigned})")


def _number(field: bytes, what: str, where: str) -> int:
    """A numeric header field: octal digits padded with NUL or spaces, or GNU base-256
    (high bit of the first byte set) for values too big for octal."""
    if field[:1] and field[0] & 0x80:
        if field[0] == 0xFF:
            raise EntryError(f"{where}: {what} is negative")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    digits = field.strip(b"\0 ")
    if not digits:
        return 0
    if not all(0x30 <= b <= 0x37 for b in digits):
        raise EntryError(f"{where}: {what} field {field!r} is not octal")
    return int(digits, 8)


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]
