"""DESHEAD1/DESFOOT1 parsing: the spec's worked example and hand-built corrupt containers."""

from __future__ import annotations

import pytest

from desfs.errors import FormatError, NotAContainer, PartialContainer
from desfs.format import deshead1
from desfs.format.container import open_container, parse_whole
from desfs.format.model import Codec, ContainerIndex, External, Format
from tests.support.fixtures import AEntry, build_deshead1, patch

# des-formats.md §1.13, byte for byte.
ZERO_ENTRY_HEX = """
44 45 53 48 45 41 44 31 01 00 00 00 00 00 00 00
44 45 53 46 4f 4f 54 31 01 00 00 00 00 00 00 00
10 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
10 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
10 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00
"""

ONE_ENTRY_HEX = """
44 45 53 48 45 41 44 31 01 00 00 00 00 00 00 00
68 69
7b 22 6b 22 3a 22 76 22 2c 22 73 69 7a 65 22 3a 32 7d
05 00 61 2e 74 78 74
10 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00
12 00 00 00 00 00 00 00  12 00 00 00 00 00 00 00  00 00 00 00
44 45 53 46 4f 4f 54 31 01 00 00 00 00 00 00 00
10 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00
12 00 00 00 00 00 00 00  12 00 00 00 00 00 00 00
24 00 00 00 00 00 00 00  2b 00 00 00 00 00 00 00
01 00 00 00 00 00 00 00
"""

FOOTER_AT = -72  # footer field offsets below are relative to the end of the object
F_DATA_START, F_DATA_LENGTH, F_META_START, F_META_LENGTH = -56, -48, -40, -32
F_INDEX_START, F_INDEX_LENGTH, F_FILE_COUNT = -24, -16, -8


def test_zero_entry_example() -> None:
    data = bytes.fromhex(ZERO_ENTRY_HEX)
    assert len(data) == 88
    footer = deshead1.parse_footer(data[-72:], len(data))
    assert footer == deshead1.Footer(16, 0, 16, 0, 16, 0, 0)
    index = parse_whole(data)
    assert index == ContainerIndex(Format.DESHEAD1, 1, 88, 16, 16, 16, ())


def test_one_entry_example() -> None:
    data = bytes.fromhex(ONE_ENTRY_HEX)
    assert len(data) == 151
    footer = deshead1.parse_footer(data[-72:], len(data))
    assert footer == deshead1.Footer(16, 2, 18, 18, 36, 43, 1)
    index = parse_whole(data)
    assert (index.data_start, index.data_end, index.index_start) == (16, 18, 18)
    (entry,) = index.entries
    assert entry.name == b"a.txt"
    assert (entry.size, entry.offset, entry.stored_length) == (2, 16, 2)
    assert entry.meta == b'{"k":"v","size":2}'
    assert entry.codec is Codec.NONE
    assert (entry.external, entry.deleted, entry.error) == (None, False, None)
    assert data[entry.offset : entry.offset + entry.stored_length] == b"hi"


def test_builder_matches_example() -> None:
    built = build_deshead1([AEntry(b"a.txt", b"hi", b'{"k":"v","size":2}')])
    assert built == bytes.fromhex(ONE_ENTRY_HEX)


def _three() -> list[AEntry]:
    return [
        AEntry(b"one", b"111", b'{"a":1}'),
        AEntry(b"two", b"22", b""),
        AEntry(b"three", b"3", b'{"c":3}'),
    ]


def test_regions_and_offsets() -> None:
    index = parse_whole(build_deshead1(_three()))
    assert [e.name for e in index.entries] == [b"one", b"two", b"three"]
    assert [e.position for e in index.entries] == [0, 1, 2]
    assert [(e.offset, e.stored_length) for e in index.entries] == [(16, 3), (19, 2), (21, 1)]
    assert [e.meta for e in index.entries] == [b'{"a":1}', b"", b'{"c":3}']
    assert all(e.error is None for e in index.entries)


