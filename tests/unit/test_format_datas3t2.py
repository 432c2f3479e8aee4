"""datas3t2 dataranges: upstream-written fixtures, then damaged and hostile variants.

The fixtures under tests/fixtures/stores/datas3t2 were written by datas3t2's own code
(see their README.md). Damaged variants are made here by mutating those bytes; the
16-byte records of a mutated index are packed by `_pack`, which is ours, not upstream's.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from desfs.errors import EntryError, FormatError
from desfs.format import datas3t2
from desfs.format.datas3t2 import DatarangeName, IndexRecord

FIXTURES = Path(__file__).parents[1] / "fixtures" / "stores" / "datas3t2"
WRITER_COMMIT = "fabccc546a2f489a636f2f6be367049b342abb27"
# Datapoints 3..5 of two-dataranges: 700, 512 and 1025 bytes.
SECOND = "datas3t/demo/dataranges/00000000000000000003-00000000000000000005"


@dataclass(frozen=True)
class Datarange:
    name: DatarangeName
    tar: bytes
    index: bytes


def _manifest(case: str) -> dict[str, Any]:
    manifest = json.loads((FIXTURES / case / "manifest.json").read_text())
    assert isinstance(manifest, dict)
    return manifest


def _dataranges(case: str) -> list[Datarange]:
    bucket = FIXTURES / case / "bucket"
    found = []
    for path in sorted(bucket.rglob("*")):
        name = datas3t2.parse_datarange_key(path.relative_to(bucket).as_posix())
        if name is not None and name.kind == "tar":
            index = path.with_name(path.name.removesuffix(".tar") + ".index.zst")
            found.append(Datarange(name, path.read_bytes(), index.read_bytes()))
    return found


def _load(key: str) -> Datarange:
    tar = FIXTURES / "two-dataranges" / "bucket" / f"{key}.tar"
    name = datas3t2.parse_datarange_key(tar.name)
    assert name is not None
    index = tar.with_name(tar.name.removesuffix(".tar") + ".index.zst").read_bytes()
    return Datarange(name, tar.read_bytes(), index)


def _read_all(dr: Datarange, index: bytes | None = None) -> dict[str, bytes]:
    """Every datapoint of `dr`, read only through the codec's offsets."""
    records = datas3t2.parse_index(
        dr.index if index is None else index, dr.name.first, dr.name.last, len(dr.tar)
    )
    out = {}
    for record in records:
        start, length = datas3t2.header_range(record)
        member = datas3t2.parse_tar_header(dr.tar[start : start + length], start)
        name = datas3t2.verify_member(record, member)
        offset, size = datas3t2.data_range(record)
        out[name] = dr.tar[offset : offset + size]
    return out


def _records(raw: bytes) -> list[tuple[int, int, int]]:
    return [
        (pos, blocks, int.from_bytes(size, "big"))
        for pos, blocks, size in struct.iter_unpack(">QH6s", raw)
    ]


def _pack(records: list[tuple[int, int, int]]) -> bytes:
    return b"".join(
        struct.pack(">QH", pos, blocks) + size.to_bytes(6, "big") for pos, blocks, size in records
    )


def _parse_second(
    records: list[tuple[int, int, int]], tar_size: int | None = -1
) -> tuple[IndexRecord, ...]:
    dr = _load(SECOND)
    size = len(dr.tar) if tar_size == -1 else tar_size
    return datas3t2.parse_index(_pack(records), 3, 5, size)


def _header(dr: Datarange, i: int) -> bytearray:
    pos = _records(dr.index)[i][0]
    return bytearray(dr.tar[pos : pos + 512])


def _rechecksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


# --- upstream-written fixtures ----------------------------------------------------


@pytest.mark.parametrize("case", ["two-dataranges", "high-index"])
def test_fixture_datapoints_match_manifest(case: str) -> None:
    manifest = _manifest(case)
    assert (manifest["writer_commit"], manifest["expect"]) == (WRITER_COMMIT, "ok")
    read: dict[str, bytes] = {}
    dataranges = _dataranges(case)
    assert len(dataranges) == len(manifest["dataranges"])
    for dr in dataranges:
        read.update(_read_all(dr))
    expected = manifest["datapoints"]
    assert isinstance(expected, dict)
    assert sorted(read) == sorted(expected)
    for name, data in read.items():
        assert len(data) == expected[name]["size"], name
        assert hashlib.sha256(data).hexdigest() == expected[name]["sha256"], name


