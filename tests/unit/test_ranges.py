"""RangeCache: block reads, merged fetches of adjacent misses, joins, failures."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from desfs.cache.lru import ByteLRU
from desfs.cache.ranges import BlockKey, ObjectRef, RangeCache
from desfs.cache.singleflight import SingleFlight
from desfs.errors import StorageError, UsageError

BLOCK = 4


class ObjectFetch:
    """Serves byte ranges of reference bytes, records every call, can hold or break them."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []
        self.gate: trio.Event | None = None
        self.short_by = 0
        self.fail_at: int | None = None  # fail fetches that start here

    async def __call__(self, start: int, end: int) -> bytes:
        assert 0 <= start < end <= len(self.data), (start, end)
        self.calls.append((start, end))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_at == start:
            raise StorageError(f"injected failure at {start}")
        return self.data[start : end - self.short_by]


def make_cache(budget: int = 1 << 20, block: int = BLOCK) -> RangeCache:
    lru: ByteLRU[BlockKey] = ByteLRU(budget)
    flights: SingleFlight[BlockKey, bytes] = SingleFlight()
    return RangeCache(lru, block, flights)


def reference(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_read_within_one_block_fetches_that_block_once() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    assert await cache.read(obj, 5, 7, fetch) == data[5:7]
    assert await cache.read(obj, 4, 8, fetch) == data[4:8]
    assert fetch.calls == [(4, 8)]


async def test_reads_cross_block_boundaries_and_the_object_end() -> None:
    data = reference(14)  # blocks of 4, 4, 4, 2
    fetch = ObjectFetch(data)
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    assert await cache.read(obj, 3, 9, fetch) == data[3:9]
    assert fetch.calls == [(0, 12)]
    assert await cache.read(obj, 10, 100, fetch) == data[10:14]
    assert fetch.calls == [(0, 12), (12, 14)]
    assert await cache.read(obj, 0, 14, fetch) == data
    assert await cache.read(obj, 14, 20, fetch) == b""
    assert await cache.read(obj, 50, 60, fetch) == b""
    assert len(fetch.calls) == 2


async def test_zero_length_read_does_not_fetch() -> None:
    fetch = ObjectFetch(reference(16))
    cache = make_cache()
    assert await cache.read(ObjectRef("o", 16), 6, 6, fetch) == b""
    assert await cache.read(ObjectRef("empty", 0), 0, 10, fetch) == b""
    assert fetch.calls == []


async def test_bad_ranges_are_usage_errors() -> None:
    fetch = ObjectFetch(reference(16))
    cache = make_cache()
    with pytest.raises(UsageError):
        await cache.read(ObjectRef("o", 16), -1, 4, fetch)
    with pytest.raises(UsageError):
        await cache.read(ObjectRef("o", 16), 8, 4, fetch)
    with pytest.raises(UsageError):
        ObjectRef("o", -1)
    with pytest.raises(UsageError):
        make_cache(block=0)


async def test_adjacent_misses_are_merged_into_one_fetch_per_run() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    await cache.read(obj, 4, 8, fetch)  # block 1 cached
    fetch.calls.clear()
    assert await cache.read(obj, 0, 16, fetch) == data
    assert sorted(fetch.calls) == [(0, 4), (8, 16)]


async def test_independent_runs_are_fetched_concurrently() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    await cache.read(obj, 4, 8, fetch)
    fetch.calls.clear()
    fetch.gate = trio.Event()
    result: list[bytes] = []

    async def reader() -> None:
        result.append(await cache.read(obj, 0, 16, fetch))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(fetch.calls) == [(0, 4), (8, 16)]  # both started before either ended
        fetch.gate.set()
    assert result == [data]


async def test_ten_concurrent_readers_of_one_block_cause_one_fetch() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    fetch.gate = trio.Event()
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    results: list[bytes] = []

    async def reader(offset: int) -> None:
        results.append(await cache.read(obj, 8 + offset % 4, 12, fetch))

    async with trio.open_nursery() as nursery:
        for offset in range(10):
            nursery.start_soon(reader, offset)
        await trio.testing.wait_all_tasks_blocked()
        fetch.gate.set()
    assert fetch.calls == [(8, 12)]
    assert sorted(results) == sorted(data[8 + offset % 4 : 12] for offset in range(10))


async def test_a_read_joins_blocks_in_flight_and_fetches_the_others() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    fetch.gate = trio.Event()
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    results: list[bytes] = []

    async def reader(start: int, end: int) -> None:
        results.append(await cache.read(obj, start, end, fetch))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader, 4, 8)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(reader, 0, 12)
        await trio.testing.wait_all_tasks_blocked()
        fetch.gate.set()
    assert sorted(fetch.calls) == [(0, 4), (4, 8), (8, 12)]  # block 1 was not fetched twice
    assert sorted(results) == sorted([data[4:8], data[0:12]])


