"""Reads of large byte ranges through the block cache, with a growing readahead window.

Used for large uncompressed entries and for large external payloads. Each open file has
a `Stream`: while its reads stay sequential the window starts at `readahead_min` and
doubles up to `readahead_max` (never more than a quarter of the block cache, which must
hold a window until it is read); a jump resets it, and a random read fetches only its
aligned blocks. An open file whose random reads keep missing (`RANDOM_MISSES`) in an
entry that fits in half the block cache is fetched whole, in parallel 8 MiB GETs: on a
store with tens of milliseconds per request that is one round instead of one per block.
A window larger than `PART` is fetched as parallel GETs of `PART` bytes: one stream
from an object store is slower than several (the benchmark measures both), and the
window's bytes and block alignment do not change. Once a sequential reader is past the
middle of its last window, the next one is asked for in the background (a trio system
task: it belongs to no request), so the store works while the reader consumes. A read
that arrives while that fetch is in flight joins it and shares its failure, as it would
its own fetch's; a read that comes after a failure fetches its blocks again. All windows
in flight together stay under `prefetch_budget` bytes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from desfs.cache.lru import ByteLRU
from desfs.cache.ranges import BlockKey, ObjectRef, RangeCache
from desfs.cache.singleflight import SingleFlight
from desfs.errors import DesfsError
from desfs.settings.sections import CacheSettings

Fetch = Callable[[int, int], Awaitable[bytes]]

log = logging.getLogger(__name__)


SEEK_TOLERANCE = 1024 * 1024  # distance from the stream's head that still counts as in order
RANDOM_MISSES = 4  # random misses in one open file before it is fetched whole
WHOLE_CHUNK = 8 * 1024 * 1024  # the parallel GETs a whole-entry fetch is cut into
PART = 4 * 1024 * 1024  # the parallel GETs a sequential window is cut into


@dataclass(slots=True)
class Stream:
    """Readahead state of one open file handle."""

    next_offset: int = 0
    window: int = 0
    random_misses: int = 0
    fetched_whole: bool = False
    ahead: int = 0  # end (relative to the entry) of what the store has been asked for


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
        # The kernel's own readahead sends neighbouring requests out of order: a read
        # near the stream's head (within a window either way) still continues it.
        near = abs(offset - stream.next_offset) <= max(stream.window, SEEK_TOLERANCE)
        sequential = offset > 0 and near
        stream.next_offset = max(stream.next_offset, end) if near else end
        if not near:
            stream.ahead = 0
        in_order = sequential or offset == 0
        if not self.blocks.contains(obj, lo, hi):
            if in_order and end > stream.ahead:
                stream.window = self._next_window(stream.window)
                span_end = min(limit, lo + max(stream.window, hi - lo))
                if self._in_flight + (span_end - lo) <= self._settings.prefetch_budget:
                    await self._prefetch_window(obj, lo, span_end, fetch)
                    stream.ahead = span_end - base
            elif not in_order:
                stream.window = 0
                stream.random_misses += 1
                if self._fetch_whole_now(stream, limit - base):
                    await self._fetch_whole(obj, base, limit, fetch)
        data = await self.blocks.read(obj, lo, hi, fetch)
        if in_order and stream.window:
            self._read_ahead(obj, base, limit, stream, end, fetch)
        return data

    def _read_ahead(
        self, obj: ObjectRef, base: int, limit: int, stream: Stream, end: int, fetch: Fetch
    ) -> None:
        """Past the middle of the last window, ask for the next one in the background, so
        the store works while the reader consumes what it has."""
        if stream.ahead >= limit - base or end < stream.ahead - stream.window // 2:
            return
        window = self._next_window(stream.window)
        start, stop = base + stream.ahead, min(limit, base + stream.ahead + window)
        if self._in_flight + (stop - start) > self._settings.prefetch_budget:
            return
        stream.window = window
        stream.ahead = stop - base
        self._in_flight += stop - start  # reserved now: the task may start after others
        trio.lowlevel.spawn_system_task(self._ahead, obj, start, stop, fetch)

    async def _ahead(self, obj: ObjectRef, start: int, stop: int, fetch: Fetch) -> None:
        # A system task: an exception escaping it would end the whole run.
        self._in_flight -= stop - start  # the reservation becomes the fetch's own count
        try:
            await self._prefetch_window(obj, start, stop, fetch)
        except DesfsError as exc:
            log.debug("readahead of [%d, %d) of %r: %s", start, stop, obj.object_id, exc)
        except Exception:
            log.exception("readahead of [%d, %d) of %r failed", start, stop, obj.object_id)

    def _fetch_whole_now(self, stream: Stream, size: int) -> bool:
        """Random reads that keep missing in an entry the cache can hold with room to
        spare: one round of parallel GETs for all of it beats a round trip per block.
        An entry too big for that (a database-like file) keeps block-sized reads."""
        if stream.fetched_whole or stream.random_misses < RANDOM_MISSES:
            return False
        if size > self._lru.budget // 2 or self._in_flight + size > self._settings.prefetch_budget:
            return False
        stream.fetched_whole = True
        return True

    async def _fetch_whole(self, obj: ObjectRef, base: int, limit: int, fetch: Fetch) -> None:
        async def chunk(lo: int) -> None:
            # Only a head start: the read itself fetches, and reports, what it needs.
            with contextlib.suppress(DesfsError):
                await self._prefetch(obj, lo, min(limit, lo + WHOLE_CHUNK), fetch)

        async with trio.open_nursery() as nursery:
            for lo in range(base, limit, WHOLE_CHUNK):
                nursery.start_soon(chunk, lo)

    async def _prefetch_window(self, obj: ObjectRef, lo: int, hi: int, fetch: Fetch) -> None:
        """[lo, hi) in parallel parts of whole blocks; the first failure is raised as
        itself (an errno must survive, not an exception group)."""
        cut = max(PART // self.blocks.block_size, 1) * self.blocks.block_size
        bounds = [*range(lo, hi, cut), hi]
        if len(bounds) <= 2:
            await self._prefetch(obj, lo, hi, fetch)
            return
        failed: list[DesfsError] = []

        async def part(start: int, end: int) -> None:
            try:
                await self._prefetch(obj, start, end, fetch)
            except DesfsError as exc:
                failed.append(exc)

        async with trio.open_nursery() as nursery:
            for start, end in itertools.pairwise(bounds):
                nursery.start_soon(part, start, end)
        if failed:
            raise failed[0]

    async def _prefetch(self, obj: ObjectRef, lo: int, hi: int, fetch: Fetch) -> None:
        """Make [lo, hi) resident; counts only what the store sent (cached blocks are not)."""

        async def counted(start: int, end: int) -> bytes:
            data = await fetch(start, end)
            self.prefetched_bytes += len(data)
            return data

        self._in_flight += hi - lo
        try:
            await self.blocks.fetch_span(obj, lo, hi, counted)
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