def test_fixture_layout_is_what_upstream_writes() -> None:
    first, second = _dataranges("two-dataranges")
    assert (first.name, second.name) == (DatarangeName(0, 2, "tar"), DatarangeName(3, 5, "tar"))
    # The `.index.zst` object is the raw records: datas3t2 never compresses it.
    assert first.index[:4] != datas3t2.ZSTD_MAGIC and len(first.index) == 3 * 16
    records = datas3t2.parse_index(first.index, 0, 2, len(first.tar))
    assert records == (
        IndexRecord(0, 0, 1, 16),
        IndexRecord(1, 1024, 1, 18),
        IndexRecord(2, 2048, 1, 0),
    )
    # Contiguous members, then the two zero blocks of the end of archive, nothing else.
    assert len(first.tar) == 2048 + 512 + 1024 and first.tar[-1024:] == bytes(1024)
    assert datas3t2.tar_size_for(records) == len(first.tar)
    assert datas3t2.data_range(records[2]) == (2560, 0)  # empty: nothing to fetch
    assert datas3t2.datarange_keys("demo", 3, 5) == (f"{SECOND}.tar", f"{SECOND}.index.zst")


def test_high_index_keys_reach_int64_max() -> None:
    (dr,) = _dataranges("high-index")
    assert (dr.name.first, dr.name.last) == (2**63 - 2, 2**63 - 1)
    assert sorted(_read_all(dr)) == ["09223372036854775806.dat", "09223372036854775807.x"]


def test_pax_fixture_is_refused() -> None:
    # Upstream's indexer records the PAX header as if it were the datapoint's header.
    assert _manifest("pax-long-ext")["expect"] == "FormatError"
    (dr,) = _dataranges("pax-long-ext")
    records = datas3t2.parse_index(dr.index, 0, 1, len(dr.tar))
    assert [r.header_offset for r in records] == [0, 1024]
    with pytest.raises(FormatError, match="extended header"):
        _read_all(dr)
    # The second record is 1024 bytes early: it points at the first datapoint's header.
    member = datas3t2.parse_tar_header(dr.tar[1024:1536], 1024)
    assert member.name.startswith(b"00000000000000000000.eee")
    with pytest.raises(FormatError, match="header size 19, index size 20"):
        datas3t2.verify_member(records[1], member)


def test_zstd_compressed_index_reads_the_same() -> None:
    dr = _load(SECOND)
    plain = _read_all(dr)
    assert _read_all(dr, zstandard.ZstdCompressor().compress(dr.index)) == plain
    two_frames = zstandard.ZstdCompressor().compress(dr.index[:16])
    two_frames += zstandard.ZstdCompressor().compress(dr.index[16:])
    assert _read_all(dr, two_frames) == plain


# --- object keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("00000000000000000003-00000000000000000005.tar", DatarangeName(3, 5, "tar")),
        (f"{SECOND}.index.zst", DatarangeName(3, 5, "index")),
        (
            "09223372036854775807-09223372036854775807.tar",
            DatarangeName(2**63 - 1, 2**63 - 1, "tar"),
        ),
        ("00000000000000000003-00000000000000000005.tar.bak", None),
        ("00000000000000000003-00000000000000000005.index", None),
        ("0000000000000000003-00000000000000000005.tar", None),
        ("00000000000000000003_00000000000000000005.tar", None),
        ("+0000000000000000003-00000000000000000005.tar", None),
        ("０" * 20 + "-00000000000000000005.tar", None),  # not ASCII digits
        ("datas3t/demo/dataranges/", None),
        ("", None),
    ],
)
def test_parse_datarange_key(name: str, expected: DatarangeName | None) -> None:
    assert datas3t2.parse_datarange_key(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "00000000000000000005-00000000000000000003.tar",  # first after last
        "09223372036854775808-09223372036854775808.tar",  # past int64
        "00000000000000000000-99999999999999999999.index.zst",
    ],
)
def test_impossible_datarange_key(name: str) -> None:
    with pytest.raises(FormatError):
        datas3t2.parse_datarange_key(name)


@pytest.mark.parametrize(("dataset", "first", "last"), [("a/b", 0, 1), ("", 0, 1), ("ok", 2, 1)])
def test_datarange_keys_refuse_bad_input(dataset: str, first: int, last: int) -> None:
    with pytest.raises(FormatError):
        datas3t2.datarange_keys(dataset, first, last)


# --- damaged index -----------------------------------------------------------------


def test_second_fixture_records() -> None:
    records = _records(_load(SECOND).index)
    assert records == [(0, 1, 700), (1536, 1, 512), (2560, 1, 1025)]
    assert _parse_second(records) == (
        IndexRecord(3, 0, 1, 700),
        IndexRecord(4, 1536, 1, 512),
        IndexRecord(5, 2560, 1, 1025),
    )


@pytest.mark.parametrize("cut", [1, 5, 16, 48])
def test_truncated_index(cut: int) -> None:
    dr = _load(SECOND)
    with pytest.raises(FormatError, match="datapoints"):
        datas3t2.parse_index(dr.index[:-cut], 3, 5, len(dr.tar))