def test_empty_inline_file() -> None:
    index = parse_whole(build_deshead1([AEntry(b"a", b"x"), AEntry(b"empty", b"")]))
    empty = index.entries[1]
    assert (empty.size, empty.stored_length, empty.error) == (0, 0, None)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        (F_DATA_START, 17, "data_start"),
        (F_DATA_LENGTH, 7, "data region"),
        (F_DATA_LENGTH, 2**64 - 1, "data region"),
        (F_META_START, 2**64 - 16, "meta_start"),
        (F_META_LENGTH, 2**64 - 1, "meta region"),
        (F_INDEX_START, 10**6, "meta region"),
        (F_INDEX_LENGTH, 10**6, "index region"),
        (F_INDEX_LENGTH, 2**64 - 1, "index region"),
        (F_FILE_COUNT, 2**32 - 1, "file_count"),
        (F_FILE_COUNT, 2**64 - 1, "file_count"),
        (F_FILE_COUNT, 2, "file_count says 2"),
    ],
)
def test_lying_footer_is_rejected(field: int, value: int, words: str) -> None:
    data = patch(build_deshead1(_three()), field, "<Q", value)
    with pytest.raises(FormatError, match=words):
        parse_whole(data)


def test_footer_version_and_magic() -> None:
    good = build_deshead1(_three())
    with pytest.raises(FormatError, match="unsupported version 2"):
        parse_whole(patch(good, FOOTER_AT + 8, "<B", 2))
    with pytest.raises(FormatError, match="unsupported version 9"):
        parse_whole(patch(good, 8, "<B", 9))
    with pytest.raises(PartialContainer):
        parse_whole(patch(good, FOOTER_AT, "<8s", b"DESFOOTX"))


def test_index_entry_running_past_the_index() -> None:
    entries = _three()
    data = build_deshead1(entries)
    index_start = len(data) - 72 - (3 * 38 + 3 + 3 + 5)
    last = index_start + (38 + 3) * 2
    with pytest.raises(FormatError, match="entry 2 at offset"):
        parse_whole(patch(data, last, "<H", 6))
    with pytest.raises(FormatError, match="entry 2"):
        parse_whole(patch(data, last, "<H", 0xFFFF))


def test_dangling_index_byte() -> None:
    # One stray byte after the last entry: the index length no longer fits whole entries.
    entries = [AEntry(b"a", b"x")]
    data = build_deshead1(entries)
    body, footer = data[:-72], data[-72:]
    grown = body + b"\0" + footer
    grown = patch(grown, F_INDEX_LENGTH, "<Q", 38 + 1 + 1)
    with pytest.raises(FormatError, match="runs past"):
        parse_whole(grown)


def test_entry_payload_outside_data_region_is_entry_error() -> None:
    entries = _three()
    entries[1].data_offset = 2**64 - 1
    entries[2].data_length = 5
    index = parse_whole(build_deshead1(entries))
    assert index.entries[0].error is None
    assert index.entries[1].error is not None
    assert "outside the data region" in index.entries[1].error
    assert index.entries[2].error is not None


def test_overlapping_payloads_inside_the_region_are_accepted() -> None:
    # Two entries sharing bytes break no bound; the format does not forbid it.
    entries = _three()
    entries[1].data_offset = 16
    index = parse_whole(build_deshead1(entries))
    assert [e.error for e in index.entries] == [None, None, None]
    assert index.entries[1].offset == 16


@pytest.mark.parametrize(
    ("flags", "deleted", "bad"),
    [(0x08, True, False), (0x02, False, True), (0x04, False, True), (0x80, False, True),
     (0x0A, True, True), (0x80000000, False, True)],
)  # fmt: skip
def test_flags(flags: int, deleted: bool, bad: bool) -> None:
    entries = _three()
    entries[1].flags = flags
    index = parse_whole(build_deshead1(entries))
    entry = index.entries[1]
    assert entry.deleted is deleted
    assert (entry.error is not None) is bad
    assert index.entries[0].error is None
    assert index.entries[2].error is None


