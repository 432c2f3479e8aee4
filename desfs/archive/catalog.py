"""The catalog: which days and which containers (shards) a source holds right now.

Listings come from the store and are trusted for `listing_ttl` seconds, because new days
and containers appear over time. Concurrent askers share one LIST (single flight).

Request shape (design brief §2): the root costs one paginated LIST per TTL. Datavision and
DES nested days are common prefixes of a `/`-delimited root listing and each costs one
LIST of its own prefix. A pure DES flat source lists its days with delimiter `_` (one
`YYYYMMDD_` prefix per day, whatever the number of containers) and each day with one LIST
of that prefix; a `/` root listing that already saw flat containers serves their days
without another LIST.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cachetools import LRUCache

from desfs.archive.stale import StaleIfError
from desfs.cache.singleflight import SingleFlight
from desfs.errors import NotFound, StorageError, UsageError
from desfs.namespace.layout import (
    ContainerName,
    Layout,
    day_from_dir,
    detect_layouts,
    flat_day_from_prefix,
    flat_day_prefix,
    merge_shards,
    parse_day_key,
    parse_flat_key,
)
from desfs.settings.sections import CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStore
from desfs.storage.base import ListPage, ObjectInfo

log = logging.getLogger(__name__)

DAYS_KEPT = 32  # day listings kept between lookups

LAYOUT_NAMES = {
    "datavision": Layout.DATAVISION,
    "des-flat": Layout.DES_FLAT,
    "des-nested": Layout.DES_NESTED,
    "datas3t2": Layout.DATAS3T2,
    "s4db": Layout.S4DB,
    "conduit": Layout.CONDUIT,
}


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """A container as the listing saw it."""

    name: ContainerName
    size: int
    etag: str
    mtime_ns: int
    sidecar: ObjectInfo | None = None
    listed: bool = True  # False: found by routing (its sidecar, if any, is unknown)
    parts: tuple[ObjectInfo, ...] = ()  # the objects a unit is made of (Conduit data files)

    @property
    def key(self) -> str:
        return self.name.key


@dataclass(frozen=True, slots=True)
class DayListing:
    day: str
    shards: dict[str, ContainerRef]  # shard directory name -> container, sorted by name
    mtime_ns: int  # newest container of the day (0 when empty)


@dataclass(slots=True)
class _RootView:
    days: dict[str, set[Layout]]  # day -> layouts that hold it
    flat_objects: dict[str, list[ObjectInfo]] = field(default_factory=dict)  # from a "/" listing
    expires: float = 0.0


class Catalog:
    """Days and shards of one source, listed lazily and cached for the listing TTL."""

    def __init__(
        self,
        storage: AsyncStore,
        layout: LayoutSettings,
        cache: CacheSettings,
        clock: Callable[[], float] = time.monotonic,
        first: ListPage | None = None,
    ) -> None:
        """`first`: the root's first page, already listed to tell DES from other stores."""
        self._storage = storage
        self._first = first
        self._forced = forced_layout(layout.layout)
        self._ttl = cache.listing_ttl
        self._clock = clock
        self._root: _RootView | None = None
        # A day of thousands of containers lists to about a MiB of refs: keep the recent
        # days only, so a walk over years of days stays bounded.
        self._days: LRUCache[str, tuple[float, DayListing]] = LRUCache(maxsize=DAYS_KEPT)
        self._flights: SingleFlight[str, object] = SingleFlight()
        self._stale = StaleIfError(storage.describe(), self._ttl, clock)

    async def root_unit(self) -> ContainerRef | None:
        """A DES source shows days at its root, never one unit."""
        return None

    async def layouts(self, day: str) -> frozenset[Layout]:
        """The layouts that hold `day` (from the root listing; NotFound for no such day)."""
        root = await self._root_view()
        if day not in root.days:
            raise NotFound(f"no day {day!r} in {self._storage.describe()}")
        return frozenset(root.days[day])

    def known_days(self) -> tuple[str, ...]:
        """The days of the last root listing, however old; no I/O."""
        return tuple(sorted(self._root.days)) if self._root is not None else ()

    async def days(self) -> tuple[str, ...]:
        root = await self._root_view()
        return tuple(sorted(root.days))

    async def day(self, day: str) -> DayListing:
        cached = self._days.get(day)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        root = await self._root_view()
        if day not in root.days:
            raise NotFound(f"no day {day!r} in {self._storage.describe()}")
        try:
            listing = await self._flights.run(f"day:{day}", lambda: self._list_day(root, day))
        except StorageError as exc:
            if cached is None or not self._stale.usable(exc):
                raise
            self._days[day] = (self._stale.retry_at(), cached[1])
            self._stale.served(exc, f"day {day}")
            return cached[1]
        self._stale.answered()
        assert isinstance(listing, DayListing)
        return listing

    @property
    def stale_served(self) -> int:
        """Listings served past their TTL because the store did not answer."""
        return self._stale.count

    def invalidate_day(self, day: str) -> None:
        """Forget a day's listing (one of its containers was replaced)."""
        self._days.pop(day, None)

    async def _root_view(self) -> _RootView:
        old = self._root
        if old is not None and old.expires > self._clock():
            return old
        try:
            view = await self._flights.run("root", self._list_root)
        except StorageError as exc:
            if old is None or not self._stale.usable(exc):
                raise
            old.expires = self._stale.retry_at()
            self._stale.served(exc, "the root")
            return old
        self._stale.answered()
        assert isinstance(view, _RootView)
        return view

    async def _list_root(self) -> _RootView:
        first, self._first = self._first, None
        if first is None:
            first = await self._storage.list_page("", "/", None)
        layouts = self._forced or detect_layouts((o.key for o in first.objects), first.prefixes)
        view = _RootView(days={})
        if layouts == {Layout.DES_FLAT} and first.next_token is not None:
            # A big flat source: one "_"-delimited LIST names every day without paging
            # through every container of every day.
            await self._add_flat_days(view)
        else:
            await self._add_slash_days(view, first, layouts)
        view.expires = self._clock() + self._ttl
        self._root = view
        self._days.clear()
        log.debug("root of %s: %d days", self._storage.describe(), len(view.days))
        return view

    async def _add_slash_days(
        self, view: _RootView, page: ListPage, layouts: frozenset[Layout] | set[Layout]
    ) -> None:
        while True:
            for prefix in page.prefixes:
                found = day_from_dir(prefix)
                if found is not None and found[1] in layouts:
                    view.days.setdefault(found[0], set()).add(found[1])
            if Layout.DES_FLAT in layouts:
                for obj in page.objects:
                    self._note_flat_object(view, obj)
            if page.next_token is None:
                return
            page = await self._storage.list_page("", "/", page.next_token)

    def _note_flat_object(self, view: _RootView, obj: ObjectInfo) -> None:
        name = parse_flat_key(obj.key)
        is_sidecar = obj.key.endswith(".meta") and parse_flat_key(obj.key[:-5] + ".des")
        if name is None and not is_sidecar:
            return
        day = name.day if name is not None else flat_day_from_prefix(obj.key[:9])
        if day is None:
            return
        view.days.setdefault(day, set()).add(Layout.DES_FLAT)
        view.flat_objects.setdefault(day, []).append(obj)

    async def _add_flat_days(self, view: _RootView) -> None:
        token: str | None = None
        while True:
            page = await self._storage.list_page("", "_", token)
            for prefix in page.prefixes:
                day = flat_day_from_prefix(prefix)
                if day is not None:
                    view.days.setdefault(day, set()).add(Layout.DES_FLAT)
            token = page.next_token
            if token is None:
                return

    async def _list_day(self, root: _RootView, day: str) -> DayListing:
        objects: list[tuple[Layout, str, ObjectInfo]] = []
        for layout in sorted(root.days[day], key=lambda lay: lay.value):
            prefix = _day_prefix(layout, day)
            if layout is Layout.DES_FLAT and day in root.flat_objects:
                listed = root.flat_objects[day]
            else:
                listed = await self._list_all(prefix)
            objects.extend((layout, prefix, obj) for obj in listed)
        listing = _build_day(day, objects)
        self._days[day] = (self._clock() + self._ttl, listing)
        log.debug("day %s of %s: %d shards", day, self._storage.describe(), len(listing.shards))
        return listing

    async def _list_all(self, prefix: str) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        token: str | None = None
        while True:
            page = await self._storage.list_page(prefix, "/", token)
            found.extend(page.objects)
            token = page.next_token
            if token is None:
                return found


