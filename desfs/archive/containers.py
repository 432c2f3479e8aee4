"""The container loader: the index cache, single flight, and what failed opens leave.

Opened containers are kept in an LRU bounded by an estimate of their memory; one whose
index would not fit the budget is served from a mapped file (`archive.spill`).
Concurrent first touches share one load; a container that failed to open (corrupt,
partly written, missing) is remembered for `error_ttl` seconds so it is not fetched
again on every `ls`; a store that did not answer is asked again at the next touch.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import trio
from cachetools import LRUCache

from desfs.archive.catalog import ContainerRef
from desfs.archive.opened import Container
from desfs.archive.opening import Opener
from desfs.archive.spill import SpillArea
from desfs.archive.store_open import StoreOpener
from desfs.cache.persistent import IndexStore
from desfs.cache.shared import SharedIndexCache
from desfs.cache.singleflight import SingleFlight
from desfs.errors import (
    AccessDenied,
    DesfsError,
    ObjectMissing,
    PartialContainer,
    StorageError,
)
from desfs.format.table import EntryTable
from desfs.namespace.layout import STORE_LAYOUTS, ContainerName
from desfs.settings.sections import CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStore
from desfs.storage.base import Blob

log = logging.getLogger(__name__)

MAX_REMEMBERED = 65536  # failed opens and stale records kept in memory at most


class ContainerLoader:
    """Loads and caches containers; the only code that reads footers and indices."""

    def __init__(
        self,
        storage: AsyncStore,
        cache: CacheSettings,
        layout: LayoutSettings,
        clock: Callable[[], float] = time.monotonic,
        store: IndexStore | None = None,
        shared: SharedIndexCache | None = None,
    ) -> None:
        # Records proven stale by a 412, and opens that failed: bounded, so a long-lived
        # mount over a bucket full of broken containers cannot grow them without end.
        self._stale: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=MAX_REMEMBERED)
        self._opener = Opener(
            storage,
            cache.tail_window,
            layout.sidecar_max_bytes,
            store,
            lambda ref: (ref.key, ref.etag) in self._stale,
            shared,
        )
        self._stores = StoreOpener(storage)
        self._error_ttl = cache.error_ttl
        self._clock = clock
        self._opened: LRUCache[tuple[str, str], Container] = LRUCache(
            maxsize=cache.index_cache_bytes, getsizeof=Container.memory_estimate
        )
        # An index bigger than the budget is spilled to a mapped file (archive.spill); one
        # that is still too big (a hostile number of directories) is kept, alone.
        self._spill = SpillArea(cache.cache_dir)
        self._oversized: tuple[tuple[str, str], Container] | None = None
        self._failed: LRUCache[tuple[str, str], tuple[float, DesfsError]] = LRUCache(
            maxsize=MAX_REMEMBERED
        )
        self._flights: SingleFlight[tuple[str, str], Container] = SingleFlight()

    def cached(self, ref: ContainerRef) -> Container | None:
        return self._get((ref.key, ref.etag))

    def opened(self) -> list[Container]:
        found = list(self._opened.values())
        return found if self._oversized is None else [*found, self._oversized[1]]

    def trim(self) -> None:
        """Hand the pages of spilled indices back to the page cache (at most once a second)."""
        if self._spill.spilled and self._spill.due():
            for container in self.opened():
                if container.spilled is not None:
                    container.spilled.trim()

    def known_partial(self, ref: ContainerRef) -> bool:
        failed = self._failed.get((ref.key, ref.etag))
        return (
            failed is not None
            and isinstance(failed[1], PartialContainer)
            and failed[0] > self._clock()
        )

    def forget(self, container: Container) -> None:
        """Drop a container whose object changed underneath (HTTP 412)."""
        self._opened.pop((container.ref.key, container.ref.etag), None)
        self._opened.pop(container.object_id, None)
        if self._oversized is not None and self._oversized[1] is container:
            self._oversized = None
        self._stale[(container.ref.key, container.ref.etag)] = True

    async def load(self, ref: ContainerRef) -> Container:
        key = (ref.key, ref.etag)
        found = self._get(key)
        if found is not None:
            return found
        failed = self._failed.get(key)
        if failed is not None and failed[0] > self._clock():
            raise type(failed[1])(str(failed[1]))
        return await self._flights.run(key, lambda: self._load(ref))

    async def _load(self, ref: ContainerRef, tail: Blob | None = None) -> Container:
        key = (ref.key, ref.etag)
        try:
            if ref.name.layout in STORE_LAYOUTS:
                container = await self._stores.open(ref)
            else:
                container = await self._opener.open(ref, tail)
        except DesfsError as exc:
            if _about_the_object(exc):
                self._failed[key] = (self._clock() + self._error_ttl, exc)
            if isinstance(exc, PartialContainer):
                log.warning(
                    "container %s: %s; assumed partly written (a writer at work): left out "
                    "of its day, tried again in %.0f s. A truncated copy looks the same; "
                    "desfs verify reports it",
                    ref.key,
                    exc,
                    self._error_ttl,
                )
            else:
                log.warning("container %s: %s", ref.key, exc)
            raise
        self._failed.pop(key, None)
        if container.memory_estimate() > self._opened.maxsize:
            container = await trio.to_thread.run_sync(spill_container, container, self._spill)
        if container.memory_estimate() <= self._opened.maxsize:
            self._opened[key] = container
            self._oversized = None  # least recently loaded: an LRU would evict it first
        else:
            self._opened.clear()
            self._oversized = (key, container)
        return container

    def _get(self, key: tuple[str, str]) -> Container | None:
        found = self._opened.get(key)
        if found is None and self._oversized is not None and self._oversized[0] == key:
            return self._oversized[1]
        return found

    async def load_routed(self, name: ContainerName) -> Container:
        """A container known by its key alone (routing, no listing): its tail read tells
        its size and ETag; the index cache then serves it like a listed one (`load` with
        `container.ref` costs nothing while it is cached)."""
        tail = await self._opener.read_tail(name.key)
        ref = ContainerRef(name, tail.size, tail.etag, int(tail.mtime * 1e9), None, False)
        found = self._get((ref.key, ref.etag))
        if found is not None:
            return found
        return await self._flights.run((ref.key, ref.etag), lambda: self._load(ref, tail))


def spill_container(container: Container, area: SpillArea) -> Container:
    """Blocking: the same container over a mapped file instead of memory."""
    entries = container.index.entries
    if not isinstance(entries, EntryTable) or entries.buffers[0] is not container.tail:
        return container  # only a tail read straight from the store is this large
    buf, starts = entries.buffers
    slots, hide, children, bounds = container.tree.bulk()
    tables = area.write(buf, starts, slots, hide, children)
    moved = entries.relocated(tables.mapping, tables.starts)  # type: ignore[arg-type]
    index = dataclasses.replace(container.index, entries=moved)
    tree = container.tree.relocated(moved, tables.slots, tables.hide, tables.children, bounds)
    tail: bytes = tables.mapping  # type: ignore[assignment]
    log.info(
        "%s: index of %d entries is over the index budget; serving it from a mapped file",
        container.ref.key,
        len(entries),
    )
    return Container(container.ref, container.etag, index, tree, tail, tables)


def _about_the_object(exc: DesfsError) -> bool:
    """Whether a failed open says something lasting about the object (corrupt, partly
    written, missing, refused), which `error_ttl` remembers. A store that did not answer,
    or an object replaced under the open (412), is asked again at the next touch, so the
    shard works as soon as the store does."""
    return isinstance(exc, ObjectMissing | AccessDenied) or not isinstance(exc, StorageError)
