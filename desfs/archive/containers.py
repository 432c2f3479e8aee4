"""Opening containers: one round trip from a listing entry to a parsed index and file tree.

A container opens with one suffix GET of the tail window; DES2 sends its 8-byte header
GET and a listed `.meta` sidecar GET in the same round. An index larger than the window
costs exactly one more GET. Opened containers are kept in an LRU bounded by an estimate
of their memory; concurrent first touches share one load; a container that failed to open
(corrupt, partly written, missing) is remembered for `error_ttl` seconds so it is not
fetched again on every `ls`; a store that did not answer is asked again at the next touch.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import trio
from cachetools import LRUCache

from desfs.archive.catalog import ContainerRef
from desfs.archive.spill import SpillArea, SpilledTables
from desfs.cache.persistent import IndexStore
from desfs.cache.records import CachedTail
from desfs.cache.singleflight import SingleFlight
from desfs.errors import (
    AccessDenied,
    DesfsError,
    FormatError,
    ObjectMissing,
    PartialContainer,
    StorageError,
)
from desfs.format.container import open_container
from desfs.format.model import ContainerIndex, Format, NeedBytes
from desfs.format.table import EntryTable
from desfs.namespace.tombstones import tombstoned_uids
from desfs.namespace.tree import ShardTree, build_tree
from desfs.settings.sections import CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStorage
from desfs.storage.base import Blob

log = logging.getLogger(__name__)

HEAD_BYTES = 16
MAX_REMEMBERED = 65536  # failed opens and stale records kept in memory at most
CONTAINER_OVERHEAD = 4096  # the objects every container has, whatever its size


@dataclass(frozen=True, slots=True, eq=False)
class Container:
    """An opened container: identity at open time, parsed index, and its file tree."""

    ref: ContainerRef
    etag: str
    index: ContainerIndex
    tree: ShardTree
    tail: bytes  # the bytes of the tail read, [tail_start, index.size)
    spilled: SpilledTables | None = None  # set: tail and tables are a mapped file

    @property
    def object_id(self) -> tuple[str, str]:
        return (self.ref.key, self.etag)

    @property
    def tail_start(self) -> int:
        size = len(self.tail) if self.spilled is None else self.spilled.tail_size
        return self.index.size - size

    def memory_estimate(self) -> int:
        """Bytes this container keeps alive; the index cache's budget counts these: the
        index bytes, the entry table and the tree (a few bytes per entry each)."""
        if self.spilled is not None:
            return CONTAINER_OVERHEAD + self.tree.directory_memory()
        entries = self.index.entries
        table = entries.table_bytes if isinstance(entries, EntryTable) else 64 * len(entries)
        return CONTAINER_OVERHEAD + len(self.tail) + table + self.tree.memory()


class ContainerLoader:
    """Loads and caches containers; the only code that reads footers and indices."""

    def __init__(
        self,
        storage: AsyncStorage,
        cache: CacheSettings,
        layout: LayoutSettings,
        clock: Callable[[], float] = time.monotonic,
        store: IndexStore | None = None,
    ) -> None:
        self._storage = storage
        self._store = store
        # Records proven stale by a 412, and opens that failed: bounded, so a long-lived
        # mount over a bucket full of broken containers cannot grow them without end.
        self._stale: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=MAX_REMEMBERED)
        self._window = cache.tail_window
        self._error_ttl = cache.error_ttl
        self._sidecar_max = layout.sidecar_max_bytes
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

    async def _load(self, ref: ContainerRef) -> Container:
        key = (ref.key, ref.etag)
        try:
            container = await self._open(ref)
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

    async def _open(self, ref: ContainerRef) -> Container:
        stored = await self._open_stored(ref)
        if stored is not None:
            return stored
        tail, head, sidecar = await self._first_round(ref)
        data = tail.data
        result = open_container(tail.size, data, head)
        if isinstance(result, NeedBytes):
            data, head = await self._second_round(ref, tail, head, result)
            result = open_container(tail.size, data, head)
        if isinstance(result, NeedBytes):
            raise FormatError(f"{ref.key}: index still incomplete after two reads")
        container = self._build(ref, tail.etag, result, sidecar, data)
        await self._keep(container, head)
        return container

    def _build(
        self,
        ref: ContainerRef,
        etag: str,
        index: ContainerIndex,
        sidecar: bytes | None,
        tail: bytes,
    ) -> Container:
        tree = build_tree(index.entries, self._tombstones(ref, sidecar))
        for hidden in tree.hidden:
            log.info("%s: hidden entry %r: %s", ref.key, hidden.name, hidden.reason)
        return Container(ref, etag, index, tree, tail)

    async def _open_stored(self, ref: ContainerRef) -> Container | None:
        """The container from its on-disk record (no GET of footer or index), or None."""
        store = self._store
        if store is None or (ref.key, ref.etag) in self._stale:
            return None
        cached = await trio.to_thread.run_sync(store.get, ref.key, ref.etag, ref.size)
        if cached is None:
            return None
        index = _parse_record(ref, cached)
        if index is None:
            await trio.to_thread.run_sync(store.discard, ref.key, ref.etag)
            return None
        sidecar = await self._read_sidecar(ref) if self._want_sidecar(ref) else None
        return self._build(ref, ref.etag, index, sidecar, cached.tail)

    async def _keep(self, container: Container, head: bytes | None) -> None:
        """Record the bytes the index was parsed from, so a remount reads none of them."""
        if self._store is None:
            return
        index, tail_start = container.index, container.tail_start
        start = max(index.index_start, tail_start)
        if head is None and tail_start == 0:
            head = container.tail[:HEAD_BYTES]  # the kept tail no longer starts at 0
        tail = container.tail[start - tail_start :]
        key, etag = container.ref.key, container.etag
        try:
            await trio.to_thread.run_sync(self._store.put, key, etag, index.size, tail, start, head)
        except (OSError, DesfsError) as exc:
            log.warning("index cache: cannot keep %s: %s", key, exc)

    async def _first_round(self, ref: ContainerRef) -> tuple[Blob, bytes | None, bytes | None]:
        want_head = ref.name.format is Format.DES2 and ref.size > self._window
        results: dict[str, object] = {}

        async def tail() -> None:
            results["tail"] = await self._storage.read_suffix(ref.key, self._window)

        async def head() -> None:
            results["head"] = await self._storage.read_range(ref.key, 0, HEAD_BYTES, None)

        async def sidecar() -> None:
            results["sidecar"] = await self._read_sidecar(ref)

        jobs = [tail]
        if want_head:
            jobs.append(head)
        if self._want_sidecar(ref):
            jobs.append(sidecar)
        await _together(jobs)
        blob = results["tail"]
        assert isinstance(blob, Blob)
        head_bytes = results.get("head")
        side = results.get("sidecar")
        return (
            blob,
            head_bytes if isinstance(head_bytes, bytes) else None,
            side if isinstance(side, bytes) else None,
        )

    async def _second_round(
        self, ref: ContainerRef, tail: Blob, head: bytes | None, need: NeedBytes
    ) -> tuple[bytes, bytes | None]:
        tail_start = tail.size - len(tail.data)
        got: dict[tuple[int, int], bytes] = {}

        async def fetch(start: int, end: int) -> None:
            got[(start, end)] = await self._storage.read_range(ref.key, start, end, tail.etag)

        await _together([partial(fetch, start, end) for start, end in need.ranges])
        data = tail.data
        for (start, end), chunk in got.items():
            if len(chunk) != end - start:
                raise FormatError(f"{ref.key}: short read of [{start}, {end})")
            if end == tail_start:
                data = chunk + data
            if start == 0:
                head = chunk
        return data, head

    def _want_sidecar(self, ref: ContainerRef) -> bool:
        return ref.sidecar is not None and ref.sidecar.size <= self._sidecar_max

    async def _read_sidecar(self, ref: ContainerRef) -> bytes | None:
        assert ref.sidecar is not None
        try:
            return (await self._storage.read_object(ref.sidecar.key)).data
        except DesfsError as exc:
            log.warning("sidecar %s unreadable, nothing hidden: %s", ref.sidecar.key, exc)
            return None

    def _tombstones(self, ref: ContainerRef, sidecar: bytes | None) -> frozenset[str]:
        if sidecar is None:
            return frozenset()
        try:
            return tombstoned_uids(sidecar)
        except FormatError as exc:
            log.warning("sidecar of %s ignored: %s", ref.key, exc)
            return frozenset()


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


async def _together(jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run `jobs` concurrently. The first failure cancels the others and is raised as
    itself, not wrapped in an exception group, so a failed open keeps its desfs error
    class: its errno at the FUSE boundary, and whether `error_ttl` remembers it."""
    errors: list[Exception] = []

    async def guarded(job: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        try:
            await job()
        except Exception as exc:
            errors.append(exc)
            scope.cancel()

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(guarded, job, nursery.cancel_scope)
    if errors:
        raise errors[0]


def _parse_record(ref: ContainerRef, cached: CachedTail) -> ContainerIndex | None:
    """The index in a well-formed record, or None when the parser no longer accepts it."""
    try:
        result = open_container(cached.size, cached.tail, cached.head)
    except FormatError as exc:
        log.warning("index cache: record of %s does not parse (%s); refetching", ref.key, exc)
        return None
    if isinstance(result, NeedBytes):
        log.warning("index cache: record of %s is incomplete; refetching", ref.key)
        return None
    return result
