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

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import trio

from desfs.archive.decoded import DecodedBlocks
from desfs.archive.external import ExternalObject, ExternalPayloads
from desfs.archive.opened import Container
from desfs.archive.readahead import Fetch, Readahead, Stream
from desfs.cache.lru import ByteLRU, LruStats
from desfs.cache.ranges import BlockKey, ObjectRef
from desfs.cache.singleflight import SingleFlight
from desfs.errors import EntryError, FormatError, ObjectChanged, ObjectMissing, StorageError
from desfs.format import seekable
from desfs.format.codecs import decode_payload
from desfs.format.model import Codec, Entry
from desfs.settings.sections import CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStore

log = logging.getLogger(__name__)

THREAD_DECODE_BYTES = 64 * 1024  # decode bigger payloads off the trio thread
SEQUENTIAL_SLACK = 4096  # a gap this small still counts as reading in container order
RUN_LOOKAHEAD = 4096  # entries a prefetch run may span at most
SEQUENTIAL_DIRECT = 1024 * 1024  # a local read this close to its stream's head is in order
RUN_GAP = 1024  # bytes between two entries a run still spans (a TAR header and padding)


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
class _Order:
    """Where the last read of each container ended, to recognise reads in container order."""

    ends: dict[object, int] = field(default_factory=dict)


