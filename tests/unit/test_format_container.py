"""open_container: format detection and the one-round-trip NeedBytes protocol."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from desfs.errors import FormatError, NotAContainer, PartialContainer
from desfs.format.container import MERGE_GAP, open_container, parse_whole
from desfs.format.model import ContainerIndex, Format, NeedBytes
from desfs.settings.sections import CacheSettings
from tests.support.fixtures import AEntry, BEntry, build_des2, build_deshead1, containers

FIXTURES = containers()


class Reader:
    """Follows NeedBytes like a storage reader would, checking every request it is given."""

    def __init__(self, data: bytes, tail_len: int, head_len: int | None) -> None:
        self.data = data
        self.tail_start = len(data) - tail_len
        self.head = None if head_len is None else data[:head_len]
        self.rounds = 0

    @property
    def tail(self) -> bytes:
        return self.data[self.tail_start :]

    def run(self, max_rounds: int) -> ContainerIndex:
        while True:
            result = open_container(len(self.data), self.tail, self.head)
            if isinstance(result, ContainerIndex):
                return result
            self.rounds += 1
            assert self.rounds <= max_rounds, f"round {self.rounds}: {result}"
            self.fetch(result)

    def fetch(self, need: NeedBytes) -> None:
        known_head = 0 if self.head is None else len(self.head)
        assert need.ranges, "NeedBytes without ranges"
        for start, end in need.ranges:
            assert 0 <= start < end <= len(self.data), f"bad range {(start, end)}"
            assert end <= self.tail_start, f"range {(start, end)} overlaps the tail"
            assert start >= known_head, f"range {(start, end)} asks for the head again"
        for start, end in sorted(need.ranges, reverse=True):
            if end == self.tail_start:
                self.tail_start = start
            elif start == 0:
                self.head = self.data[start:end]
            else:
                pytest.fail(f"range {(start, end)} neither extends the tail nor is the head")


def _tail_lengths(data: bytes) -> range:
    return range(0, len(data) + 1)


def _rounds_allowed(index: ContainerIndex, tail_len: int) -> int:
    # With the footer in hand (12 bytes for DES2, 72 for DESHEAD1), one more round
    # always suffices; a shorter tail first has to fetch the footer.
    footer = 12 if index.format is Format.DES2 else 72
    return 1 if tail_len >= footer else 2


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("head_len", [None, 8, 16])
def test_every_tail_length_converges(path: Path, head_len: int | None) -> None:
    data = path.read_bytes()
    expected = parse_whole(data)
    for tail_len in _tail_lengths(data):
        reader = Reader(data, tail_len, head_len)
        assert reader.run(_rounds_allowed(expected, tail_len)) == expected, tail_len


def _builder_containers() -> list[bytes]:
    many_a = [AEntry(b"n%04d" % i, b"d" * (i % 7), b'{"i":%d}' % i) for i in range(300)]
    many_b = [BEntry(b"n%04d" % i, b"d" * (i % 7), meta=b'{"i":%d}' % i) for i in range(300)]
    few_b = [BEntry(b"x", b"12"), BEntry(b"y", b"")]
    return [
        build_deshead1(many_a),
        build_des2(many_b),
        build_des2(few_b, version=1, variant="codec"),
        build_des2(few_b, version=1, variant="nocodec"),
        build_des2([BEntry(b"e", b"")]),  # index starts right after the header
    ]


@pytest.mark.parametrize("number", range(5))
def test_builder_containers_converge(number: int) -> None:
    data = _builder_containers()[number]
    expected = parse_whole(data)
    for tail_len in [0, 5, 12, 40, 72, 100, 1000, 4096, len(data) - 1, len(data)]:
        for head_len in (None, 8, 16, 64):
            tail_len = min(tail_len, len(data))
            reader = Reader(data, tail_len, head_len)
            assert reader.run(_rounds_allowed(expected, tail_len)) == expected


def test_tail_window_default_is_the_documented_64_kib() -> None:
    assert CacheSettings().tail_window == 65536


def test_des2_tail_only_asks_for_header_and_index_together() -> None:
    data = build_des2([BEntry(b"n%04d" % i, b"p" * 100, meta=b'{"a":1}') for i in range(50)])
    index = parse_whole(data)
    assert index.index_start > 8 + MERGE_GAP
    tail = data[-100:]
    result = open_container(len(data), tail)
    assert result == NeedBytes(((0, 8), (index.index_start, len(data) - 100)))


def test_des2_with_head_asks_only_for_the_index() -> None:
    data = build_des2([BEntry(b"n%04d" % i, b"payload") for i in range(50)])
    index = parse_whole(data)
    result = open_container(len(data), data[-100:], data[:16])
    assert result == NeedBytes(((index.index_start, len(data) - 100),))


def test_des2_tail_holding_the_index_still_needs_the_version() -> None:
    data = build_des2([BEntry(b"a", b"x" * 1000)])
    index = parse_whole(data)
    assert open_container(len(data), data[index.index_start :]) == NeedBytes(((0, 8),))


def test_deshead1_tail_only_asks_for_meta_and_index() -> None:
    data = build_deshead1([AEntry(b"n%04d" % i, b"payload", b'{"a":1}') for i in range(50)])
    index = parse_whole(data)
    result = open_container(len(data), data[-100:])
    assert result == NeedBytes(((index.index_start, len(data) - 100),))


def test_no_footer_without_head_asks_for_the_head_only() -> None:
    data = bytes(range(256)) * 4
    assert open_container(len(data), data[-200:]) == NeedBytes(((0, 16),))
    with pytest.raises(NotAContainer):
        open_container(len(data), data[-200:], data[:16])


def test_short_tail_asks_for_head_and_footer() -> None:
    data = bytes(range(256)) * 40
    size = len(data)
    assert open_container(size, data[-5:]) == NeedBytes(((0, 16), (size - 72, size - 5)))


def test_close_ranges_are_merged() -> None:
    data = build_des2([BEntry(b"n%04d" % i, b"payload") for i in range(50)])
    assert open_container(len(data), data[-100:]) == NeedBytes(((0, len(data) - 100),))
    data = bytes(range(256)) * 4
    assert open_container(len(data), data[-5:]) == NeedBytes(((0, len(data) - 5),))


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_not_a_container(seed: int) -> None:
    data = random.Random(seed).randbytes(100 + seed * 50)
    with pytest.raises(NotAContainer):
        parse_whole(data)
    assert open_container(len(data), data[-72:]) == NeedBytes(((0, 16),))
    with pytest.raises(NotAContainer):
        open_container(len(data), data[-72:], data[:16])


def test_small_object_ranges_are_clipped_to_the_tail() -> None:
    data = b"0123456789"
    assert open_container(10, data[-4:]) == NeedBytes(((0, 6),))
    with pytest.raises(NotAContainer):
        open_container(10, data)


def test_partial_containers() -> None:
    for partial in (
        build_deshead1([AEntry(b"a", b"x" * 500)])[:-72],
        b"DES2\x02\0\0\0" + bytes(500),
    ):
        assert open_container(len(partial), partial[-100:]) == NeedBytes(((0, 16),))
        with pytest.raises(PartialContainer):
            open_container(len(partial), partial[-100:], partial[:16])
        with pytest.raises(PartialContainer):
            parse_whole(partial)


def test_des2_with_footlike_bytes_in_its_index_is_des2() -> None:
    meta = b'{"x":"' + b"DESFOOT1" + b"a" * 50 + b'"}'
    data = build_des2([BEntry(b"a", b"x", meta=meta)])
    assert data[-72:-64] == b"DESFOOT1"
    assert parse_whole(data).format is Format.DES2
    index_start = parse_whole(data).index_start
    result = open_container(len(data), data[index_start:])
    assert result == NeedBytes(((0, 8),))
    with_head = open_container(len(data), data[-80:], data[:8])
    assert with_head == NeedBytes(((index_start, len(data) - 80),))
    assert open_container(len(data), data[index_start:], data[:8]) == parse_whole(data)


def test_des2_footer_with_bad_head_version() -> None:
    data = bytearray(build_des2([BEntry(b"a", b"x")]))
    data[4] = 7
    with pytest.raises(FormatError, match="version 7"):
        open_container(len(data), bytes(data[-20:]), bytes(data[:8]))


def test_head_given_that_meets_the_tail() -> None:
    data = build_des2([BEntry(b"a", b"x" * 100)])
    assert open_container(len(data), data[-30:], data[: len(data) - 30]) == parse_whole(data)
    assert open_container(len(data), data[-30:], data) == parse_whole(data)


def test_head_too_short_is_ignored() -> None:
    data = build_des2([BEntry(b"a", b"x" * 10_000)])
    index_start = parse_whole(data).index_start
    result = open_container(len(data), data[-30:], data[:4])
    assert result == NeedBytes(((0, 8), (index_start, len(data) - 30)))


def test_bad_arguments() -> None:
    with pytest.raises(FormatError):
        open_container(3, b"four")
    with pytest.raises(NotAContainer):
        open_container(0, b"")


def test_deshead1_without_head_trusts_the_footer() -> None:
    # The head is only checked when it is at hand; a tail-only open skips it by design.
    data = build_deshead1([AEntry(b"a", b"x")])
    broken = b"XXXXXXXX" + data[8:]
    assert isinstance(open_container(len(broken), broken[16:]), ContainerIndex)
    with pytest.raises(NotAContainer):
        open_container(len(broken), broken[16:], broken[:16])


def test_need_bytes_for_des2_footer_when_tail_is_short() -> None:
    data = build_des2([BEntry(b"a", b"x" * 100)])
    result = open_container(len(data), data[-5:], data[:16])
    assert result == NeedBytes(((len(data) - 12, len(data) - 5),))
    size_field = struct.unpack_from("<Q", data, len(data) - 8)[0]
    assert size_field == len(data) - 12 - parse_whole(data).index_start
