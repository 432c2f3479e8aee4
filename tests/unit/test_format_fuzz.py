"""Hostile bytes: every outcome is an index, a NeedBytes or a desfs FormatError, never a crash.

The exhaustive truncation and single-byte-corruption sweeps over small containers are
plain deterministic loops; hypothesis covers arbitrary bytes and random builder inputs.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desfs.errors import FormatError
from desfs.format.container import open_container, parse_whole
from desfs.format.model import ContainerIndex, NeedBytes
from tests.support.fixtures import AEntry, BEntry, build_des2, build_deshead1, containers
from tests.support.opening import check_index

SMALL_FIXTURES = [p for p in containers() if p.stat().st_size < 2048]
FUZZ = settings(max_examples=250, deadline=None, database=None)


def _builder_samples() -> dict[str, bytes]:
    a = [
        AEntry(b"a.txt", b"hello", b'{"k":"v"}'),
        AEntry(b"empty", b"", b""),
        AEntry(b"big", b"x" * 9, b'{"external_key":"d/_bigFiles/big"}', flags=1),
    ]
    b = [
        BEntry(b"a", b"hello", meta=b'{"k":1}'),
        BEntry(b"z", b"\x28\xb5\x2f\xfd\x20\x00\x01\x00\x00", codec=1, size=0),
        BEntry(b"big", bigfile_hash=b"ab" * 32, bigfile_size=7),
    ]
    return {
        "deshead1": build_deshead1(a),
        "des2-v2": build_des2(b),
        "des2-v1-codec": build_des2(b[:2], version=1, variant="codec"),
        "des2-v1-nocodec": build_des2(b[:1], version=1, variant="nocodec"),
    }


SAMPLES = {p.parent.name + "/" + p.name: p.read_bytes() for p in SMALL_FIXTURES}
SAMPLES.update(_builder_samples())


def check_whole(data: bytes) -> None:
    """parse_whole gives an index or a FormatError; readable entries decode or EntryError."""
    try:
        index = parse_whole(data)
    except FormatError:
        return
    check_index(index, data)


def check_open(data: bytes, tail_len: int, head_len: int | None) -> None:
    """open_container on a window of `data` answers sanely, and NeedBytes is well-formed."""
    size = len(data)
    tail = data[size - tail_len :]
    head = None if head_len is None else data[:head_len]
    try:
        result = open_container(size, tail, head)
    except FormatError:
        return
    if isinstance(result, ContainerIndex):
        check_index(result, data)
        return
    assert isinstance(result, NeedBytes)
    assert result.ranges
    known_head = 0 if head is None or tail_len == size else len(head)
    for start, end in result.ranges:
        assert known_head <= start < end <= size - tail_len


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_truncation(name: str) -> None:
    data = SAMPLES[name]
    for length in range(len(data)):
        with pytest.raises(FormatError):
            parse_whole(data[:length])
        check_open(data[:length], min(length, 72), None)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_single_byte_corruption(name: str) -> None:
    data = SAMPLES[name]
    rng = random.Random(name)
    for position in range(len(data)):
        original = data[position]
        for value in {original ^ 0xFF, 0x00, 0x01, 0x80, rng.randrange(256)} - {original}:
            check_whole(data[:position] + bytes([value]) + data[position + 1 :])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_count_and_length_field_maxed(name: str) -> None:
    # Any aligned u32/u64 window set to all ones: the "huge length" family of lies.
    data = SAMPLES[name]
    for fmt, value in (("<I", 2**32 - 1), ("<Q", 2**64 - 1), ("<Q", 2**63)):
        for position in range(len(data) - struct.calcsize(fmt) + 1):
            mutated = bytearray(data)
            struct.pack_into(fmt, mutated, position, value)
            check_whole(bytes(mutated))


PREFIXES = st.sampled_from([b"", b"DESHEAD1\x01" + bytes(7), b"DES2\x02\0\0\0", b"DES2\x01\0\0\0"])
SUFFIXES = st.one_of(
    st.just(b""),
    st.binary(max_size=8).map(lambda b: b"DESI" + b.ljust(8, b"\0")),
    st.binary(max_size=64).map(lambda b: b"DESFOOT1\x01" + bytes(7) + b.ljust(56, b"\0")),
)


@FUZZ
@given(body=st.binary(max_size=4096))
def test_arbitrary_bytes(body: bytes) -> None:
    check_whole(body)
    check_open(body, min(len(body), 100), None)


@FUZZ
@given(prefix=PREFIXES, body=st.binary(max_size=4000), suffix=SUFFIXES, data=st.data())
def test_magic_framed_bytes(prefix: bytes, body: bytes, suffix: bytes, data: st.DataObject) -> None:
    blob = prefix + body + suffix
    check_whole(blob)
    tail_len = data.draw(st.integers(0, len(blob)), label="tail_len")
    head_len = data.draw(st.sampled_from([None, 8, 16]), label="head_len")
    check_open(blob, tail_len, head_len)


A_ENTRIES = st.builds(
    AEntry,
    name=st.binary(max_size=12),
    data=st.binary(max_size=40),
    meta=st.sampled_from([b"", b"{}", b'{"a":1}', b"[1]", b"{", b'{"external_key":"k"}']),
    flags=st.sampled_from([0, 0, 0, 1, 2, 8, 0x100]),
)
B_ENTRIES = st.builds(
    BEntry,
    name=st.binary(max_size=12),
    stored=st.binary(max_size=40),
    codec=st.sampled_from([0, 0, 1, 2, 9]),
    meta=st.sampled_from([b"", b"{}", b'{"a":1}', b"[1]", b"{"]),
    flags=st.sampled_from([0, 0, 0, 2, 0x80]),
    bigfile_hash=st.sampled_from([None, None, b"ab" * 32, b"../x"]),
)


@FUZZ
@given(
    entries=st.lists(A_ENTRIES, max_size=6),
    position=st.integers(0, 10**6),
    value=st.integers(0, 255),
)
def test_random_deshead1_containers(entries: list[AEntry], position: int, value: int) -> None:
    data = build_deshead1(entries)
    index = parse_whole(data)
    assert len(index.entries) == len(entries)
    check_index(index, data)
    position %= len(data)
    check_whole(data[:position] + bytes([value]) + data[position + 1 :])


@FUZZ
@given(
    entries=st.lists(B_ENTRIES, max_size=6),
    version=st.sampled_from([1, 2, 2]),
    variant=st.sampled_from(["codec", "nocodec"]),
    position=st.integers(0, 10**6),
    value=st.integers(0, 255),
)
def test_random_des2_containers(
    entries: list[BEntry], version: int, variant: str, position: int, value: int
) -> None:
    data = build_des2(entries, version=version, variant=variant)
    check_whole(data)
    if version == 2:
        assert [e.name for e in parse_whole(data).entries] == [e.name for e in entries]
    position %= len(data)
    check_whole(data[:position] + bytes([value]) + data[position + 1 :])


def test_samples_are_valid() -> None:
    assert len(SMALL_FIXTURES) > 30
    for name, data in SAMPLES.items():
        assert isinstance(parse_whole(data), ContainerIndex), name


def test_fixture_paths_exist() -> None:
    assert all(isinstance(p, Path) and p.is_file() for p in SMALL_FIXTURES)