def test_external_entry() -> None:
    meta = b'{"size":5000,"is_external":true,"external_key":"2024-12-06/_bigFiles/big"}'
    entries = [
        AEntry(b"small", b"abc"),
        AEntry(b"big", b"\0" * 5000, meta, flags=1),
        AEntry(b"after", b"de"),
    ]
    data = build_deshead1(entries)
    index = parse_whole(data)
    big = index.entries[1]
    assert big.external == External(key_hint="2024-12-06/_bigFiles/big")
    assert (big.size, big.offset, big.stored_length, big.error) == (5000, 0, 0, None)
    assert index.data_end - index.data_start == 5
    after = index.entries[2]
    assert data[after.offset : after.offset + after.stored_length] == b"de"


@pytest.mark.parametrize("meta", [b"", b'{"external_key":7}', b'{"x":1}'])
def test_external_entry_without_usable_key(meta: bytes) -> None:
    index = parse_whole(build_deshead1([AEntry(b"big", b"12345", meta, flags=1)]))
    assert index.entries[0].external == External(key_hint=None)
    assert index.entries[0].error is None


def test_external_entry_with_impossible_size() -> None:
    entry = AEntry(b"big", b"", flags=1, data_length=2**64 - 1)
    index = parse_whole(build_deshead1([entry]))
    assert index.entries[0].error is not None
    assert "too large" in index.entries[0].error


@pytest.mark.parametrize(
    "meta",
    [b"{", b"[1,2]", b'"text"', b"null", b"\xff\xfe{}", b"[" * 100_000, b'{"a":1}x'],
)
def test_bad_meta_is_an_entry_error(meta: bytes) -> None:
    entries = _three()
    entries[1].meta = meta
    index = parse_whole(build_deshead1(entries))
    assert index.entries[1].error is not None
    assert index.entries[1].meta == meta
    assert index.entries[0].error is None
    assert index.entries[2].error is None
    assert index.entries[2].meta == b'{"c":3}'


def test_meta_outside_meta_region_is_an_entry_error() -> None:
    entries = _three()
    entries[0].meta_offset = 16  # points into DATA
    entries[2].meta_length = 2**64 - 1
    index = parse_whole(build_deshead1(entries))
    assert [e.error is not None for e in index.entries] == [True, False, True]
    assert index.entries[0].meta == b""


def test_non_utf8_name_is_kept_raw() -> None:
    index = parse_whole(build_deshead1([AEntry(b"bad\xff\xfename", b"x"), AEntry(b"", b"y")]))
    assert [e.name for e in index.entries] == [b"bad\xff\xfename", b""]
    assert [e.error for e in index.entries] == [None, None]


def test_duplicates_are_all_kept_in_order() -> None:
    index = parse_whole(build_deshead1([AEntry(b"a", b"1"), AEntry(b"a", b"22")]))
    assert [(e.name, e.position, e.size) for e in index.entries] == [(b"a", 0, 1), (b"a", 1, 2)]


def test_head_magic_without_footer_is_partial() -> None:
    data = build_deshead1(_three())[:-72]
    with pytest.raises(PartialContainer):
        parse_whole(data)
    with pytest.raises(PartialContainer):
        parse_whole(data[:40])
    with pytest.raises(PartialContainer):
        parse_whole(b"DESHEAD1")


def test_footer_without_head_magic_is_not_a_container() -> None:
    data = build_deshead1(_three())
    with pytest.raises(NotAContainer):
        parse_whole(b"NOTAHEAD" + data[8:])


def test_tail_only_does_not_need_the_head() -> None:
    data = build_deshead1(_three())
    index_start = len(data) - 72 - (3 * 38 + 11) - 14
    result = open_container(len(data), data[index_start:])
    assert isinstance(result, ContainerIndex)
    assert result == parse_whole(data)


def test_large_index() -> None:
    entries = [AEntry(b"f%06d" % i, b"x", b'{"i":%d}' % i) for i in range(20_000)]
    index = parse_whole(build_deshead1(entries))
    assert len(index.entries) == 20_000
    assert index.entries[-1].name == b"f019999"
    assert index.entries[-1].meta == b'{"i":19999}'
    assert index.entries[-1].offset == 16 + 19_999
