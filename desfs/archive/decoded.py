"""Random reads inside large compressed entries, without decompressing them each time.

A zstd or lz4 frame cannot be entered in the middle, so decoded bytes are cached in
fixed blocks, and each large entry keeps a cursor: a decoder that has produced the
entry's first `position` bytes and can go on from there. A read of cached blocks costs
nothing; a read further on advances the cursor (filling every block on the way); only a
read before the cursor of blocks that were evicted restarts a decoder from the start.

The decoder runs in a worker thread and pulls stored bytes through `fetch`, called back
on the trio thread, so stored bytes go through the same block cache and single flight
as every other read. Threads only return decoded blocks; trio puts them in the cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

import trio
from cachetools import LRUCache

from desfs.cache.lru import ByteLRU
from desfs.errors import EntryError
from desfs.format.codecs import PayloadStream
from desfs.format.model import Codec, Entry

Fetch = Callable[[int, int], Awaitable[bytes]]
STEP = 4 * 1024 * 1024  # decoded bytes one worker-thread call produces at most
SOURCE_CHUNK = 1024 * 1024  # stored bytes fetched per callback
MAX_FAILED = 1024
_ZSTD_WINDOW_FLOOR = 8 << 20  # the decoder's window is at most max(size, this), at most
_ZSTD_WINDOW_CAP = 128 << 20  # this (format.codecs allows no more)
_LZ4_BUFFERS = 8 << 20  # an lz4 frame's blocks are 4 MiB at most


def decoder_cost(entry: Entry) -> int:
    """The most memory a live decoder of `entry` can hold (its window and buffers)."""
    if entry.codec is Codec.ZSTD:
        return min(max(entry.size, _ZSTD_WINDOW_FLOOR), _ZSTD_WINDOW_CAP)
    return _LZ4_BUFFERS


class _Source:
    """Stored bytes of one entry, fetched through the trio side on demand."""

    def __init__(self, fetch: Fetch, base: int, length: int) -> None:
        self._fetch = fetch
        self._base = base
        self._length = length
        self._pos = 0

    def read(self, size: int) -> bytes:
        size = min(size, SOURCE_CHUNK, self._length - self._pos)
        if size <= 0:
            return b""
        start = self._base + self._pos
        data = trio.from_thread.run(self._fetch, start, start + size)
        self._pos += len(data)
        return data


@dataclass(slots=True)
class _Cursor:
    stream: PayloadStream
    cost: int  # decoder_cost of its entry
    lock: trio.Lock = field(default_factory=trio.Lock)
    pending: bytes = b""  # decoded bytes of a block not complete yet


class DecodedBlocks:
    def __init__(
        self, cache: ByteLRU[tuple[object, ...]], block_size: int, decoder_budget: int
    ) -> None:
        """`decoder_budget`: bytes all live decoders may hold together (their windows);
        one decoder is kept whatever its window, or a large entry could not be read."""
        self._cache = cache
        self._block = block_size
        self._cursors: LRUCache[Hashable, _Cursor] = LRUCache(
            maxsize=max(decoder_budget, 1), getsizeof=lambda cursor: cursor.cost
        )
        self._lone: tuple[Hashable, _Cursor] | None = None  # a decoder over the budget
        # Entries whose frames proved bad: later reads fail at once instead of decoding
        # the whole entry again to find the same lie.
        self._failed: LRUCache[Hashable, EntryError] = LRUCache(maxsize=MAX_FAILED)
        self._limiter = trio.CapacityLimiter(2)

    async def read(self, oid: Hashable, entry: Entry, start: int, end: int, fetch: Fetch) -> bytes:
        """Decoded bytes [start, end) of `entry` (already clamped to its size)."""
        failed = self._failed.get((oid, entry.position))
        if failed is not None:
            raise EntryError(str(failed))
        try:
            return await self._read(oid, entry, start, end, fetch)
        except EntryError as exc:
            self._failed[(oid, entry.position)] = exc
            self._cursors.pop((oid, entry.position), None)
            if self._lone is not None and self._lone[0] == (oid, entry.position):
                self._lone = None
            raise

    async def _read(self, oid: Hashable, entry: Entry, start: int, end: int, fetch: Fetch) -> bytes:
        first, last = start // self._block, (end - 1) // self._block
        blocks = [self._cache.get((oid, entry.position, k)) for k in range(first, last + 1)]
        if any(b is None for b in blocks):
            missing = next(first + i for i, b in enumerate(blocks) if b is None)
            await self._advance(oid, entry, missing, last, fetch)
            blocks = [self._cache.get((oid, entry.position, k)) for k in range(first, last + 1)]
        if any(b is None for b in blocks):
            # The cache was too small to keep what was just decoded: decode again, once.
            return await self._read_uncached(entry, start, end, fetch)
        joined = b"".join(b for b in blocks if b is not None)
        offset = start - first * self._block
        return joined[offset : offset + (end - start)]

    async def _advance(
        self, oid: Hashable, entry: Entry, first: int, last: int, fetch: Fetch
    ) -> None:
        key = (oid, entry.position)
        cursor = self._cursor(key)
        if cursor is None or cursor.stream.position - len(cursor.pending) > first * self._block:
            source = _Source(fetch, entry.offset, entry.stored_length)
            cursor = _Cursor(PayloadStream(entry, source), decoder_cost(entry))
            self._keep(key, cursor)
        async with cursor.lock:
            goal = min(entry.size, (last + 1) * self._block)
            while cursor.stream.position < goal:
                done = await trio.to_thread.run_sync(
                    self._decode_step, cursor, goal, entry.size, limiter=self._limiter
                )
                for number, data in done:
                    self._cache.put((oid, entry.position, number), data)

    def _decode_step(self, cursor: _Cursor, goal: int, size: int) -> list[tuple[int, bytes]]:
        """Worker thread: decode up to STEP bytes towards `goal`, cut into whole blocks.

        The caller holds the cursor's lock, so this thread is its only user meanwhile.
        """
        stream, produced = cursor.stream, [cursor.pending]
        budget = min(STEP, goal - stream.position)
        while budget > 0:
            chunk = stream.read(budget)
            if not chunk:
                break
            produced.append(chunk)
            budget -= len(chunk)
        data = b"".join(produced)
        base = stream.position - len(data)
        at_end = stream.position >= size
        complete = len(data) if at_end else len(data) - len(data) % self._block
        cursor.pending = data[complete:]
        return [
            ((base + i) // self._block, data[i : i + self._block])
            for i in range(0, complete, self._block)
        ]

    async def _read_uncached(self, entry: Entry, start: int, end: int, fetch: Fetch) -> bytes:
        def decode() -> bytes:
            stream = PayloadStream(entry, _Source(fetch, entry.offset, entry.stored_length))
            skipped = 0
            while skipped < start:
                skipped += len(stream.read(min(STEP, start - skipped)))
            out = []
            while stream.position < end:
                piece = stream.read(end - stream.position)
                if not piece:
                    break
                out.append(piece)
            return b"".join(out)

        return await trio.to_thread.run_sync(decode, limiter=self._limiter)

    def _cursor(self, key: Hashable) -> _Cursor | None:
        if self._lone is not None and self._lone[0] == key:
            return self._lone[1]
        return self._cursors.get(key)

    def _keep(self, key: Hashable, cursor: _Cursor) -> None:
        if cursor.cost <= self._cursors.maxsize:
            self._cursors[key] = cursor
        else:
            self._cursors.clear()
            self._lone = (key, cursor)

    def drop(self, oid: Hashable) -> None:
        if self._lone is not None and isinstance(self._lone[0], tuple) and self._lone[0][0] == oid:
            self._lone = None
        for key in [k for k in self._cursors if isinstance(k, tuple) and k[0] == oid]:
            self._cursors.pop(key, None)
        for key in [k for k in self._failed if isinstance(k, tuple) and k[0] == oid]:
            self._failed.pop(key, None)
