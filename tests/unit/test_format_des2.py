"""DES2/DESI parsing: the spec's worked example, both v1 layouts and hand-built corruption."""

from __future__ import annotations

import hashlib

import pytest

from desfs.errors import FormatError, NotAContainer, PartialContainer
from desfs.format import des2
from desfs.format.container import parse_whole
from desfs.format.model import Codec, ContainerIndex, External, Format
from tests.support.fixtures import BEntry, build_des2, patch

# des-formats.md §2.13, byte for byte.
ZERO_ENTRY_HEX = "44 45 53 32 02 00 00 00 | 00 00 00 00 | 44 45 53 49 04 00 00 00 00 00 00 00"

TWO_ENTRY_HEX = """
44 45 53 32 02 00 00 00
68 69
02 00 00 00
05 00 61 2e 74 78 74 00
08 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00  00
02 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00
09 00 00 00 7b 22 6b 22 3a 22 76 22 7d
03 00 62 69 67 01
40 00
35 39 39 34 34 37 31 61 62 62 30 31 31 31 32 61 66 63 63 31 38 31 35 39 66 36 63 63 37 34 62 34
66 35 31 31 62 39 39 38 30 36 64 61 35 39 62 33 63 61 66 35 61 39 63 31 37 33 63 61 63 66 63 35
05 00 00 00 00 00 00 00  00 00 00 00
44 45 53 49 8e 00 00 00 00 00 00 00
"""

SHA_12345 = hashlib.sha256(b"12345").hexdigest()


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace("|", " "))


def test_zero_entry_example() -> None:
    data = _hex(ZERO_ENTRY_HEX)
    assert len(data) == 24
    assert parse_whole(data) == ContainerIndex(Format.DES2, 2, 24, 8, 8, 8, ())


def test_two_entry_example() -> None:
    data = _hex(TWO_ENTRY_HEX)
    assert len(data) == 0x98 + 12
    assert des2.read_footer(len(data), data) == 10
    index = parse_whole(data)
    assert (index.format, index.version, index.variant) == (Format.DES2, 2, None)
    assert (index.data_start, index.data_end, index.index_start) == (8, 10, 10)
    inline, big = index.entries
    assert (inline.name, inline.position, inline.size) == (b"a.txt", 0, 2)
    assert (inline.offset, inline.stored_length, inline.codec) == (8, 2, Codec.NONE)
    assert (inline.meta, inline.external, inline.error) == (b'{"k":"v"}', None, None)
    assert (big.name, big.position, big.size, big.offset, big.stored_length) == (b"big", 1, 5, 0, 0)
    assert big.external == External(sha256=SHA_12345)
    assert (big.meta, big.error) == (b"", None)


def test_builder_matches_example() -> None:
    entries = [
        BEntry(b"a.txt", b"hi", meta=b'{"k":"v"}'),
        BEntry(b"big", bigfile_hash=SHA_12345.encode(), bigfile_size=5),
    ]
    assert build_des2(entries) == _hex(TWO_ENTRY_HEX)


def _entries() -> list[BEntry]:
    return [
        BEntry(b"one", b"111", meta=b'{"n":1}'),
        BEntry(b"two", b"22"),
        BEntry(b"three", b"3"),
    ]


def test_v1_codec_layout() -> None:
    data = build_des2(_entries(), version=1, variant="codec")
    index = parse_whole(data)
    assert (index.version, index.variant) == (1, "codec")
    assert [(e.name, e.offset, e.size, e.meta) for e in index.entries] == [
        (b"one", 8, 3, b""),
        (b"two", 11, 2, b""),
        (b"three", 13, 1, b""),
    ]
    assert all(e.error is None for e in index.entries)


def test_v1_nocodec_layout() -> None:
    data = build_des2(_entries(), version=1, variant="nocodec")
    index = parse_whole(data)
    assert (index.version, index.variant) == (1, "nocodec")
    assert [(e.name, e.offset, e.stored_length, e.size) for e in index.entries] == [
        (b"one", 8, 3, 3),
        (b"two", 11, 2, 2),
        (b"three", 13, 1, 1),
    ]
    assert all(e.codec is Codec.NONE and e.error is None for e in index.entries)


