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

import sys
from pathlib import Path

import atheris

# The oracles are the test suite's own (tests/support/opening.py): one definition of
# "a sane parse" for hypothesis and for atheris.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from desfs.errors import FormatError
    from desfs.format.container import open_container, parse_whole
    from desfs.format.model import ContainerIndex, Format, NeedBytes
    from tests.support.opening import check_index, check_need, windowed_open


def whole(data: bytes) -> ContainerIndex | None:
    try:
        index = parse_whole(data)
    except FormatError:
        return None
    check_index(index, data)
    return index


def windowed(data: bytes, window: int, head: bytes | None) -> ContainerIndex | None:
    try:
        return windowed_open(data, window, head)
    except FormatError:
        return None


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