def _day_prefix(layout: Layout, day: str) -> str:
    if layout is Layout.DATAVISION:
        return f"{day}/"
    if layout is Layout.DES_NESTED:
        return day.replace("-", "") + "/"
    return flat_day_prefix(day)


def _build_day(day: str, objects: list[tuple[Layout, str, ObjectInfo]]) -> DayListing:
    infos = {obj.key: obj for _, _, obj in objects}
    names: list[ContainerName] = []
    for layout, prefix, obj in objects:
        name = (
            parse_flat_key(obj.key)
            if layout is Layout.DES_FLAT
            else parse_day_key(layout, prefix, obj.key)
        )
        if name is not None and name.day == day:
            names.append(name)
    chosen, hidden = merge_shards(names)
    for item in hidden:
        log.warning("day %s: %s", day, item)
    shards: dict[str, ContainerRef] = {}
    for name in sorted(chosen.values(), key=lambda n: n.shard):
        info = infos[name.key]
        sidecar = infos.get(name.sidecar_key) if name.sidecar_key else None
        shards[name.shard] = ContainerRef(name, info.size, info.etag, info.mtime_ns, sidecar)
    newest = max((ref.mtime_ns for ref in shards.values()), default=0)
    return DayListing(day, shards, newest)


def forced_layout(value: str) -> frozenset[Layout] | None:
    if value == "auto":
        return None
    try:
        return frozenset({LAYOUT_NAMES[value]})
    except KeyError:
        raise UsageError(
            f"layout: {value!r} is not one of auto, {', '.join(LAYOUT_NAMES)}"
        ) from None