@pytest.mark.parametrize(("first", "last"), [(3, 6), (3, 4), (4, 5)])
def test_index_count_disagrees_with_key(first: int, last: int) -> None:
    dr = _load(SECOND)
    if last - first + 1 == 3:  # right count, wrong range: names reveal it
        records = datas3t2.parse_index(dr.index, first, last, len(dr.tar))
        start, length = datas3t2.header_range(records[0])
        member = datas3t2.parse_tar_header(dr.tar[start : start + length])
        with pytest.raises(EntryError, match="belongs to datapoint 3"):
            datas3t2.verify_member(records[0], member)
        return
    with pytest.raises(FormatError, match="names"):
        datas3t2.parse_index(dr.index, first, last, len(dr.tar))


def test_extra_record_in_index() -> None:
    dr = _load(SECOND)
    with pytest.raises(FormatError):
        datas3t2.parse_index(dr.index + dr.index[-16:], 3, 5, len(dr.tar))


def test_positions_out_of_order() -> None:
    a, b, c = _records(_load(SECOND).index)
    with pytest.raises(FormatError, match="before the end of the previous"):
        _parse_second([a, c, b])


def test_positions_overlapping() -> None:
    a, b, c = _records(_load(SECOND).index)
    # Datapoint 3 has 700 bytes at 512..1212, padded to 1536: 1024 is inside it.
    with pytest.raises(FormatError, match="before the end of the previous"):
        _parse_second([a, (1024, 1, b[2]), c])


def test_position_not_block_aligned() -> None:
    a, b, c = _records(_load(SECOND).index)
    with pytest.raises(FormatError, match="multiple of 512"):
        _parse_second([a, (b[0] + 1, 1, b[2]), c])


@pytest.mark.parametrize("blocks", [0, 2])
def test_header_blocks_other_than_one(blocks: int) -> None:
    a, b, c = _records(_load(SECOND).index)
    with pytest.raises(FormatError, match="header blocks"):
        _parse_second([a, b, (c[0], blocks, c[2])])


def test_huge_claimed_size() -> None:
    a, b, c = _records(_load(SECOND).index)
    with pytest.raises(FormatError, match="does not fit the 5632-byte TAR"):
        _parse_second([a, b, (c[0], 1, 2**48 - 1)])
    # Without the TAR's size the records are still bounded by what an off_t can reach.
    with pytest.raises(FormatError, match="off_t"):
        _parse_second([a, b, (2**63 - 512, 1, 1)], tar_size=None)
    assert len(_parse_second([a, b, (c[0], 1, 2**48 - 1)], tar_size=None)) == 3


def test_record_past_end_of_tar() -> None:
    records = _records(_load(SECOND).index)
    with pytest.raises(FormatError, match="does not fit"):
        _parse_second(records, tar_size=2560 + 512 + 1024)


def test_empty_index() -> None:
    with pytest.raises(FormatError):
        datas3t2.parse_index(b"", 3, 5, None)


def test_range_over_limit_is_refused_before_decompressing() -> None:
    dr = _load(SECOND)
    with pytest.raises(FormatError, match="exceed the limit"):
        datas3t2.parse_index(dr.index, 0, 2**63 - 1, None)
    with pytest.raises(FormatError, match="exceed the limit of 2"):
        datas3t2.parse_index(dr.index, 3, 5, None, max_records=2)