class EntryReader:
    """Reads byte ranges of entries for the filesystem model and the CLI."""

    def __init__(self, storage: AsyncStore, cache: CacheSettings, layout: LayoutSettings) -> None:
        self._storage = storage
        self._settings = cache
        self._payloads: ByteLRU[tuple[object, ...]] = ByteLRU(cache.block_cache_bytes // 2)
        self._block_lru: ByteLRU[BlockKey] = ByteLRU(cache.block_cache_bytes // 2)
        self._readahead = Readahead(self._block_lru, cache)
        self._decoded = DecodedBlocks(self._payloads, cache.block_size, cache.decoder_bytes)
        self._externals = ExternalPayloads(storage, layout.bigfiles_dir, cache.small_entry_bytes)
        self._flights: SingleFlight[tuple[object, ...], bytes] = SingleFlight()
        self._decode_limiter = trio.CapacityLimiter(2)
        self._order = _Order()
        self._counters = _Counters()

    def statistics(self) -> ReaderStats:
        c = self._counters
        return ReaderStats(
            c.payload_hits,
            c.payload_misses,
            c.prefetched_entries,
            c.prefetch_bytes + self._readahead.prefetched_bytes,
            c.delivered_bytes,
        )

    def external_key(self, container: Container, entry: Entry) -> str | None:
        return self._externals.key_of(container, entry)

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
        except EntryError as exc:
            key = container.ref.key
            raise exc if str(exc).startswith(key) else EntryError(f"{key}: {exc}") from None
        self._counters.delivered_bytes += len(data)
        return data

    async def _read(
        self, container: Container, entry: Entry, offset: int, size: int, stream: Stream
    ) -> bytes:
        if entry.error is not None:
            raise EntryError(f"{container.ref.key}: entry {entry.name!r}: {entry.error}")
        end = min(entry.size, offset + size)
        if entry.elsewhere is not None:
            return await self._read_elsewhere(container, entry, offset, end, stream)
        if offset >= end:
            if offset == 0 and entry.stored_length and entry.codec != Codec.NONE:
                # An empty entry must still be an empty frame: a lying one is EIO.
                await self._payload(container, entry)
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

            return await self._readahead.blocks.read(obj, lo, hi, direct)

        return await self._decoded.read(container.object_id, entry, offset, end, fetch)

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
        # Neighbours in the run are claimed too: a concurrent read of one joins this GET.
        with self._flights.claim((container.object_id, e.position) for e in run[1:]) as claim:
            stored = await self._stored(container, run)
            payload = b""
            for item in run:
                lo = item.offset - run[0].offset
                try:
                    decoded = await self._decode(item, stored[lo : lo + item.stored_length])
                except EntryError:
                    if item is entry:
                        raise
                    continue  # a bad neighbour fails its own reads, never this one
                key = (container.object_id, item.position)
                self._payloads.put(key, decoded)
                if item is entry:
                    payload = decoded
                else:
                    claim.settle(key, decoded)
        return payload

    async def _stored(self, container: Container, run: list[Entry]) -> bytes:
        start, end = run[0].offset, run[-1].offset + run[-1].stored_length
        where = run[0].elsewhere  # set: s4db records, a range of their data file
        if where is None:
            stored = self._from_tail(container, start, end)
            if stored is not None:
                return stored
        if end <= start:
            return b""
        if where is None:
            data = await self._range(container.ref.key, start, end, container.etag, container)
        else:
            data = await self._range(where.key, start, end, where.etag, None)
        ahead = end - start - run[0].stored_length  # the neighbours' bytes
        if ahead:
            self._counters.prefetched_entries += 1
            self._counters.prefetch_bytes += ahead
        return data

    def _plan_run(self, container: Container, entry: Entry) -> list[Entry]:
        """The entry alone, or with its container-order successors when reading in order."""
        expected = self._order.ends.get(_order_key(container, entry))
        in_order = expected is not None and 0 <= entry.offset - expected <= SEQUENTIAL_SLACK
        if not in_order or entry.stored_length == 0:
            return [entry]
        budget = self._settings.prefetch_cap
        run = [entry]
        end = entry.offset + entry.stored_length
        for item in _successors(container, entry):
            if item.elsewhere != entry.elsewhere or item.codec != entry.codec:
                break  # another object (an s4db record in another data file)
            if item.error is not None:
                break  # its bytes may not even exist: they must not fail this read
            gap = item.offset - end
            if not 0 <= gap <= RUN_GAP or item.offset + item.stored_length - entry.offset > budget:
                break
            if item.stored_length > self._settings.small_entry_bytes:
                break
            key = (container.object_id, item.position)
            if key in self._payloads or self._flights.in_flight(key):
                break
            end = item.offset + item.stored_length
            run.append(item)
        return run

    def _note_order(self, container: Container, entry: Entry) -> None:
        if entry.stored_length:
            ends = self._order.ends
            ends[_order_key(container, entry)] = entry.offset + entry.stored_length
            if len(ends) > 4096:
                ends.pop(next(iter(ends)))

    def _from_tail(self, container: Container, start: int, end: int) -> bytes | None:
        if start >= container.tail_start:
            lo = start - container.tail_start
            return container.tail[lo : lo + (end - start)]
        return None

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
        oid = container.object_id
        self._payloads.discard_where(lambda k: k[0] == oid)
        self._readahead.blocks.drop_object(oid)
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

    # -- large inline entries and external payloads --------------------------------------

    async def _read_blocks(
        self, container: Container, entry: Entry, offset: int, end: int, stream: Stream
    ) -> bytes:
        obj = ObjectRef(container.object_id, container.index.size)
        key, etag = container.ref.key, container.etag

        async def fetch(lo: int, hi: int) -> bytes:
            return await self._range(key, lo, hi, etag, container)

        limit = entry.offset + entry.stored_length
        return await self._ranged(obj, entry.offset, limit, (offset, end), stream, fetch)

    async def _ranged(
        self,
        obj: ObjectRef,
        base: int,
        limit: int,
        span: tuple[int, int],
        stream: Stream,
        fetch: Fetch,
    ) -> bytes:
        """Bytes `span` of the region [base, limit) of a large object. A source on this
        host's disk read in order is read straight through: the kernel's page cache and
        readahead do what the block cache would, without its copies. Random reads keep
        the block cache, which fetches a file read at random whole (a pread each would
        cost a thread hop per 4 KiB)."""
        lo, hi = span
        if self._storage.page_cached and abs(lo - stream.next_offset) <= SEQUENTIAL_DIRECT:
            stream.next_offset = max(stream.next_offset, hi)
            return await fetch(base + lo, base + hi)
        return await self._readahead.read(obj, base, limit, span, stream, fetch)

    async def _read_external(
        self, container: Container, entry: Entry, offset: int, end: int, stream: Stream
    ) -> bytes:
        target = await self._externals.locate(container, entry)
        if target.etag is None:  # small: fetched whole, checked, cached
            key = (container.object_id, entry.position)
            payload = self._payloads.get(key)
            if payload is None:
                payload = await self._flights.run(
                    key, lambda: self._load_external(container, entry, target, key)
                )
            return payload[offset:end]
        obj = ObjectRef(("ext", target.key, target.etag), entry.size)

        async def fetch(lo: int, hi: int) -> bytes:
            return await self._range(target.key, lo, hi, target.etag, None)

        return await self._ranged(obj, 0, entry.size, (offset, end), stream, fetch)

    # -- entries of other stores, whose bytes lie in another object ----------------------

    async def _read_elsewhere(
        self, container: Container, entry: Entry, offset: int, end: int, stream: Stream
    ) -> bytes:
        where = entry.elsewhere
        assert where is not None
        obj = ObjectRef(("obj", where.key, where.etag), where.object_size)

        async def fetch(lo: int, hi: int) -> bytes:
            return await self._range(where.key, lo, hi, where.etag, None)

        if entry.codec != Codec.S4_RECORD and offset >= end:
            return b""
        if entry.codec == Codec.SEEKABLE:
            return await self._read_frames(container, entry, obj, (offset, end), fetch)
        if entry.codec != Codec.NONE:  # an s4db record: whole, checked, cached decoded
            if entry.stored_length > self._settings.decoder_bytes:
                raise EntryError(
                    f"entry {entry.name!r}: a {entry.stored_length}-byte record is over "
                    f"cache.decoder_bytes ({self._settings.decoder_bytes}); it decodes whole"
                )
            # Read in index order, a record's GET widens to the records after it in the
            # same data file, as for a container's small entries.
            return (await self._payload(container, entry))[offset:end]
        limit = entry.offset + entry.stored_length
        return await self._ranged(obj, entry.offset, limit, (offset, end), stream, fetch)

    async def _read_frames(
        self,
        container: Container,
        entry: Entry,
        obj: ObjectRef,
        span: tuple[int, int],
        fetch: Fetch,
    ) -> bytes:
        """A seekable zstd stream: only the frames the read touches are fetched (through
        the block cache) and decoded (each once, kept decoded in the payload cache)."""
        assert entry.elsewhere is not None and entry.elsewhere.frames is not None
        table = entry.elsewhere.frames
        offset, end = span
        frames = seekable.frames_for(table, offset, end - offset)
        decoded = [await self._frame(container, entry, obj, frame, fetch) for frame in frames]
        return seekable.read(table, frames, decoded, offset, end - offset)

    async def _frame(
        self,
        container: Container,
        entry: Entry,
        obj: ObjectRef,
        frame: seekable.Frame,
        fetch: Fetch,
    ) -> bytes:
        key = (container.object_id, entry.position, frame.index)
        found = self._payloads.get(key)
        if found is not None:
            return found
        return await self._flights.run(key, lambda: self._load_frame(obj, frame, key, fetch))

    async def _load_frame(
        self,
        obj: ObjectRef,
        frame: seekable.Frame,
        key: tuple[object, ...],
        fetch: Fetch,
    ) -> bytes:
        if frame.size > self._settings.decoder_bytes:
            limit = self._settings.decoder_bytes
            raise EntryError(f"zstd frame {frame.index}: {frame.size} bytes, over {limit}")
        end = frame.offset + frame.length
        stored = await self._readahead.blocks.read(obj, frame.offset, end, fetch)
        try:
            if frame.length < THREAD_DECODE_BYTES:
                out = seekable.decode_frame(stored, frame)
            else:
                out = await trio.to_thread.run_sync(
                    seekable.decode_frame, stored, frame, limiter=self._decode_limiter
                )
        except FormatError as exc:
            raise EntryError(str(exc)) from None
        self._payloads.put(key, out)
        return out

    async def _load_external(
        self,
        container: Container,
        entry: Entry,
        target: ExternalObject,
        cache_key: tuple[object, ...],
    ) -> bytes:
        data = await self._externals.read_whole(container, entry, target)
        self._payloads.put(cache_key, data)
        return data


def _order_key(container: Container, entry: Entry) -> object:
    """What reading "in order" follows: the container, or the object an entry of another
    store lives in."""
    where = entry.elsewhere
    return container.object_id if where is None else (container.object_id, where.key)


def _successors(container: Container, entry: Entry) -> Iterator[Entry]:
    """The inline entries after `entry` in index order, built one at a time as the run
    planner asks for them (it stops at the first that does not join the run)."""
    entries = container.index.entries
    for position in range(entry.position + 1, min(len(entries), entry.position + RUN_LOOKAHEAD)):
        following = entries[position]
        if following.external is None:
            yield following
