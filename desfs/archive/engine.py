"""The archive engine: the days, shards, containers and entry bytes of one source.

Every front end (the FUSE filesystem model, the offline commands, the HTTP server) uses
the same verbs: `days`, `shards` and `shard` list; `open` and `walk` load containers;
`resolve` turns an exposed path into what it names; `read` returns entry bytes; and
`statistics` reports. The catalog, the container loader and the reader behind them are
private, so `desfs cat` and `cat` on the mount share every line of the read path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import trio

from desfs.archive.catalog import ContainerRef
from desfs.archive.containers import ContainerLoader
from desfs.archive.listings import Listings, SourceCatalog
from desfs.archive.opened import Container
from desfs.archive.paths import DayDir, Resolved, RootDir, resolve_in
from desfs.archive.readahead import Stream
from desfs.archive.reader import EntryReader
from desfs.archive.routes import Routes
from desfs.archive.walk import ShardWalk, open_ahead
from desfs.cache.lru import LruStats
from desfs.cache.persistent import IndexStore, IndexStoreStats
from desfs.cache.shared import SharedIndexCache, SharedStats
from desfs.errors import DesfsError, NotFound, ObjectChanged, ObjectMissing
from desfs.format.model import Entry
from desfs.namespace.layout import ContainerName
from desfs.namespace.tree import Hide
from desfs.settings.sections import ArchiveSettings
from desfs.storage.aio import AsyncStore
from desfs.storage.counters import CounterSnapshot
from desfs.storage.zoned import ZonedStore

CHUNK = 1024 * 1024  # bytes per step when a whole entry is streamed (cat, verify)


@dataclass(frozen=True, slots=True)
class Located:
    """A file found by name and day: its container, its entry, and why it is hidden (a
    tombstoned UID, for one) or None when the mount shows it."""

    day: str
    container: Container
    entry: Entry
    hidden: Hide | None


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A consistent reading of every counter the engine keeps."""

    source: str
    store: CounterSnapshot
    caches: dict[str, LruStats]
    prefetched_bytes: int  # sent by the store ahead of reads (neighbours, readahead); a part
    # of the store's bytes, some of which no reader may ever ask for
    delivered_bytes: int  # logical bytes handed to readers
    containers_open: int
    index_store: IndexStoreStats | None
    stale_listings: int  # listings served past their TTL while the store was away
    shared: SharedStats | None  # the fleet's shared index cache, when one is configured
    zones: dict[str, CounterSnapshot]  # each zone's part of `store` (DES zones); else empty