async def test_cancelled_leader_is_completed_by_a_follower_with_one_more_fetch() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    fetch.gate = trio.Event()
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    results: list[bytes] = []
    leader_scope = trio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await cache.read(obj, 0, 8, fetch)

    async def follower() -> None:
        results.append(await cache.read(obj, 4, 6, fetch))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(5):
            nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        leader_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        fetch.gate.set()
    assert leader_scope.cancelled_caught
    assert fetch.calls == [(0, 8), (4, 8)]
    assert results == [data[4:6]] * 5
    assert cache.contains(obj, 4, 8)
    assert not cache.contains(obj, 0, 4)


async def test_failed_leader_fails_followers_and_a_later_read_retries() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    fetch.gate = trio.Event()
    fetch.fail_at = 0
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await cache.read(obj, 0, 4, fetch)
        except StorageError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        fetch.gate.set()
    assert len(errors) == 3
    assert all(type(error) is StorageError for error in errors)
    assert fetch.calls == [(0, 4)]
    fetch.fail_at = None
    assert await cache.read(obj, 0, 4, fetch) == data[0:4]
    assert fetch.calls == [(0, 4), (0, 4)]


async def test_one_failed_run_fails_the_read_with_a_plain_error() -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    await cache.read(obj, 4, 8, fetch)
    fetch.fail_at = 0
    with pytest.raises(StorageError, match="injected failure at 0"):
        await cache.read(obj, 0, 16, fetch)
    assert not cache.contains(obj, 0, 4)


@pytest.mark.parametrize("short_by", [1, -1])
async def test_a_fetch_of_the_wrong_length_is_an_error_not_data(short_by: int) -> None:
    data = reference(16)
    fetch = ObjectFetch(data)
    fetch.short_by = short_by
    cache = make_cache()
    obj = ObjectRef("o", 12)  # a longer answer is possible: the data has 16 bytes
    with pytest.raises(StorageError, match="returned"):
        await cache.read(obj, 0, 12, fetch)
    assert not cache.contains(obj, 0, 12)


async def test_fetch_span_rounds_out_to_blocks_and_caches_them() -> None:
    data = reference(14)
    fetch = ObjectFetch(data)
    cache = make_cache()
    obj = ObjectRef("o", len(data))
    assert await cache.fetch_span(obj, 5, 13, fetch) == data[5:13]
    assert fetch.calls == [(4, 14)]
    assert cache.contains(obj, 4, 14)
    assert not cache.contains(obj, 3, 5)
    assert await cache.read(obj, 4, 14, fetch) == data[4:14]
    assert len(fetch.calls) == 1


async def test_drop_object_forgets_only_that_object() -> None:
    data = reference(8)
    fetch = ObjectFetch(data)
    cache = make_cache()
    old, other = ObjectRef(("key", "etag1"), 8), ObjectRef(("key2", "etag1"), 8)
    await cache.read(old, 0, 8, fetch)
    await cache.read(other, 0, 8, fetch)
    assert cache.drop_object(("key", "etag1")) == 2
    assert not cache.contains(old, 0, 1)
    assert cache.contains(other, 0, 8)
    assert cache.contains(old, 3, 3)  # an empty range needs no blocks


async def test_reads_larger_than_the_budget_still_return_every_byte() -> None:
    data = reference(40)
    fetch = ObjectFetch(data)
    cache = make_cache(budget=BLOCK)
    obj = ObjectRef("o", len(data))
    assert await cache.read(obj, 1, 39, fetch) == data[1:39]
    assert fetch.calls == [(0, 40)]
    assert cache.contains(obj, 36, 40)  # only the last block stayed
    assert not cache.contains(obj, 32, 36)
    assert await cache.read(obj, 1, 39, fetch) == data[1:39]
    assert fetch.calls == [(0, 40), (0, 36)]


async def _store(into: dict[int, bytes], index: int, read: Callable[[], Awaitable[bytes]]) -> None:
    into[index] = await read()


reads = st.lists(
    st.lists(st.tuples(st.integers(0, 220), st.integers(0, 60)), min_size=1, max_size=4),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(0, 200),
    block=st.integers(1, 17),
    budget=st.integers(0, 120),
    batches=reads,
    seed=st.integers(0, 2**16),
)
async def test_random_reads_return_exactly_the_reference_bytes(
    size: int, block: int, budget: int, batches: list[list[tuple[int, int]]], seed: int
) -> None:
    data = reference(size, seed)
    fetch = ObjectFetch(data)  # asserts every span is non-empty and inside the object
    cache = make_cache(budget=budget, block=block)
    obj = ObjectRef("o", size)
    for batch in batches:  # the reads of one batch run concurrently, so they share flights
        got: dict[int, bytes] = {}
        async with trio.open_nursery() as nursery:
            for index, (start, length) in enumerate(batch):
                read = partial(cache.read, obj, start, start + length, fetch)
                nursery.start_soon(_store, got, index, read)
        for index, (start, length) in enumerate(batch):
            assert got[index] == data[start : start + length]
    for start, end in fetch.calls:
        assert start % block == 0
        assert end % block == 0 or end == size
