"""Random reads in large compressed entries: decoded once, cached in blocks, always exact."""

from __future__ import annotations

import random

import lz4.frame
import pytest
import zstandard

from desfs.archive.decoded import DecodedBlocks
from desfs.cache.lru import ByteLRU
from desfs.errors import EntryError
from desfs.format.model import Codec, Entry

BLOCK = 64 * 1024
OFFSET = 100  # where the stored bytes sit inside the pretend container


def _payload(size: int) -> bytes:
    rng = random.Random(5)
    words = [rng.randbytes(rng.randint(3, 12)) for _ in range(300)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words)
    return bytes(out[:size])


def _entry(codec: Codec, data: bytes) -> tuple[Entry, bytes]:
    if codec is Codec.ZSTD:
        stored = zstandard.ZstdCompressor(level=3).compress(data)
    else:
        stored = lz4.frame.compress(data)
    entry = Entry(b"big", 0, len(data), OFFSET, len(stored), codec)
    return entry, b"\0" * OFFSET + stored


class CountingFetch:
    def __init__(self, container: bytes) -> None:
        self.container = container
        self.fetched = 0

    async def __call__(self, start: int, end: int) -> bytes:
        assert end > start
        self.fetched += end - start
        return self.container[start:end]


@pytest.mark.parametrize("codec", [Codec.ZSTD, Codec.LZ4])
async def test_scattered_reads_decode_each_byte_once(codec: Codec) -> None:
    data = _payload(6 * 1024 * 1024)
    entry, container = _entry(codec, data)
    fetch = CountingFetch(container)
    blocks = DecodedBlocks(ByteLRU(64 * 1024 * 1024), BLOCK, 64 * 1024 * 1024)
    rng = random.Random(1)
    for _ in range(300):
        start = rng.randrange(0, len(data))
        end = min(len(data), start + rng.randint(1, 40_000))
        assert await blocks.read("c", entry, start, end, fetch) == data[start:end]
    # Forward and backward jumps alike: the stored bytes were pulled through once.
    assert fetch.fetched == entry.stored_length


async def test_small_cache_still_returns_exact_bytes() -> None:
    data = _payload(3 * 1024 * 1024)
    entry, container = _entry(Codec.ZSTD, data)
    fetch = CountingFetch(container)
    blocks = DecodedBlocks(ByteLRU(3 * BLOCK), BLOCK, 64 * 1024 * 1024)
    rng = random.Random(2)
    for _ in range(40):
        start = rng.randrange(0, len(data))
        end = min(len(data), start + rng.randint(1, 5 * BLOCK))
        assert await blocks.read("c", entry, start, end, fetch) == data[start:end]


async def test_sequential_read_never_restarts() -> None:
    data = _payload(5 * 1024 * 1024)
    entry, container = _entry(Codec.LZ4, data)
    fetch = CountingFetch(container)
    blocks = DecodedBlocks(
        ByteLRU(2 * BLOCK), BLOCK, 64 * 1024 * 1024
    )  # far smaller than the entry
    got = bytearray()
    for start in range(0, len(data), 128 * 1024):
        got += await blocks.read("c", entry, start, min(len(data), start + 128 * 1024), fetch)
    assert bytes(got) == data
    assert fetch.fetched == entry.stored_length


async def test_lying_frame_is_an_entry_error() -> None:
    data = _payload(2 * 1024 * 1024)
    entry, container = _entry(Codec.ZSTD, data)
    bigger = Entry(b"big", 0, len(data) + 10, OFFSET, entry.stored_length, Codec.ZSTD)
    blocks = DecodedBlocks(ByteLRU(16 * 1024 * 1024), BLOCK, 64 * 1024 * 1024)
    with pytest.raises(EntryError):
        await blocks.read("c", bigger, len(data) - 5, len(data) + 10, CountingFetch(container))
