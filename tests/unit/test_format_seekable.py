"""The zstd seekable codec: real ConduitFlatFileDB files, then hand-made damage.

Fixtures: tests/fixtures/stores/conduit (written by the upstream writer; see its README).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
import zstandard

from desfs.errors import FormatError, PartialContainer
from desfs.format import seekable
from desfs.format.seekable import (
    EMPTY_TABLE,
    SEEK_TABLE_FOOTER,
    Frame,
    SeekTable,
    decode_frame,
    frames_for,
    parse_seek_table,
    parse_seek_table_footer,
    span,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stores" / "conduit"
COMPRESSED_CASES = ["compressed", "compressed-small-frames", "rollover"]
TAIL = 64  # what a first tail read fetches before it knows the table size


def _manifest(case: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((FIXTURES / case / "manifest.json").read_text())
    return manifest


def _file(case: str, name: str) -> bytes:
    return (FIXTURES / case / "datadir" / name).read_bytes()


def _table(data: bytes) -> SeekTable:
    """As the engine will: the footer from a short tail, then the table from a longer one."""
    _, _, table_size = parse_seek_table_footer(data[-TAIL:], len(data))
    return parse_seek_table(data[-max(table_size, TAIL) :], len(data))


def _read(data: bytes, table: SeekTable, offset: int, length: int) -> bytes:
    """One range read for the frames, each frame decoded on its own."""
    frames = frames_for(table, offset, length)
    start, end = span(frames)
    chunk = data[start:end]
    decoded = [
        decode_frame(chunk[f.offset - start : f.offset - start + f.length], f) for f in frames
    ]
    return seekable.read(table, frames, decoded, offset, length)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- real files ------------------------------------------------------------------------


@pytest.mark.parametrize("case", COMPRESSED_CASES)
def test_every_blob_reads_back_with_the_writers_sha256(case: str) -> None:
    manifest = _manifest(case)
    blobs = manifest["blobs"]
    assert blobs
    tables = {f["name"]: _table(_file(case, f["name"])) for f in manifest["files"]}
    for blob in blobs:
        data = _file(case, blob["file"])
        got = _read(data, tables[blob["file"]], blob["start_offset"], blob["length"])
        assert len(got) == blob["length"]
        assert _sha(got) == blob["sha256"], blob


@pytest.mark.parametrize("case", COMPRESSED_CASES)
def test_tables_agree_with_pyzstd(case: str) -> None:
    for record in _manifest(case)["files"]:
        data = _file(case, record["name"])
        table = _table(data)
        info = record["pyzstd_seek_table_info"]
        assert table.frame_count == info["frames"]
        assert table.data_size == info["compressed_size"]
        assert table.size == info["decompressed_size"] == record["upstream_uncompressed_size"]
        assert table.table_size == len(data) - table.data_size
        assert not table.has_checksums  # pyzstd never writes table checksums


@pytest.mark.parametrize("case", COMPRESSED_CASES)
def test_the_stream_is_the_blobs_back_to_back(case: str) -> None:
    manifest = _manifest(case)
    for record in manifest["files"]:
        data = _file(case, record["name"])
        table = _table(data)
        whole = _read(data, table, 0, table.size)
        blobs = [b for b in manifest["blobs"] if b["file"] == record["name"]]
        at = 0
        for blob in blobs:
            assert blob["start_offset"] == at
            assert _sha(whole[at : blob["end_offset"]]) == blob["sha256"]
            at = blob["end_offset"]
        assert at == table.size == len(whole)


def test_a_blob_needs_only_its_own_frame() -> None:
    # Upstream flushes a frame per put/put_many, so a BLOB never straddles frames there.
    case = "compressed"
    tables = {f["name"]: _table(_file(case, f["name"])) for f in _manifest(case)["files"]}
    for blob in _manifest(case)["blobs"]:
        frames = frames_for(tables[blob["file"]], blob["start_offset"], blob["length"])
        assert len(frames) == (1 if blob["length"] else 0)


def test_small_frames_split_blobs_and_reads_take_only_the_frames_touched() -> None:
    case = "compressed-small-frames"
    name = "data_00000000.dat.zst"
    data = _file(case, name)
    table = _table(data)
    assert len(table.frames) > 3
    spanning = [
        b
        for b in _manifest(case)["blobs"]
        if b["file"] == name and len(frames_for(table, b["start_offset"], b["length"])) > 1
    ]
    assert spanning
    # One byte either side of a frame boundary: exactly the two frames around it.
    second = table.frames[1]
    assert [f.index for f in frames_for(table, second.start - 1, 2)] == [0, 1]
    assert frames_for(table, second.start, second.size) == (second,)
    assert span((second,)) == (second.offset, second.offset + second.length)


def test_reads_past_the_end_are_cut() -> None:
    data = _file("compressed", "data_00000001.dat.zst")
    table = _table(data)
    whole = _read(data, table, 0, table.size)
    assert _read(data, table, table.size - 5, 100) == whole[-5:]
    assert frames_for(table, table.size, 10) == ()
    assert frames_for(table, 3, 0) == ()
    assert seekable.read(table, (), [], table.size + 7, 3) == b""
    with pytest.raises(ValueError, match="bad range"):
        frames_for(table, -1, 3)


def test_the_empty_files_upstream_creates() -> None:
    # FlatFileDb.__init__ creates a 0-byte .dat.zst; a rollover writes an empty table.
    assert _file("new-datadir", "data_00000000.dat.zst") == b""
    assert parse_seek_table(b"", 0) is EMPTY_TABLE
    fresh = _file("rollover", "data_00000001.dat.zst")
    table = parse_seek_table(fresh, len(fresh))
    assert (len(fresh), table.frame_count, table.size, table.frames) == (17, 0, 0, ())


def test_a_file_mid_append_has_no_seek_table() -> None:
    manifest = _manifest("mid-append")
    assert "upstream_reader_error" in manifest["files"][0]
    data = _file("mid-append", "data_00000000.dat.zst")
    with pytest.raises(PartialContainer, match="writer is appending"):
        parse_seek_table_footer(data[-TAIL:], len(data))


def test_uncompressed_blobs_are_plain_byte_ranges() -> None:
    manifest = _manifest("uncompressed")
    for blob in manifest["blobs"]:
        data = _file("uncompressed", blob["file"])
        assert _sha(data[blob["start_offset"] : blob["end_offset"]]) == blob["sha256"]
    for record in manifest["files"]:
        assert len(_file("uncompressed", record["name"])) == record["upstream_uncompressed_size"]


# --- hand-made files -------------------------------------------------------------------


def _build(
    chunks: list[bytes],
    *,
    table_checksums: bool = False,
    frame_checksums: bool = True,
    content_size: bool = False,
) -> bytes:
    """A seekable file: one zstd frame per chunk, then the seek table."""
    cctx = zstandard.ZstdCompressor(
        level=3, write_checksum=frame_checksums, write_content_size=content_size
    )
    frames = [cctx.compress(chunk) for chunk in chunks]
    entries = b""
    for frame, chunk in zip(frames, chunks, strict=True):
        entries += struct.pack("<II", len(frame), len(chunk))
        if table_checksums:
            entries += _xxh64_low32(chunk)
    count = len(chunks)
    footer = struct.pack("<IBI", count, 0x80 if table_checksums else 0, seekable.SEEKABLE_MAGIC)
    header = struct.pack("<II", seekable.SEEK_TABLE_MAGIC, len(entries) + SEEK_TABLE_FOOTER)
    return b"".join(frames) + header + entries + footer


def _xxh64_low32(chunk: bytes) -> bytes:
    # zstd stores exactly this as a frame's content checksum (RFC 8878 §3.1.1).
    return zstandard.ZstdCompressor(write_checksum=True).compress(chunk)[-4:]


def _entry_at(data: bytes, index: int, entry_size: int = 8) -> int:
    _, _, table_size = parse_seek_table_footer(data, len(data))
    return len(data) - table_size + 8 + index * entry_size


def _patch(data: bytes, at: int, fmt: str, *values: int) -> bytes:
    new = bytearray(data)
    struct.pack_into(fmt, new, at, *values)
    return bytes(new)


def _read_all(data: bytes) -> bytes:
    table = parse_seek_table(data, len(data))
    return _read(data, table, 0, table.size)


CHUNKS = [b"alpha " * 300, b"", b"beta " * 50, bytes(range(256)) * 4]


def test_built_file_reads_back() -> None:
    data = _build(CHUNKS)
    table = parse_seek_table(data, len(data))
    assert table.frame_count == 4
    assert [f.index for f in table.frames] == [0, 2, 3]  # the empty frame is never read
    assert _read_all(data) == b"".join(CHUNKS)


@pytest.mark.parametrize("frame_checksums", [True, False])
def test_table_checksums_are_checked(frame_checksums: bool) -> None:
    data = _build(CHUNKS, table_checksums=True, frame_checksums=frame_checksums)
    assert parse_seek_table(data, len(data)).has_checksums
    assert _read_all(data) == b"".join(CHUNKS)
    at = _entry_at(data, 2, 12) + 8
    bad = _patch(data, at, "<I", struct.unpack_from("<I", data, at)[0] ^ 1)
    with pytest.raises(FormatError, match=r"frame 2 .* checksum"):
        _read_all(bad)


def test_a_bad_frame_checksum_is_caught() -> None:
    data = _build(CHUNKS)
    table = parse_seek_table(data, len(data))
    last = table.frames[-1]
    at = last.offset + last.length - 1  # the frame's own content checksum
    bad = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    with pytest.raises(FormatError, match=r"frame 3 .*checksum"):
        _read_all(bad)


def test_truncated_files_and_tails() -> None:
    data = _build(CHUNKS)
    with pytest.raises(PartialContainer):  # the end of the table is gone
        parse_seek_table(data[:-1], len(data) - 1)
    _, _, table_size = parse_seek_table_footer(data, len(data))
    with pytest.raises(FormatError, match=f"need the last {table_size} bytes"):
        parse_seek_table(data[-(table_size - 1) :], len(data))
    with pytest.raises(FormatError, match="need the last 9 bytes"):
        parse_seek_table_footer(data[-8:], len(data))
    with pytest.raises(FormatError, match="shorter than a seek table"):
        parse_seek_table(data[-16:], 16)


def test_trailing_junk_after_the_table() -> None:
    data = _build(CHUNKS) + b"\0"
    with pytest.raises(FormatError):
        parse_seek_table(data, len(data))


def test_junk_between_frames_and_table() -> None:
    data = _build(CHUNKS)
    _, _, table_size = parse_seek_table_footer(data, len(data))
    cut = len(data) - table_size
    data = data[:cut] + b"junk" + data[cut:]
    with pytest.raises(FormatError, match=r"frames cover .* seek table starts at"):
        parse_seek_table(data, len(data))


def test_frame_sizes_summing_past_the_file() -> None:
    data = _build(CHUNKS)
    at = _entry_at(data, 0)
    bad = _patch(data, at, "<I", struct.unpack_from("<I", data, at)[0] + 100)
    with pytest.raises(FormatError, match=r"frame 3 .* run past the seek table"):
        parse_seek_table(bad, len(bad))
    huge = _patch(data, at, "<I", 0xFFFFFFFF)
    with pytest.raises(FormatError, match="run past"):
        parse_seek_table(huge, len(huge))


def test_absurd_frame_count() -> None:
    data = _build(CHUNKS)
    bad = _patch(data, len(data) - SEEK_TABLE_FOOTER, "<I", 0xFFFFFFFF)
    with pytest.raises(FormatError, match="4294967295 frames"):
        parse_seek_table_footer(bad[-SEEK_TABLE_FOOTER:], len(bad))


def test_table_header_must_agree_with_footer() -> None:
    data = _build(CHUNKS)
    _, _, table_size = parse_seek_table_footer(data, len(data))
    start = len(data) - table_size
    with pytest.raises(FormatError, match="bad magic"):
        parse_seek_table(_patch(data, start, "<I", 0x184D2A50), len(data))
    with pytest.raises(FormatError, match="frame size"):
        parse_seek_table(_patch(data, start + 4, "<I", table_size), len(data))
    with pytest.raises(FormatError, match="reserved bits"):
        parse_seek_table(_patch(data, len(data) - 5, "<B", 0x04), len(data))
    assert parse_seek_table(_patch(data, len(data) - 5, "<B", 0x03), len(data)).size  # unused


def test_sizes_no_frame_can_have() -> None:
    data = _build(CHUNKS)
    empty = _entry_at(data, 1)  # the empty chunk's frame
    with pytest.raises(FormatError, match="cannot decompress to"):
        parse_seek_table(_patch(data, empty, "<II", 0, 5), len(data))
    small = _entry_at(data, 2)
    length = struct.unpack_from("<I", data, small)[0]
    with pytest.raises(FormatError, match="cannot decompress to"):
        parse_seek_table(_patch(data, small, "<II", length, 0xFFFFFFFF), len(data))


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_frame_decoding_to_more_or_less_than_recorded(delta: int) -> None:
    data = _build(CHUNKS)
    at = _entry_at(data, 0)
    length, size = struct.unpack_from("<II", data, at)
    bad = _patch(data, at, "<II", length, size + delta)
    table = parse_seek_table(bad, len(bad))
    frame = table.frames[0]
    with pytest.raises(FormatError, match="frame 0"):
        decode_frame(bad[frame.offset : frame.offset + frame.length], frame)


def test_a_header_content_size_must_match_the_table() -> None:
    data = _build(CHUNKS, content_size=True)
    assert _read_all(data) == b"".join(CHUNKS)
    table = parse_seek_table(data, len(data))
    frame = table.frames[0]
    lying = Frame(frame.index, frame.offset, frame.length, frame.start, frame.size - 1)
    with pytest.raises(FormatError, match="header says"):
        decode_frame(data[frame.offset : frame.offset + frame.length], lying)


def test_a_frame_must_end_exactly_at_its_length() -> None:
    frame_bytes = zstandard.ZstdCompressor(write_checksum=True).compress(b"x" * 100)
    frame = Frame(0, 0, len(frame_bytes) + 1, 0, 100)
    with pytest.raises(FormatError, match="unused data"):
        decode_frame(frame_bytes + b"\0", frame)
    short = Frame(0, 0, len(frame_bytes) - 1, 0, 100)
    with pytest.raises(FormatError, match="frame 0"):
        decode_frame(frame_bytes[:-1], short)
    with pytest.raises(FormatError, match="got 3 bytes"):
        decode_frame(b"abc", frame)
    junk = b"\0" * len(frame_bytes)
    with pytest.raises(FormatError, match="no zstd frame magic"):
        decode_frame(junk, Frame(0, 0, len(junk), 0, 100))


def test_a_damaged_real_frame_is_caught() -> None:
    data = _file("compressed", "data_00000000.dat.zst")
    table = _table(data)
    frame = table.frames[2]
    middle = frame.offset + frame.length // 2
    bad = data[:middle] + bytes([data[middle] ^ 0x55]) + data[middle + 1 :]
    with pytest.raises(FormatError, match="frame 2"):
        decode_frame(bad[frame.offset : frame.offset + frame.length], frame)
