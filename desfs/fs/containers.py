"""Opening containers: one round trip from a listing entry to a parsed index and file tree.

A container opens with one suffix GET of the tail window; DES2 sends its 8-byte header
GET and a listed `.meta` sidecar GET in the same round. An index larger than the window
costs exactly one more GET. Opened containers are kept in an LRU bounded by an estimate
of their memory; concurrent first touches share one load; a failed open is remembered
for `error_ttl` seconds so a broken container is not fetched again on every `ls`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio
from cachetools import LRUCache

from desfs.cache.singleflight import SingleFlight
from desfs.config import CacheSettings, LayoutSettings
from desfs.errors import DesfsError, FormatError, PartialContainer
from desfs.format.container import open_container
from desfs.format.model import ContainerIndex, Format, NeedBytes
from desfs.fs.catalog import ContainerRef
from desfs.namespace.tombstones import tombstoned_uids
from desfs.namespace.tree import ShardTree, build_tree
from desfs.storage.aio import AsyncStorage
from desfs.storage.base import Blob

log = logging.getLogger(__name__)

HEAD_BYTES = 16
# Bytes of Python objects per parsed entry besides its name (held twice: the entry's bytes
# and the tree's str) and its meta; tracemalloc measured 330-350 on DESHEAD1 and DES2
# containers of 5,000-20,000 entries, flat and nested names, with and without meta.
ENTRY_OVERHEAD = 384


@dataclass(frozen=True, slots=True, eq=False)
class Container:
    """An opened container: identity at open time, parsed index, and its file tree."""

    ref: ContainerRef
    etag: str
    index: ContainerIndex
    tree: ShardTree
    tail: bytes  # the bytes of the tail read, [index.size - len(tail), index.size)

    @property
    def object_id(self) -> tuple[str, str]:
        return (self.ref.key, self.etag)

    @property
    def tail_start(self) -> int:
        return self.index.size - len(self.tail)

    def memory_estimate(self) -> int:
        """Bytes this container keeps alive; the index cache's budget counts these."""
        entries = self.index.entries
        names = sum(len(e.name) for e in entries)
        metas = sum(len(e.meta) for e in entries)
        return len(self.tail) + ENTRY_OVERHEAD * len(entries) + 2 * names + metas


class ContainerLoader:
    """Loads and caches containers; the only code that reads footers and indices."""

    def __init__(
        self,
        storage: AsyncStorage,
        cache: CacheSettings,
        layout: LayoutSettings,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._storage = storage
        self._window = cache.tail_window
        self._error_ttl = cache.error_ttl
        self._sidecar_max = layout.sidecar_max_bytes
        self._clock = clock
        self._opened: LRUCache[tuple[str, str], Container] = LRUCache(
            maxsize=cache.index_cache_bytes, getsizeof=Container.memory_estimate
        )
        self._failed: dict[tuple[str, str], tuple[float, DesfsError]] = {}
        self._flights: SingleFlight[tuple[str, str], Container] = SingleFlight()

    def cached(self, ref: ContainerRef) -> Container | None:
        return self._opened.get((ref.key, ref.etag))

    def opened(self) -> list[Container]:
        return list(self._opened.values())

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

    async def load(self, ref: ContainerRef) -> Container:
        key = (ref.key, ref.etag)
        found = self._opened.get(key)
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
            self._failed[key] = (self._clock() + self._error_ttl, exc)
            log.warning("container %s: %s", ref.key, exc)
            raise
        self._failed.pop(key, None)
        self._opened[key] = container
        return container

    async def _open(self, ref: ContainerRef) -> Container:
        tail, head, sidecar = await self._first_round(ref)
        data = tail.data
        result = open_container(tail.size, data, head)
        if isinstance(result, NeedBytes):
            data, head = await self._second_round(ref, tail, head, result)
            result = open_container(tail.size, data, head)
        if isinstance(result, NeedBytes):
            raise FormatError(f"{ref.key}: index still incomplete after two reads")
        tree = build_tree(result.entries, self._tombstones(ref, sidecar))
        for hidden in tree.hidden:
            log.info("%s: hidden entry %r: %s", ref.key, hidden.name, hidden.reason)
        return Container(ref, tail.etag, result, tree, data)

    async def _first_round(self, ref: ContainerRef) -> tuple[Blob, bytes | None, bytes | None]:
        want_head = ref.name.format is Format.DES2 and ref.size > self._window
        want_sidecar = ref.sidecar is not None and ref.sidecar.size <= self._sidecar_max
        results: dict[str, object] = {}

        async def tail() -> None:
            results["tail"] = await self._storage.read_suffix(ref.key, self._window)

        async def head() -> None:
            results["head"] = await self._storage.read_range(ref.key, 0, HEAD_BYTES, None)

        async def sidecar() -> None:
            assert ref.sidecar is not None
            try:
                results["sidecar"] = (await self._storage.read_object(ref.sidecar.key)).data
            except DesfsError as exc:
                log.warning("sidecar %s unreadable, nothing hidden: %s", ref.sidecar.key, exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(tail)
            if want_head:
                nursery.start_soon(head)
            if want_sidecar:
                nursery.start_soon(sidecar)
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

        async with trio.open_nursery() as nursery:
            for start, end in need.ranges:
                nursery.start_soon(fetch, start, end)
        data = tail.data
        for (start, end), chunk in got.items():
            if len(chunk) != end - start:
                raise FormatError(f"{ref.key}: short read of [{start}, {end})")
            if end == tail_start:
                data = chunk + data
            if start == 0:
                head = chunk
        return data, head

    def _tombstones(self, ref: ContainerRef, sidecar: bytes | None) -> frozenset[str]:
        if sidecar is None:
            return frozenset()
        try:
            return tombstoned_uids(sidecar)
        except FormatError as exc:
            log.warning("sidecar of %s ignored: %s", ref.key, exc)
            return frozenset()