def test_zstd_bomb_is_bounded() -> None:
    # A frame that claims and really holds 8 MiB, for a key naming 3 datapoints.
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=17)
    bomb = zstandard.ZstdCompressor(compression_params=params).compress(bytes(8 << 20))
    assert len(bomb) < 4096
    assert zstandard.get_frame_parameters(bomb).content_size == 8 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="49 bytes"):
            datas3t2.parse_index(bomb, 3, 5, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_zstd_window_is_capped() -> None:
    # The default level-3 window for 8 MiB is 8 MiB: more than an index of 3 needs.
    bomb = zstandard.ZstdCompressor().compress(bytes(8 << 20))
    with pytest.raises(FormatError, match="corrupt zstd stream"):
        datas3t2.parse_index(bomb, 3, 5, None)


@pytest.mark.parametrize(
    "data",
    [
        datas3t2.ZSTD_MAGIC + b"\x00" * 60,  # magic, then nonsense
        zstandard.ZstdCompressor().compress(b"x" * 48)[:-3],  # frame cut short
        zstandard.ZstdCompressor().compress(b"x" * 48) + b"junk",  # trailing junk
    ],
)
def test_corrupt_zstd_index(data: bytes) -> None:
    with pytest.raises(FormatError):
        datas3t2.parse_index(data, 3, 5, None)


# --- damaged headers ---------------------------------------------------------------


def test_header_checksum_bad() -> None:
    block = _header(_load(SECOND), 0)
    block[20] ^= 0x01  # ".jpg" becomes "/jpg": the checksum catches it first
    with pytest.raises(FormatError, match="checksum"):
        datas3t2.parse_tar_header(bytes(block), 0)


def test_header_signed_checksum_accepted() -> None:
    block = _header(_load(SECOND), 0)
    block[21:24] = b"\xe9\xe9\xe9"
    block[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in block)
    block[148:156] = b"%06o\0 " % signed
    member = datas3t2.parse_tar_header(bytes(block))
    assert member.name == b"00000000000000000003.\xe9\xe9\xe9"
    with pytest.raises(FormatError, match="not UTF-8"):
        datas3t2.datapoint_name(member.name, 3)


@pytest.mark.parametrize("length", [0, 511, 513, 1024])
def test_header_wrong_length(length: int) -> None:
    dr = _load(SECOND)
    with pytest.raises(FormatError, match="expected one 512-byte block"):
        datas3t2.parse_tar_header(dr.tar[:length])


def test_header_zero_block() -> None:
    with pytest.raises(FormatError, match="end of archive"):
        datas3t2.parse_tar_header(bytes(512))


def test_header_bad_magic() -> None:
    block = _header(_load(SECOND), 0)
    block[257:263] = b"ustaR\0"
    with pytest.raises(FormatError, match="magic"):
        datas3t2.parse_tar_header(_rechecksum(block))


def test_header_size_not_octal() -> None:
    block = _header(_load(SECOND), 0)
    block[124:136] = b"0000000128\0\0"[:12]
    with pytest.raises(FormatError, match="size field"):
        datas3t2.parse_tar_header(_rechecksum(block))


def test_header_size_disagrees_with_index() -> None:
    dr = _load(SECOND)
    record = datas3t2.parse_index(dr.index, 3, 5, len(dr.tar))[0]
    block = _header(dr, 0)
    block[124:136] = b"%011o\0" % 701
    member = datas3t2.parse_tar_header(_rechecksum(block))
    assert member.size == 701
    with pytest.raises(FormatError, match="header size 701, index size 700"):
        datas3t2.verify_member(record, member)


def test_header_base256_size() -> None:
    block = _header(_load(SECOND), 0)
    block[124:136] = b"\x80" + (700).to_bytes(11, "big")
    assert datas3t2.parse_tar_header(_rechecksum(block)).size == 700
    block[124:136] = b"\xff" * 12
    with pytest.raises(FormatError, match="negative"):
        datas3t2.parse_tar_header(_rechecksum(block))


@pytest.mark.parametrize(
    ("flag", "match"),
    [(b"5", "regular"), (b"2", "regular"), (b"L", "extended"), (b"x", "extended")],
)
def test_header_type_not_a_datapoint(flag: bytes, match: str) -> None:
    dr = _load(SECOND)
    record = datas3t2.parse_index(dr.index, 3, 5, len(dr.tar))[0]
    block = _header(dr, 0)
    block[156:157] = flag
    with pytest.raises(FormatError, match=match):
        datas3t2.verify_member(record, datas3t2.parse_tar_header(_rechecksum(block)))


def test_header_ustar_prefix_makes_a_path() -> None:
    dr = _load(SECOND)
    record = datas3t2.parse_index(dr.index, 3, 5, len(dr.tar))[0]
    block = _header(dr, 0)
    block[345:349] = b"evil"
    member = datas3t2.parse_tar_header(_rechecksum(block))
    assert member.name == b"evil/00000000000000000003.jpg"
    with pytest.raises(FormatError, match="is a path"):
        datas3t2.verify_member(record, member)


# --- datapoint names ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        b"/00000000000000000003.jpg",
        b"../00000000000000000003.jpg",
        b"dir/00000000000000000003.jpg",
        b"00000000000000000003.jpg/..",
        b"00000000000000000003.a/b",
        b"..",
        b".",
        b"",
        b"00000000000000000003.j\x00pg",
        b"00000000000000000003.a\nb",
        b"00000000000000000003.tar.gz",  # upstream allows one dot only
        b"00000000000000000003",
        b"3.jpg",
        b"000000000000000000003.jpg",
        b"00000000000000000004.jpg",  # another datapoint's name
        ("０" * 19 + "３").encode() + b".jpg",  # int() would read these digits; upstream would not
        b"\xff0000000000000000003.jpg",
    ],
)
def test_hostile_datapoint_names(name: bytes) -> None:
    with pytest.raises(FormatError):
        datas3t2.datapoint_name(name, 3)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"00000000000000000003.jpg", "00000000000000000003.jpg"),
        (b"00000000000000000003.", "00000000000000000003."),  # empty extension: upstream allows it
        ("00000000000000000003.jpé".encode(), "00000000000000000003.jpé"),
    ],
)
def test_datapoint_names_accepted(name: bytes, expected: str) -> None:
    assert datas3t2.datapoint_name(name, 3) == expected
