"""The block cache that fills itself with coalesced range fetches.

An object is cut into fixed-size blocks (the last one shorter), cached in a `ByteLRU`
under `(object_id, block_no)`. A read takes the blocks it finds in the LRU, joins the
loads already in flight for others (single flight per block), and fetches the rest with
one call per run of adjacent missing blocks, the runs concurrently. Fetched blocks go
into the LRU before their waiters are released.

The object id must change whenever the object's bytes may change (callers include the
ETag in it), so that blocks of a replaced container are never mixed with new ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from desfs.cache.lru import ByteLRU
from desfs.cache.singleflight import Claim, SingleFlight
from desfs.errors import StorageError, UsageError

BlockKey = tuple[Hashable, int]
# Fetches the absolute byte range [start, end) of one object; the caller binds key and ETag.
Fetch = Callable[[int, int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class ObjectRef:
    object_id: Hashable
    size: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise UsageError(f"object {self.object_id!r} has a negative size {self.size}")


class RangeCache:
    """Byte ranges of immutable objects, served from cached blocks or coalesced fetches."""

    def __init__(
        self, lru: ByteLRU[BlockKey], block_size: int, flights: SingleFlight[BlockKey, bytes]
    ) -> None:
        if block_size <= 0:
            raise UsageError(f"block size must be > 0, got {block_size}")
        self._lru = lru
        self._block_size = block_size
        self._flights = flights

    @property
    def block_size(self) -> int:
        return self._block_size

    async def read(self, obj: ObjectRef, start: int, end: int, fetch: Fetch) -> bytes:
        """Bytes [start, end) of `obj`, clamped to its size; whole blocks are fetched."""
        return await self._span(obj, start, end, fetch)

    async def fetch_span(self, obj: ObjectRef, start: int, end: int, fetch: Fetch) -> bytes:
        """Make the blocks covering [start, end) resident and return those bytes.

        Meant for prefetch and readahead: the caller picks a span wider than any one
        request (a run of neighbouring small files, the next readahead window) so that
        its missing blocks arrive in as few fetches as possible. Same rules as `read`.
        """
        return await self._span(obj, start, end, fetch)

    def contains(self, obj: ObjectRef, start: int, end: int) -> bool:
        """True when every block covering [start, end) (clamped) is cached."""
        start, end = _clamp(obj, start, end)
        return all((obj.object_id, block) in self._lru for block in self._blocks(start, end))

    def drop_object(self, object_id: Hashable) -> int:
        """Forget every cached block of `object_id`; returns how many were dropped."""
        return self._lru.discard_where(lambda key: key[0] == object_id)

    def _blocks(self, start: int, end: int) -> range:
        if start >= end:
            return range(0)
        return range(start // self._block_size, (end - 1) // self._block_size + 1)

    async def _span(self, obj: ObjectRef, start: int, end: int, fetch: Fetch) -> bytes:
        start, end = _clamp(obj, start, end)
        blocks = self._blocks(start, end)
        if not blocks:
            return b""
        found: dict[int, bytes] = {}
        joining: list[int] = []
        missing: list[int] = []
        for block in blocks:
            value = self._lru.get((obj.object_id, block))
            if value is not None:
                found[block] = value
            elif self._flights.in_flight((obj.object_id, block)):
                joining.append(block)
            else:
                missing.append(block)
        if joining or missing:
            await self._gather(obj, joining, missing, fetch, found)
        return self._assemble(found, blocks, start, end)

    async def _gather(
        self,
        obj: ObjectRef,
        joining: list[int],
        missing: list[int],
        fetch: Fetch,
        found: dict[int, bytes],
    ) -> None:
        """Fill `found` with the joined and the missing blocks, all concurrently."""
        errors: list[Exception] = []
        # No await between classifying the blocks and claiming the missing ones.
        with self._flights.claim((obj.object_id, block) for block in missing) as claim:
            async with trio.open_nursery() as nursery:
                for block in joining:
                    job = partial(self._join, obj, block, fetch, found)
                    nursery.start_soon(_guarded, job, errors, nursery.cancel_scope)
                for first, last in _runs(missing):
                    job = partial(self._lead, obj, first, last, fetch, claim, found)
                    nursery.start_soon(_guarded, job, errors, nursery.cancel_scope)
            if errors:
                # Raised here, inside the claim, so that its unsettled blocks fail too.
                raise errors[0]

    async def _lead(
        self,
        obj: ObjectRef,
        first: int,
        last: int,
        fetch: Fetch,
        claim: Claim[BlockKey, bytes],
        found: dict[int, bytes],
    ) -> None:
        values = await self._fetch_blocks(obj, first, last, fetch)
        for block, value in zip(range(first, last + 1), values, strict=True):
            claim.settle((obj.object_id, block), value)
            found[block] = value

    async def _join(
        self, obj: ObjectRef, block: int, fetch: Fetch, found: dict[int, bytes]
    ) -> None:
        key = (obj.object_id, block)
        found[block] = await self._flights.run(key, partial(self._load_one, obj, block, fetch))

    async def _load_one(self, obj: ObjectRef, block: int, fetch: Fetch) -> bytes:
        """The load a follower runs when the flight it meant to join is gone: it may have
        finished (the block is cached) or been cancelled (the block must be fetched)."""
        value = self._lru.get((obj.object_id, block))
        if value is not None:
            return value
        return (await self._fetch_blocks(obj, block, block, fetch))[0]

    async def _fetch_blocks(
        self, obj: ObjectRef, first: int, last: int, fetch: Fetch
    ) -> list[bytes]:
        """One fetch of blocks first..last, split into blocks and put in the LRU."""
        size = self._block_size
        start, end = first * size, min((last + 1) * size, obj.size)
        data = await fetch(start, end)
        if len(data) != end - start:
            raise StorageError(
                f"fetch of bytes [{start}, {end}) of {obj.object_id!r} returned "
                f"{len(data)} bytes instead of {end - start}"
            )
        data = bytes(data)
        values = [data[offset : offset + size] for offset in range(0, end - start, size)]
        for block, value in zip(range(first, last + 1), values, strict=True):
            self._lru.put((obj.object_id, block), value)
        return values

    def _assemble(self, found: dict[int, bytes], blocks: range, start: int, end: int) -> bytes:
        first, last = blocks[0], blocks[-1]
        head = start - first * self._block_size
        if first == last:
            return found[first][head : head + end - start]
        pieces = [found[first][head:]]
        pieces.extend(found[block] for block in range(first + 1, last))
        pieces.append(found[last][: end - last * self._block_size])
        return b"".join(pieces)


def _clamp(obj: ObjectRef, start: int, end: int) -> tuple[int, int]:
    if start < 0 or end < start:
        raise UsageError(f"bad byte range [{start}, {end}) of {obj.object_id!r}")
    return min(start, obj.size), min(end, obj.size)


def _runs(blocks: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive block numbers, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for block in blocks:
        if runs and runs[-1][1] == block - 1:
            runs[-1] = (runs[-1][0], block)
        else:
            runs.append((block, block))
    return runs


async def _guarded(
    job: Callable[[], Awaitable[None]], errors: list[Exception], scope: trio.CancelScope
) -> None:
    """Run one child job; its failure is recorded and cancels its siblings, so the caller
    re-raises a plain desfs error rather than an exception group."""
    try:
        await job()
    except Exception as exc:
        errors.append(exc)
        scope.cancel()
