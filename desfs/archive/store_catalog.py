"""The catalog of a source holding another store: datas3t2, s4db or ConduitFlatFileDB.

The same face as the DES catalog (`archive.catalog.Catalog`), with the shapes of
`namespace.stores`. Request shape: a datas3t2 source costs one LIST of `datas3t/` per
TTL for its datasets and one LIST of a dataset's `dataranges/` per TTL; an s4db or
Conduit source is one unit at the mount root and costs one LIST of the root per TTL.
Listings are shared by concurrent askers and served stale while the store is away, as
the DES catalog's are.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cachetools import LRUCache

from desfs.archive.catalog import DAYS_KEPT, ContainerRef, DayListing
from desfs.archive.stale import StaleIfError
from desfs.cache.singleflight import SingleFlight
from desfs.errors import NotFound, StorageError
from desfs.format import s4db
from desfs.namespace.layout import ContainerName, Layout
from desfs.namespace.stores import (
    DATAS3T2_ROOT,
    S4DB_INDEX,
    conduit_files,
    dataranges_prefix,
    dataset_of,
    pair_dataranges,
)
from desfs.settings.sections import CacheSettings
from desfs.storage.aio import AsyncStore
from desfs.storage.base import ListPage, ObjectInfo

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreCatalog:
    def __init__(
        self,
        storage: AsyncStore,
        kind: Layout,
        cache: CacheSettings,
        clock: Callable[[], float] = time.monotonic,
        first: ListPage | None = None,
    ) -> None:
        """`first`: the root's first page, already listed to detect the store."""
        self._storage = storage
        self.kind = kind
        self._ttl = cache.listing_ttl
        self._clock = clock
        self._first = first
        # Datasets sit under datas3t/ in a bucket datas3t2 writes; a source may also
        # point at datas3t/ itself. None: not known until the root is listed.
        self._base: str | None = None
        if first is not None:
            self._base = DATAS3T2_ROOT if DATAS3T2_ROOT in first.prefixes else ""
        self._timed: LRUCache[str, tuple[float, object]] = LRUCache(maxsize=DAYS_KEPT + 1)
        self._known_days: tuple[str, ...] = ()
        self._flights: SingleFlight[str, object] = SingleFlight()
        self._stale = StaleIfError(storage.describe(), self._ttl, clock)

    # -- the catalog's face --------------------------------------------------------------

    async def days(self) -> tuple[str, ...]:
        if self.kind is not Layout.DATAS3T2:
            await self.root_unit()  # the root is listed, so an unreachable store says so
            return ()
        days = await self._cached("root", self._list_datasets)
        assert isinstance(days, tuple)
        self._known_days = days
        return days

    def known_days(self) -> tuple[str, ...]:
        return self._known_days

    async def day(self, day: str) -> DayListing:
        if day not in await self.days():
            raise NotFound(f"no dataset {day!r} in {self._storage.describe()}")
        listing = await self._cached(f"day:{day}", lambda: self._list_dataset(day))
        assert isinstance(listing, DayListing)
        return listing

    async def layouts(self, day: str) -> frozenset[Layout]:
        """Routing by name is DES's: no store layout routes."""
        await self.day(day)
        return frozenset()

    async def root_unit(self) -> ContainerRef | None:
        """The unit shown at the mount root (s4db, Conduit); None for datas3t2."""
        if self.kind is Layout.DATAS3T2:
            return None
        unit = await self._cached("root", self._list_unit)
        assert unit is None or isinstance(unit, ContainerRef)
        if unit is None:
            raise NotFound(f"{self._storage.describe()}: no {self.kind.value} store here")
        return unit

    @property
    def stale_served(self) -> int:
        return self._stale.count

    def invalidate_day(self, day: str) -> None:
        """Forget a listing whose unit changed underneath ("" is the root's unit)."""
        self._timed.pop(f"day:{day}" if day else "root", None)

    # -- listings ------------------------------------------------------------------------

    async def _cached(self, name: str, load: Callable[[], Awaitable[T]]) -> T | object:
        found = self._timed.get(name)
        if found is not None and found[0] > self._clock():
            return found[1]
        try:
            value = await self._flights.run(name, load)
        except StorageError as exc:
            if found is None or not self._stale.usable(exc):
                raise
            self._timed[name] = (self._stale.retry_at(), found[1])
            self._stale.served(exc, name)
            return found[1]
        self._stale.answered()
        self._timed[name] = (self._clock() + self._ttl, value)
        return value

    async def _list(self, prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        token: str | None = None
        while True:
            if prefix == "" and token is None and self._first is not None:
                page, self._first = self._first, None  # the detection's LIST, not another
            else:
                page = await self._storage.list_page(prefix, "/", token)
            objects.extend(page.objects)
            prefixes.extend(page.prefixes)
            token = page.next_token
            if token is None:
                return objects, prefixes

    async def _list_datasets(self) -> tuple[str, ...]:
        prefixes: list[str] | None = None
        if self._base is None:  # a forced layout: the root tells where the datasets are
            _, found = await self._list("")
            self._base = DATAS3T2_ROOT if DATAS3T2_ROOT in found else ""
            prefixes = None if self._base else found
        if prefixes is None:
            _, prefixes = await self._list(self._base)
        names = (dataset_of(prefix, self._base) for prefix in prefixes)
        return tuple(sorted(name for name in names if name is not None))

    async def _list_dataset(self, day: str) -> DayListing:
        objects, _ = await self._list(dataranges_prefix(self._base or "", day))
        infos = {obj.key: obj for obj in objects}
        ranges, hidden = pair_dataranges(infos)
        for item in hidden:
            log.warning("dataset %s: %s", day, item)
        shards: dict[str, ContainerRef] = {}
        for found in ranges:
            tar = infos[found.tar_key]
            name = ContainerName(found.tar_key, day, found.name, Layout.DATAS3T2)
            index = infos[found.index_key]
            shards[found.name] = ContainerRef(name, tar.size, tar.etag, tar.mtime_ns, index)
        newest = max((ref.mtime_ns for ref in shards.values()), default=0)
        return DayListing(day, shards, newest)

    async def _list_unit(self) -> ContainerRef | None:
        objects, _ = await self._list("")
        if self.kind is Layout.S4DB:
            index = next((obj for obj in objects if obj.key == S4DB_INDEX), None)
            if index is None:
                return None
            name = ContainerName(index.key, "", "", Layout.S4DB)
            files = tuple(o for o in objects if s4db.parse_data_file_name(o.key) is not None)
            return ContainerRef(name, index.size, index.etag, index.mtime_ns, parts=files)
        return _conduit_unit(objects)


def _conduit_unit(objects: list[ObjectInfo]) -> ContainerRef:
    """The data directory as one unit: its identity is that of every data file in it, so
    a file that grew or appeared makes a new unit at the next listing."""
    infos = {obj.key: obj for obj in objects}
    parts = tuple(infos[key] for key in conduit_files(infos))
    digest = hashlib.sha256()
    for part in parts:
        digest.update(f"{part.key}\0{part.size}\0{part.etag}\n".encode())
    name = ContainerName(".", "", "", Layout.CONDUIT)
    newest = max((part.mtime_ns for part in parts), default=0)
    size = sum(part.size for part in parts)
    return ContainerRef(name, size, digest.hexdigest()[:32], newest, parts=parts)
