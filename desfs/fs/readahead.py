"""Reads of large byte ranges through the block cache, with a growing readahead window.

Used for large uncompressed entries and for large external payloads. Each open file has
a `Stream`: while its reads stay sequential the window starts at `readahead_min` and
doubles up to `readahead_max` (never more than a quarter of the block cache, which must
hold a window until it is read); a jump resets it, and a random read fetches only its
aligned blocks. All windows in flight together stay under `prefetch_budget` bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from desfs.cache.lru import ByteLRU
from desfs.cache.ranges import BlockKey, ObjectRef, RangeCache
from desfs.cache.singleflight import SingleFlight
from desfs.config import CacheSettings

Fetch = Callable[[int, int], Awaitable[bytes]]


@dataclass(slots=True)
class Stream:
    """Readahead state of one open file handle."""

    next_offset: int = 0
    window: int = 0


class Readahead:
    def __init__(self, lru: ByteLRU[BlockKey], settings: CacheSettings) -> None:
        self.blocks = RangeCache(lru, settings.block_size, SingleFlight())
        self._lru = lru
        self._settings = settings
        self._in_flight = 0
        self.prefetched_bytes = 0

    async def read(
        self,
        obj: ObjectRef,
        base: int,
        limit: int,
        span: tuple[int, int],
        stream: Stream,
        fetch: Fetch,
    ) -> bytes:
        """Bytes `span` (relative to `base`) of the region [base, limit) of `obj`."""
        offset, end = span
        lo, hi = base + offset, base + end
        sequential = offset == stream.next_offset and offset > 0
        stream.next_offset = end
        if not self.blocks.contains(obj, lo, hi):
            if sequential or offset == 0:
                stream.window = self._next_window(stream.window)
                span_end = min(limit, lo + max(stream.window, hi - lo))
                if self._in_flight + (span_end - lo) <= self._settings.prefetch_budget:
                    await self._prefetch(obj, lo, span_end, fetch)
            else:
                stream.window = 0
        return await self.blocks.read(obj, lo, hi, fetch)

    async def _prefetch(self, obj: ObjectRef, lo: int, hi: int, fetch: Fetch) -> None:
        self._in_flight += hi - lo
        try:
            await self.blocks.fetch_span(obj, lo, hi, fetch)
            self.prefetched_bytes += hi - lo
        finally:
            self._in_flight -= hi - lo

    def _next_window(self, window: int) -> int:
        settings = self._settings
        # A window the block cache cannot hold evicts its own first blocks before they are
        # read, and every later read of them fetches a whole window again.
        cap = max(settings.block_size, min(settings.readahead_max, self._lru.budget // 4))
        if window == 0:
            return min(settings.readahead_min, cap)
        return min(window * 2, cap)