def test_v1_fitting_neither_layout() -> None:
    data = build_des2(_entries(), version=1, variant="nocodec", trailing=b"\0")
    with pytest.raises(FormatError, match="fits neither"):
        parse_whole(data)


def test_v1_nocodec_with_out_of_range_offset_fits_neither() -> None:
    entries = _entries()
    entries[1].offset = 4
    with pytest.raises(FormatError, match="fits neither"):
        parse_whole(build_des2(entries, version=1, variant="nocodec"))


def test_v1_codec_unknown_codec_is_an_entry_error() -> None:
    entries = _entries()
    entries[0].codec = 7
    index = parse_whole(build_des2(entries, version=1, variant="codec"))
    assert index.variant == "codec"
    assert [e.error is not None for e in index.entries] == [True, False, False]


def test_v1_huge_entry_count() -> None:
    data = build_des2(_entries(), version=1, entry_count=2**32 - 1)
    with pytest.raises(FormatError, match="fits neither"):
        parse_whole(data)


def test_v2_huge_entry_count() -> None:
    data = build_des2(_entries(), entry_count=2**32 - 1)
    with pytest.raises(FormatError, match="entry_count 4294967295"):
        parse_whole(data)


def test_v2_entry_count_too_small_leaves_trailing_bytes() -> None:
    with pytest.raises(FormatError, match="trailing bytes"):
        parse_whole(build_des2(_entries(), entry_count=2))


def test_v2_trailing_bytes() -> None:
    with pytest.raises(FormatError, match="1 trailing bytes"):
        parse_whole(build_des2(_entries(), trailing=b"\0"))


def test_v2_entry_running_past_the_index() -> None:
    entries = _entries()
    entries[2].meta = b"{}"
    data = build_des2(entries)
    meta_len_at = len(data) - 12 - 2 - 4
    with pytest.raises(FormatError, match="entry 2 at offset"):
        parse_whole(patch(data, meta_len_at, "<I", 2**32 - 1))


@pytest.mark.parametrize("codec", [3, 255])
def test_unknown_codec_fails_only_that_entry(codec: int) -> None:
    entries = _entries()
    entries[1].codec = codec
    index = parse_whole(build_des2(entries))
    assert [e.error is not None for e in index.entries] == [False, True, False]
    assert index.entries[1].error is not None
    assert f"unknown codec {codec}" in index.entries[1].error
    assert index.entries[2].name == b"three"


@pytest.mark.parametrize("flags", [0x02, 0x80, 0xFE])
def test_unknown_flag_bits(flags: int) -> None:
    entries = _entries()
    entries[0].flags = flags
    index = parse_whole(build_des2(entries))
    assert [e.error is not None for e in index.entries] == [True, False, False]


def test_unknown_flag_bits_on_a_bigfile() -> None:
    entries = [BEntry(b"b", bigfile_hash=SHA_12345.encode(), bigfile_size=5, flags=0x40)]
    (entry,) = parse_whole(build_des2(entries)).entries
    assert entry.external == External(sha256=SHA_12345)
    assert entry.error is not None


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"compressed_size": 3}, "compressed_size"),
        ({"offset": 0}, "outside the data section"),
        ({"offset": 7}, "outside the data section"),
        ({"offset": 13}, "outside the data section"),
        ({"offset": 2**64 - 1}, "outside the data section"),
        ({"length": 2**64 - 1, "compressed_size": 2**64 - 1}, "outside the data section"),
        ({"size": 5}, "codec none"),
        ({"size": 2**64 - 1, "codec": 1}, "too large"),
    ],
)
def test_lying_inline_fields_fail_only_that_entry(override: dict[str, int], words: str) -> None:
    entries = _entries()
    for key, value in override.items():
        setattr(entries[1], key, value)
    index = parse_whole(build_des2(entries))
    assert index.entries[0].error is None
    assert index.entries[2].error is None
    assert index.entries[1].error is not None
    assert words in index.entries[1].error


