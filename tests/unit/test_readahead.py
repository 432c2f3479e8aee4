"""The readahead's background window: what it fetches, and that its failures stay its own."""

from __future__ import annotations

import logging
import random

import pytest
import trio

from desfs.archive.readahead import PART, Readahead, Stream
from desfs.cache.lru import ByteLRU
from desfs.cache.ranges import BlockKey, ObjectRef
from desfs.errors import StorageError
from desfs.settings.sections import CacheSettings

MiB = 1024 * 1024
SIZE = 24 * MiB
DATA = random.Random(3).randbytes(SIZE)
READ = 1 * MiB
SETTINGS = CacheSettings(readahead_min=1 * MiB, readahead_max=8 * MiB)


class Store:
    """The object's bytes through a fetch callable; `fail_from` makes every fetch that
    starts at or past it fail `failures` times (then succeed), with `error`."""

    def __init__(self, fail_from: int = SIZE, failures: int = 0, error: Exception | None = None):
        self.fetched: list[tuple[int, int]] = []
        self.fail_from = fail_from
        self.failures = failures
        self.error = error or StorageError("injected")

    async def fetch(self, start: int, end: int) -> bytes:
        self.fetched.append((start, end))
        await trio.sleep(0.001)  # a real await, so background work interleaves
        if start >= self.fail_from and self.failures:
            self.failures -= 1
            raise self.error
        return DATA[start:end]


def _readahead() -> Readahead:
    return Readahead(ByteLRU[BlockKey](256 * MiB), SETTINGS)


async def _read_all(
    readahead: Readahead, store: Store, upto: int = SIZE, pause_at: int | None = None
) -> bytes:
    """Read [0, upto) in order; at `pause_at` wait until the background work has ended."""
    obj, stream, pieces = ObjectRef("obj", SIZE), Stream(), []
    for offset in range(0, upto, READ):
        if offset == pause_at:
            await trio.sleep(0.2)
        span = (offset, min(upto, offset + READ))
        pieces.append(await readahead.read(obj, 0, SIZE, span, stream, store.fetch))
    return b"".join(pieces)


async def test_a_sequential_reader_has_the_next_window_fetched_before_it_gets_there() -> None:
    store = Store()
    assert await _read_all(_readahead(), store, upto=12 * MiB) == DATA[: 12 * MiB]
    await trio.sleep(0.1)  # the background task's turn
    # Windows of 1, 2, 4, 8 MiB: [0, 15) on demand, and [15, 23) asked for ahead.
    assert max(end for _, end in store.fetched) >= 23 * MiB
    assert all(end - start <= PART for start, end in store.fetched), store.fetched


async def test_a_failed_background_window_is_fetched_again_by_later_reads() -> None:
    # [7, 15) is asked for ahead when the reader reaches 5 MiB, and fails.
    store = Store(fail_from=7 * MiB, failures=1)
    assert await _read_all(_readahead(), store, pause_at=6 * MiB) == DATA
    assert any(start >= 7 * MiB for start, _ in store.fetched[-10:])


async def test_an_unexpected_error_in_the_background_is_logged_and_reads_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store(fail_from=7 * MiB, failures=1, error=ValueError("a bug"))
    with caplog.at_level(logging.ERROR, logger="desfs.archive.readahead"):
        assert await _read_all(_readahead(), store, pause_at=6 * MiB) == DATA
    assert any("readahead of" in r.getMessage() for r in caplog.records), caplog.records
