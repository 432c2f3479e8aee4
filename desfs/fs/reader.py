"""The read path: entry bytes from caches, coalesced range GETs and decoders.

Three shapes of entry, three strategies (docs/ARCHITECTURE.md, "Read path"):

* Small inline entries (stored size up to `small_entry_bytes`) are fetched whole: one GET
  of exactly their stored bytes, decoded once, kept decoded in the payload cache. When a
  container is read in order (the entry starts where the previous read of that container
  ended) the GET is widened to a run of following entries up to `prefetch_cap`, so `cp -r`
  or `tar` of a shard costs about one GET per cap.
* Large uncompressed entries and external payloads are read through the block cache:
  block-aligned range GETs, adjacent misses merged, and a readahead window per open file
  that starts at `readahead_min` and doubles while reads stay sequential.
* Large compressed entries are decoded once in a worker thread and cached decoded.

Every fetch goes through single flight, so concurrent readers of the same bytes share it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from desfs.cache.lru import ByteLRU, LruStats
from desfs.cache.ranges import BlockKey, ObjectRef, RangeCache
from desfs.cache.singleflight import SingleFlight
from desfs.config import CacheSettings, LayoutSettings
from desfs.errors import EntryError, ObjectChanged, ObjectMissing, StorageError
from desfs.format.codecs import decode_payload
from desfs.format.model import Codec, Entry
from desfs.fs.containers import Container
from desfs.fs.decoded import DecodedBlocks
from desfs.namespace.layout import external_key
from desfs.storage.aio import AsyncStorage

log = logging.getLogger(__name__)

THREAD_DECODE_BYTES = 64 * 1024  # decode bigger payloads off the trio thread
SEQUENTIAL_SLACK = 4096  # a gap this small still counts as reading in container order

_Fetch = Callable[[int, int], Awaitable[bytes]]


@dataclass(slots=True)
class Stream:
    """Readahead state of one open file handle."""

    next_offset: int = 0
    window: int = 0


@dataclass(frozen=True, slots=True)
class ReaderStats:
    payload_hits: int
    payload_misses: int
    prefetched_entries: int
    prefetch_bytes: int
    delivered_bytes: int  # logical bytes handed to readers


@dataclass(slots=True)
class _Counters:
    payload_hits: int = 0
    payload_misses: int = 0
    prefetched_entries: int = 0
    prefetch_bytes: int = 0
    delivered_bytes: int = 0


@dataclass(slots=True)
class _External:
    key: str
    etag: str | None = None
    verified: bool = False


@dataclass(slots=True)
class _State:
    order: dict[tuple[str, str], int] = field(default_factory=dict)  # container -> next offset
    externals: dict[tuple[str, str, int], _External] = field(default_factory=dict)


class EntryReader:
    """Reads byte ranges of entries for the filesystem model and the CLI."""

    def __init__(self, storage: AsyncStorage, cache: CacheSettings, layout: LayoutSettings) -> None:
        self._storage = storage
        self._settings = cache
        self._bigfiles = layout.bigfiles_dir
        self._payloads: ByteLRU[tuple[object, ...]] = ByteLRU(cache.block_cache_bytes // 2)
        self._block_lru: ByteLRU[BlockKey] = ByteLRU(cache.block_cache_bytes // 2)
        self._blocks = RangeCache(self._block_lru, cache.block_size, SingleFlight())
        self._decoded = DecodedBlocks(self._payloads, cache.block_size)
        # Told when a container's object was replaced (HTTP 412), so its index is reloaded.
        self.on_changed: Callable[[Container], None] = lambda container: None
        self._flights: SingleFlight[tuple[object, ...], bytes] = SingleFlight()
        self._decode_limiter = trio.CapacityLimiter(2)
        self._prefetch_in_flight = 0
        self._state = _State()
        self._counters = _Counters()

    def statistics(self) -> ReaderStats:
        c = self._counters
        return ReaderStats(
            c.payload_hits,
            c.payload_misses,
            c.prefetched_entries,
            c.prefetch_bytes,
            c.delivered_bytes,
        )

    def cache_statistics(self) -> dict[str, LruStats]:
        return {"payloads": self._payloads.statistics(), "blocks": self._block_lru.statistics()}

    async def read(
        self, container: Container, entry: Entry, offset: int, size: int, stream: Stream
    ) -> bytes:
        """Bytes [offset, offset + size) of the entry's logical content, clamped to its end."""
        try:
            data = await self._read(container, entry, offset, size, stream)
        except ObjectMissing as exc:
            # The index promised these bytes: a vanished payload is damage (EIO), not ENOENT.
            raise EntryError(f"{container.ref.key}: entry {entry.name!r}: {exc}") from None
        self._counters.delivered_bytes += len(data)
        return data

    async def _read(
        self, container: Container, entry: Entry, offset: int, size: int, stream: Stream
    ) -> bytes:
        if entry.error is not None:
            raise EntryError(f"{container.ref.key}: entry {entry.name!r}: {entry.error}")
        end = min(entry.size, offset + size)
        if offset >= end:
            return b""
        if entry.external is not None:
            return await self._read_external(container, entry, offset, end, stream)
        small = self._settings.small_entry_bytes
        if entry.codec != Codec.NONE and entry.size > small:
            return await self._read_decoded(container, entry, offset, end)
        if entry.stored_length <= small or entry.codec != Codec.NONE:
            payload = await self._payload(container, entry)
            return payload[offset:end]
        return await self._read_blocks(container, entry, offset, end, stream)

    async def _read_decoded(
        self, container: Container, entry: Entry, offset: int, end: int
    ) -> bytes:
        obj = ObjectRef(container.object_id, container.index.size)
        key, etag = container.ref.key, container.etag

        async def fetch(lo: int, hi: int) -> bytes:
            async def direct(a: int, b: int) -> bytes:
                return await self._range(key, a, b, etag, container)

            return await self._blocks.read(obj, lo, hi, direct)

        return await self._decoded.read(container.object_id, entry, offset, end, fetch)

    async def read_all(self, container: Container, entry: Entry) -> bytes:
        """The whole logical content (CLI `cat` and `verify`)."""
        return await self.read(container, entry, 0, entry.size, Stream())

    # -- small and compressed entries: whole payloads --------------------------------

    async def _payload(self, container: Container, entry: Entry) -> bytes:
        key = (container.object_id, entry.position)
        found = self._payloads.get(key)
        if found is not None:
            self._counters.payload_hits += 1
            self._note_order(container, entry)
            return found
        self._counters.payload_misses += 1
        return await self._flights.run(key, lambda: self._load_payload(container, entry))

    async def _load_payload(self, container: Container, entry: Entry) -> bytes:
        run = self._plan_run(container, entry)
        self._note_order(container, entry)
        start, end = run[0].offset, run[-1].offset + run[-1].stored_length
        stored = self._from_tail(container, start, end)
        if stored is None:
            stored = await self._fetch_container(container, start, end, len(run) > 1)
        payload = b""
        for item in run:
            lo = item.offset - start
            try:
                decoded = await self._decode(item, stored[lo : lo + item.stored_length])
            except EntryError:
                if item is entry:
                    raise
                continue  # a bad neighbour fails its own reads, never this one
            self._payloads.put((container.object_id, item.position), decoded)
            if item is entry:
                payload = decoded
        return payload

    def _plan_run(self, container: Container, entry: Entry) -> list[Entry]:
        """The entry alone, or with its container-order successors when reading in order."""
        expected = self._state.order.get(container.object_id)
        in_order = expected is not None and 0 <= entry.offset - expected <= SEQUENTIAL_SLACK
        if not in_order or entry.stored_length == 0:
            return [entry]
        budget = self._settings.prefetch_cap
        run = [entry]
        end = entry.offset + entry.stored_length
        for item in _successors(container, entry):
            if item.offset != end or item.offset + item.stored_length - entry.offset > budget:
                break
            if item.stored_length > self._settings.small_entry_bytes:
                break
            end = item.offset + item.stored_length
            if (container.object_id, item.position) not in self._payloads:
                run.append(item)
            else:
                break
        return run

    def _note_order(self, container: Container, entry: Entry) -> None:
        if entry.stored_length:
            self._state.order[container.object_id] = entry.offset + entry.stored_length
            if len(self._state.order) > 4096:
                self._state.order.pop(next(iter(self._state.order)))

    def _from_tail(self, container: Container, start: int, end: int) -> bytes | None:
        if start >= container.tail_start:
            lo = start - container.tail_start
            return container.tail[lo : lo + (end - start)]
        return None

    async def _fetch_container(
        self, container: Container, start: int, end: int, prefetch: bool
    ) -> bytes:
        if end <= start:
            return b""
        data = await self._range(container.ref.key, start, end, container.etag, container)
        if prefetch:
            self._counters.prefetched_entries += 1
            self._counters.prefetch_bytes += end - start
        return data

    async def _range(
        self, key: str, start: int, end: int, etag: str | None, container: Container | None
    ) -> bytes:
        try:
            data = await self._storage.read_range(key, start, end, etag)
        except ObjectChanged:
            if container is not None:
                self._drop(container)
            raise
        if len(data) != end - start:
            raise StorageError(f"{key}: asked for {end - start} bytes at {start}, got {len(data)}")
        return data

    def _drop(self, container: Container) -> None:
        log.warning("%s changed since it was opened; dropping its cached bytes", container.ref.key)
        self.on_changed(container)
        oid = container.object_id
        self._payloads.discard_where(lambda k: k[0] == oid)
        self._blocks.drop_object(oid)
        self._decoded.drop(oid)

    async def _decode(self, entry: Entry, stored: bytes) -> bytes:
        if entry.codec == Codec.NONE and entry.external is None:
            if len(stored) != entry.size:
                raise EntryError(f"entry {entry.name!r}: stored {len(stored)} != size {entry.size}")
            return stored
        if len(stored) < THREAD_DECODE_BYTES:
            return decode_payload(entry, stored)
        return await trio.to_thread.run_sync(
            decode_payload, entry, stored, limiter=self._decode_limiter
        )

    # -- large inline entries: block cache with readahead -----------------------------

    async def _read_blocks(
        self, container: Container, entry: Entry, offset: int, end: int, stream: Stream
    ) -> bytes:
        obj = ObjectRef(container.object_id, container.index.size)
        key, etag = container.ref.key, container.etag

        async def fetch(lo: int, hi: int) -> bytes:
            return await self._range(key, lo, hi, etag, container)

        base = entry.offset
        limit = entry.offset + entry.stored_length
        return await self._read_with_readahead(obj, base, limit, offset, end, stream, fetch)

    async def _read_with_readahead(
        self,
        obj: ObjectRef,
        base: int,
        limit: int,
        offset: int,
        end: int,
        stream: Stream,
        fetch: _Fetch,
    ) -> bytes:
        lo, hi = base + offset, base + end
        sequential = offset == stream.next_offset and offset > 0
        stream.next_offset = end
        if not self._blocks.contains(obj, lo, hi):
            if sequential or offset == 0:
                stream.window = _next_window(stream.window, self._settings, self._block_lru.budget)
                span_end = min(limit, lo + max(stream.window, hi - lo))
                if self._prefetch_in_flight + (span_end - lo) <= self._settings.prefetch_budget:
                    await self._prefetch_span(obj, lo, span_end, fetch)
            else:
                stream.window = 0
        return await self._blocks.read(obj, lo, hi, fetch)

    async def _prefetch_span(self, obj: ObjectRef, lo: int, hi: int, fetch: _Fetch) -> None:
        self._prefetch_in_flight += hi - lo
        try:
            await self._blocks.fetch_span(obj, lo, hi, fetch)
            self._counters.prefetch_bytes += hi - lo
        finally:
            self._prefetch_in_flight -= hi - lo

    # -- external payloads --------------------------------------------------------------

    async def _read_external(
        self, container: Container, entry: Entry, offset: int, end: int, stream: Stream
    ) -> bytes:
        ext = await self._external(container, entry)
        if entry.size <= self._settings.small_entry_bytes:
            payload = await self._payload_external(container, entry, ext)
            return payload[offset:end]
        obj = ObjectRef(("ext", ext.key, ext.etag or ""), entry.size)

        async def fetch(lo: int, hi: int) -> bytes:
            return await self._range(ext.key, lo, hi, ext.etag, None)

        return await self._read_with_readahead(obj, 0, entry.size, offset, end, stream, fetch)

    async def _external(self, container: Container, entry: Entry) -> _External:
        state_key = (*container.object_id, entry.position)
        ext = self._state.externals.get(state_key)
        if ext is not None and ext.verified:
            return ext
        key = external_key(container.ref.key, entry, container.ref.name.layout, self._bigfiles)
        if key is None:
            raise EntryError(f"{container.ref.key}: entry {entry.name!r} has no safe external key")
        ext = _External(key)
        if entry.size > self._settings.small_entry_bytes:
            probe = await self._storage.read_suffix(key, 1)
            if probe.size != entry.size:
                raise EntryError(
                    f"external {key}: size {probe.size} but the index says {entry.size}"
                )
            ext.etag = probe.etag
            ext.verified = True
            self._state.externals[state_key] = ext
        return ext

    async def _payload_external(self, container: Container, entry: Entry, ext: _External) -> bytes:
        key = (container.object_id, entry.position)
        found = self._payloads.get(key)
        if found is not None:
            return found

        async def load() -> bytes:
            blob = await self._storage.read_object(ext.key)
            _check_external(ext.key, entry, blob.data)
            self._payloads.put(key, blob.data)
            return blob.data

        return await self._flights.run(key, load)


def _check_external(key: str, entry: Entry, data: bytes) -> None:
    if len(data) != entry.size:
        raise EntryError(f"external {key}: {len(data)} bytes but the index says {entry.size}")
    assert entry.external is not None
    if entry.external.sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.external.sha256:
            raise EntryError(f"external {key}: sha256 {digest} does not match the index")


def _successors(container: Container, entry: Entry) -> list[Entry]:
    entries = container.index.entries
    return [
        e for e in entries[entry.position + 1 : entry.position + 1 + 4096] if e.external is None
    ]


def _next_window(window: int, settings: CacheSettings, cache_bytes: int) -> int:
    # A window the block cache cannot hold evicts its own first blocks before they are
    # read, and every later read of them fetches a whole window again.
    cap = max(settings.block_size, min(settings.readahead_max, cache_bytes // 4))
    if window == 0:
        return min(settings.readahead_min, cap)
    return min(window * 2, cap)
