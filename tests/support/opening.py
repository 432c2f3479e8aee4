"""Oracles for container parsing, shared by the hypothesis tests and the atheris harness:
what a parsed index must satisfy, what a NeedBytes answer must look like, and opening a
container from a tail window exactly as a mount does."""

from __future__ import annotations

import contextlib

from desfs.errors import EntryError
from desfs.format.codecs import decode_payload
from desfs.format.container import open_container
from desfs.format.model import ContainerIndex, NeedBytes

MAX_ROUNDS = 4


def check_index(index: ContainerIndex, data: bytes) -> None:
    """Regions in order, every readable inline entry inside the data region and decodable
    (or an EntryError, which fails that entry only)."""
    assert index.size == len(data)
    assert 0 <= index.data_start <= index.data_end <= index.index_start <= len(data)
    for position, entry in enumerate(index.entries):
        assert entry.position == position
        if entry.error is not None or entry.external is not None:
            continue
        assert index.data_start <= entry.offset
        assert entry.offset + entry.stored_length <= index.data_end
        stored = data[entry.offset : entry.offset + entry.stored_length]
        with contextlib.suppress(EntryError):
            decode_payload(entry, stored)


def check_need(result: NeedBytes, size: int, tail_len: int) -> None:
    """Ranges are sorted, disjoint, inside the unknown part, and each is head or tail."""
    tail_start = size - tail_len
    previous_end = -1
    assert result.ranges
    for start, end in result.ranges:
        assert previous_end < start < end <= tail_start, (result, tail_start)
        assert start == 0 or end == tail_start, (result, tail_start)
        previous_end = end


def windowed_open(data: bytes, window: int, head: bytes | None) -> ContainerIndex:
    """Open `data` as a mount does: a tail window (and maybe the head), then the ranges
    the parser names, prepended to the tail or taken as the head, until it is done.
    FormatError passes through; a parser that makes no progress is an AssertionError."""
    size = len(data)
    tail = data[size - window :]
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
    raise AssertionError(f"no index after {MAX_ROUNDS} rounds (window {window})")