class Archive:
    def __init__(
        self, storage: AsyncStore, settings: ArchiveSettings, single: ContainerRef | None = None
    ) -> None:
        """`single` set: the source is that one container (a `.des` file), not a tree."""
        self._storage = storage
        self._settings = settings
        self._single = single
        self._listings = Listings(storage, settings.layout, settings.cache)
        self._index_store = _index_store(storage, settings)
        self._shared = _shared_cache(storage, settings)
        self._loader = ContainerLoader(
            storage, settings.cache, settings.layout, store=self._index_store, shared=self._shared
        )
        self._reader = EntryReader(storage, settings.cache, settings.layout)
        self._walk = ShardWalk()
        self._routes = Routes(settings.routing, settings.cache.listing_ttl)

    @property
    def single(self) -> ContainerRef | None:
        return self._single

    @property
    def listing_ttl(self) -> float:
        return self._settings.cache.listing_ttl

    def describe(self) -> str:
        return self._storage.describe()

    # -- listings ------------------------------------------------------------------------

    async def _catalog(self) -> SourceCatalog:
        """The DES catalog, or another store's: chosen by the source's first listing."""
        return await self._listings.get()

    async def days(self) -> tuple[str, ...]:
        """The root's directories: DES days, datas3t2 datasets; none when the source is
        one unit shown at the root (`root_unit`)."""
        return await (await self._catalog()).days()

    def known_days(self) -> tuple[str, ...]:
        """The days of the last root listing, without asking the store."""
        catalog = self._listings.current()
        return () if catalog is None else catalog.known_days()

    async def root_unit(self) -> ContainerRef | None:
        """The unit whose tree is the whole mount (an s4db store, a Conduit data
        directory), as of the last root listing; None when the root lists days."""
        return await (await self._catalog()).root_unit()

    async def shards(self, day: str) -> list[tuple[str, ContainerRef]]:
        """The shards of `day` in name order, without containers known to be partial."""
        listing = await (await self._catalog()).day(day)
        self._routes.learn(listing.shards)
        return [
            (shard, ref)
            for shard, ref in listing.shards.items()
            if not self._loader.known_partial(ref)
        ]

    async def shard(self, day: str, shard: str) -> ContainerRef:
        listing = await (await self._catalog()).day(day)
        ref = listing.shards.get(shard)
        if ref is None:
            raise NotFound(f"no shard {shard!r} on {day}")
        if self._loader.known_partial(ref):
            # Left out of the day's listing: a lookup must agree with `ls`.
            raise NotFound(f"{ref.key} is still being written")
        return ref

    # -- containers ----------------------------------------------------------------------

    def cached(self, ref: ContainerRef) -> Container | None:
        return self._loader.cached(ref)

    def opened(self) -> list[Container]:
        return self._loader.opened()

    async def open(self, ref: ContainerRef) -> Container:
        """The container's index and tree: from memory, the disk store, or one round trip."""
        return await self._loader.load(ref)

    async def open_to_list(self, ref: ContainerRef) -> Container:
        """`open`, for a caller about to list the shard. When shards are being listed in
        the day's order (a walk), the next ones open in the same round trip."""
        if self._loader.cached(ref) is not None or not ref.name.day:
            return await self.open(ref)
        listing = await (await self._catalog()).day(ref.name.day)
        ahead = [
            later
            for later in self._walk.ahead(listing, ref.name.shard)
            if self._loader.cached(later) is None
        ]
        if not ahead:
            return await self.open(ref)
        found: list[Container] = []
        failed: list[DesfsError] = []

        async def this_one() -> None:
            try:
                found.append(await self.open(ref))
            except DesfsError as exc:
                failed.append(exc)  # raised below, as itself: its errno must survive

        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_ahead, ahead, self._loader.load)
            nursery.start_soon(this_one)
        if failed:
            raise failed[0]
        return found[0]

    async def walk(
        self, day: str
    ) -> AsyncIterator[tuple[str, ContainerRef, Container | DesfsError]]:
        """Every shard of `day` in order, opened (or the reason it could not be), with
        the walk-ahead of `open_to_list`: one round trip per batch of shards."""
        for shard, ref in await self.shards(day):
            try:
                yield shard, ref, await self.open_to_list(ref)
            except DesfsError as exc:
                yield shard, ref, exc

    async def locate(self, day: str, name: str) -> Located:
        """The file `name` of `day`, found by the writers' routing (archive.routes): no
        LIST of the day, one container open per candidate tried (none when warm)."""
        layouts = await (await self._catalog()).layouts(day)
        if not layouts:
            raise NotFound(f"cannot route {name!r}: {day} is not a DES day (routing is DES's)")
        groups = self._routes.candidates(day, layouts, name)
        if not groups:
            raise NotFound(
                f"cannot route {name!r} on {day}: set routing.des_n_bits or "
                "routing.datavision_shard_bits (docs/OPERATIONS.md)"
            )
        raw = name.encode("utf-8", "surrogateescape")
        for group in groups:
            for candidate in group:
                container = await self._open_routed(candidate)
                if container is None:
                    break  # no such part: none after it either
                entry = container.tree.by_raw_name(raw)
                if entry is not None:
                    hidden = container.tree.why_hidden(entry.position)
                    return Located(day, container, entry, hidden)
        raise NotFound(f"no {name!r} on {day}")

    async def _open_routed(self, name: ContainerName) -> Container | None:
        known, ref = self._routes.known(name.key)
        if known:
            return None if ref is None else await self.open(ref)
        try:
            container = await self._loader.load_routed(name)
        except ObjectMissing:
            self._routes.note(name.key, None)
            return None
        self._routes.note(name.key, container.ref)
        return container

    # -- paths and bytes -----------------------------------------------------------------

    async def resolve(self, path: str) -> Resolved:
        """What an exposed path names (relative to the container for a single file)."""
        if self._single is not None:
            return resolve_in("", await self.open(self._single), path)
        parts = [p for p in path.split("/") if p]
        unit = await self.root_unit()
        if unit is not None:
            return resolve_in("", await self.open(unit), "/".join(parts))
        if not parts:
            return RootDir()
        day = parts[0]
        if day not in await self.days():
            raise NotFound(f"no day {day!r}")
        if len(parts) == 1:
            return DayDir(day)
        container = await self.open(await self.shard(day, parts[1]))
        return resolve_in(day, container, "/".join(parts[2:]))

    def tick(self) -> None:
        """Housekeeping on a busy path: hands mapped pages of spilled indices back to the
        page cache at most once a second (archive.spill)."""
        self._loader.trim()

    async def read(
        self, container: Container, entry: Entry, offset: int, size: int, stream: Stream
    ) -> bytes:
        """Bytes [offset, offset + size) of the entry, clamped to its size."""
        self.tick()
        try:
            return await self._reader.read(container, entry, offset, size, stream)
        except ObjectChanged:
            # Replaced underneath: forget its index and its day's listing, so the next
            # lookup lists and opens the new object. Open files keep failing with ESTALE.
            self._loader.forget(container)
            catalog = self._listings.current()
            if catalog is not None:
                catalog.invalidate_day(container.ref.name.day)
            raise

    async def chunks(self, container: Container, entry: Entry) -> AsyncIterator[bytes]:
        """The whole entry, in order, a bounded chunk at a time."""
        stream = Stream()
        for offset in range(0, entry.size, CHUNK):
            yield await self.read(container, entry, offset, CHUNK, stream)

    def external_key(self, container: Container, entry: Entry) -> str | None:
        return self._reader.external_key(container, entry)

    def statistics(self) -> EngineStats:
        reader = self._reader.statistics()
        store = self._index_store
        return EngineStats(
            source=self._storage.describe(),
            store=self._storage.counters.snapshot(),
            caches=self._reader.cache_statistics(),
            prefetched_bytes=reader.prefetch_bytes,
            delivered_bytes=reader.delivered_bytes,
            containers_open=len(self._loader.opened()),
            index_store=None if store is None else store.statistics(),
            stale_listings=self._stale_served(),
            shared=None if self._shared is None else self._shared.statistics(),
            zones=self._storage.zone_counters() if isinstance(self._storage, ZonedStore) else {},
        )

    def _stale_served(self) -> int:
        catalog = self._listings.current()
        return 0 if catalog is None else catalog.stale_served


def _index_store(storage: AsyncStore, settings: ArchiveSettings) -> IndexStore | None:
    """The on-disk index records of this source, when a cache directory is configured."""
    cache = settings.cache
    if cache.cache_dir is None:
        return None
    return IndexStore(cache.cache_dir / "index", cache.index_store_bytes, storage.describe())


def _shared_cache(storage: AsyncStore, settings: ArchiveSettings) -> SharedIndexCache | None:
    """The fleet's index cache on Redis, when `cache.shared_url` names one. Its records are
    named by bucket and prefix, not endpoint, so hosts that reach one store through different
    gateways share them; the record check (key, ETag, size) keeps other stores apart."""
    cache = settings.cache
    if cache.shared_url is None:
        return None
    source = storage.describe().split(" at ")[0]
    return SharedIndexCache(
        cache.shared_url,
        source,
        cache.shared_timeout,
        cache.shared_record_max,
        cache.shared_password,
    )
