"""atheris harness: container parsing from any bytes and any (size, tail, head).

Input layout: byte 0 holds the mode (bits 0-1), a head flag (bit 2) and a head length
(bits 3-7); bytes 1-2 (little-endian) a window or size hint; the rest is the object.
Mode 0 parses the object whole and decodes every readable entry. Mode 1 opens it as a
mount does (a tail window, maybe the head, then the ranges the parser names) and requires
the same index as the whole parse. Mode 2 hands `open_container` a size, tail and head that
need not agree. Anything but a desfs FormatError or EntryError is a crash.

    python fuzz/seeds.py fuzz/corpus
    python fuzz/fuzz_container.py fuzz/corpus/container -max_total_time=600
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from desfs.errors import EntryError, FormatError
    from desfs.format.codecs import decode_payload
    from desfs.format.container import open_container, parse_whole
    from desfs.format.model import ContainerIndex, Format, NeedBytes

MAX_ROUNDS = 4


def check_index(index: ContainerIndex, data: bytes) -> None:
    assert 0 <= index.data_start <= index.data_end <= index.index_start <= len(data)
    for position, entry in enumerate(index.entries):
        assert entry.position == position
        if entry.error is not None or entry.external is not None:
            continue
        assert index.data_start <= entry.offset
        assert entry.offset + entry.stored_length <= index.data_end
        stored = data[entry.offset : entry.offset + entry.stored_length]
        with contextlib.suppress(EntryError):
            assert len(decode_payload(entry, stored)) == entry.size


def check_need(need: NeedBytes, size: int, tail_len: int) -> None:
    previous_end = -1
    for start, end in need.ranges:
        assert previous_end < start < end <= size - tail_len, (need, size, tail_len)
        assert start == 0 or end == size - tail_len, (need, size, tail_len)
        previous_end = end


def whole(data: bytes) -> ContainerIndex | None:
    try:
        index = parse_whole(data)
    except FormatError:
        return None
    check_index(index, data)
    return index


def windowed(data: bytes, window: int, head: bytes | None) -> ContainerIndex | None:
    size = len(data)
    tail = data[size - window :]
    try:
        for _ in range(MAX_ROUNDS):
            result = open_container(size, tail, head)
            if isinstance(result, ContainerIndex):
                return result
            check_need(result, size, len(tail))
            tail_start = size - len(tail)
            for start, end in result.ranges:
                if end == tail_start:
                    tail = data[start:end] + tail
                if start == 0:
                    head = data[start:end]
    except FormatError:
        return None
    raise AssertionError(f"no index after {MAX_ROUNDS} rounds")


def inconsistent(data: bytes, size_hint: int, head_len: int, with_head: bool) -> None:
    """Size, tail and head cut from the input without regard for one another."""
    size = size_hint * 7 - 1000
    head = data[:head_len] if with_head else None
    tail = data[head_len:]
    try:
        result = open_container(size, tail, head)
    except FormatError:
        return
    if isinstance(result, NeedBytes):
        check_need(result, size, len(tail))
    else:
        assert result.size == size


def test_one_input(raw: bytes) -> None:
    if len(raw) < 3:
        return
    control, hint, data = raw[0], int.from_bytes(raw[1:3], "little"), raw[3:]
    mode, with_head, head_len = (control & 3) % 3, bool(control & 4), control >> 3
    if mode == 0:
        whole(data)
    elif mode == 1:
        window = min(max(hint, 1), len(data))
        opened = windowed(data, window, data[:16] if with_head else None)
        parsed = whole(data)
        if parsed is None and opened is not None and not with_head:
            # By design a DESHEAD1 container opens from its footer without its head.
            assert opened.format is Format.DESHEAD1 and data[:9] != b"DESHEAD1\x01"
            return
        assert opened == parsed
    else:
        inconsistent(data, hint, head_len, with_head)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