def test_compressed_entry_may_be_larger_than_logical() -> None:
    entries = [BEntry(b"empty.txt", b"\x28\xb5\x2f\xfd" + bytes(5), codec=1, size=0)]
    (entry,) = parse_whole(build_des2(entries)).entries
    assert (entry.codec, entry.size, entry.stored_length, entry.error) == (Codec.ZSTD, 0, 9, None)


@pytest.mark.parametrize(
    "digest",
    [b"../x", SHA_12345.upper().encode(), SHA_12345[:63].encode(), b"", b"\xff" * 64,
     SHA_12345.encode() + b"0"],
)  # fmt: skip
def test_bad_bigfile_hash(digest: bytes) -> None:
    entries = [BEntry(b"a", b"1"), BEntry(b"big", bigfile_hash=digest, bigfile_size=9)]
    index = parse_whole(build_des2(entries))
    big = index.entries[1]
    assert big.error is not None
    assert big.external == External(sha256=None)
    assert index.entries[0].error is None


@pytest.mark.parametrize("meta", [b"{", b"[]", b"1", b"\xc3\x28", b'{"a":1} {}'])
def test_bad_meta(meta: bytes) -> None:
    entries = _entries()
    entries[2].meta = meta
    index = parse_whole(build_des2(entries))
    assert [e.error is not None for e in index.entries] == [False, False, True]
    assert index.entries[2].meta == meta


def test_bigfile_meta() -> None:
    entries = [BEntry(b"big", bigfile_hash=SHA_12345.encode(), bigfile_size=5, meta=b'{"m":1}')]
    (entry,) = parse_whole(build_des2(entries)).entries
    assert (entry.meta, entry.error) == (b'{"m":1}', None)


def test_non_utf8_and_empty_names_are_entries() -> None:
    entries = [BEntry(b"\xff\xfe", b"1"), BEntry(b"", b"2"), BEntry(b"../x", b"3")]
    index = parse_whole(build_des2(entries))
    assert [e.name for e in index.entries] == [b"\xff\xfe", b"", b"../x"]
    assert all(e.error is None for e in index.entries)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "words"),
    [
        (4, "<B", 3, "unsupported version 3"),
        (4, "<B", 0, "unsupported version 0"),
        (5, "<B", 1, "reserved"),
        (7, "<B", 0x80, "reserved"),
        (-8, "<Q", 2**64 - 1, "index_size"),
        (-8, "<Q", 3, "index_size 3 is below 4"),
    ],
)
def test_bad_header_or_footer(offset: int, fmt: str, value: int, words: str) -> None:
    data = patch(build_des2(_entries()), offset, fmt, value)
    with pytest.raises(FormatError, match=words):
        parse_whole(data)


def test_index_size_reaching_into_header() -> None:
    data = build_des2(_entries())
    with pytest.raises(FormatError, match="does not fit"):
        parse_whole(patch(data, -8, "<Q", len(data) - 19))


def test_head_magic_without_footer_is_partial() -> None:
    data = build_des2(_entries())
    with pytest.raises(PartialContainer):
        parse_whole(data[:-12])
    with pytest.raises(PartialContainer):
        parse_whole(data[:10])
    with pytest.raises(PartialContainer):
        parse_whole(b"DES2")


def test_footer_without_head_magic_is_not_a_container() -> None:
    data = build_des2(_entries())
    with pytest.raises(NotAContainer):
        parse_whole(b"XES2" + data[4:])


def test_large_index() -> None:
    entries = [BEntry(b"f%06d" % i, b"x", meta=b'{"i":%d}' % i) for i in range(20_000)]
    index = parse_whole(build_des2(entries))
    assert len(index.entries) == 20_000
    assert index.entries[-1].offset == 8 + 19_999
    assert index.entries[-1].meta == b'{"i":19999}'
