"""Opening a container: one round trip from a listing entry to a parsed index and tree.

A container opens with one suffix GET of the tail window; DES2 sends its 8-byte header
GET and a `.meta` sidecar GET in the same round. An index larger than the window costs
exactly one more GET. A record in the persistent index store replaces the GETs of footer
and index. A container found by routing rather than by listing arrives with its tail
already read (the read told its size and ETag), and its sidecar, if any, is looked for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import trio

from desfs.archive.catalog import ContainerRef
from desfs.archive.opened import Container
from desfs.cache.persistent import IndexStore
from desfs.cache.records import CachedTail
from desfs.cache.shared import SharedIndexCache
from desfs.errors import DesfsError, FormatError, ObjectMissing
from desfs.format.container import open_container
from desfs.format.model import ContainerIndex, Format, NeedBytes
from desfs.namespace.tombstones import tombstoned_uids
from desfs.namespace.tree import build_tree
from desfs.storage.aio import AsyncStore
from desfs.storage.base import Blob

log = logging.getLogger(__name__)

HEAD_BYTES = 16


class Opener:
    def __init__(
        self,
        storage: AsyncStore,
        window: int,
        sidecar_max: int,
        store: IndexStore | None,
        stale: Callable[[ContainerRef], bool],
        shared: SharedIndexCache | None = None,
    ) -> None:
        """`stale`: whether the cached records of a container are known not to be used."""
        self._storage = storage
        self._window = window
        self._sidecar_max = sidecar_max
        self._store = store
        self._stale = stale
        self._shared = shared
        self._shared_limiter = trio.CapacityLimiter(8)

    async def read_tail(self, key: str) -> Blob:
        """The tail window of a container known only by its key (routing)."""
        return await self._storage.read_suffix(key, self._window)

    async def open(self, ref: ContainerRef, tail: Blob | None = None) -> Container:
        """Memory missed: the disk record, then the shared cache, then the store. A `tail`
        already read (routing) is used as it is: the store has been paid for."""
        stored = await self._open_stored(ref)
        if stored is not None:
            return stored
        shared = await self._open_shared(ref) if tail is None else None
        if shared is not None:
            return shared
        tail, head, sidecar = await self._first_round(ref, tail)
        data = tail.data
        result = open_container(tail.size, data, head)
        if isinstance(result, NeedBytes):
            data, head = await self._second_round(ref, tail, head, result)
            result = open_container(tail.size, data, head)
        if isinstance(result, NeedBytes):
            raise FormatError(f"{ref.key}: index still incomplete after two reads")
        container = self._build(ref, tail.etag, result, sidecar, data)
        await self._keep(container, head, publish=True)
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
        if store is None or self._stale(ref):
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

    async def _open_shared(self, ref: ContainerRef) -> Container | None:
        """The container from the fleet's shared cache (one Redis round trip), or None."""
        shared = self._shared
        if shared is None or self._stale(ref):
            return None
        cached = await trio.to_thread.run_sync(
            shared.get, ref.key, ref.etag, ref.size, limiter=self._shared_limiter
        )
        if cached is None:
            return None
        index = _parse_record(ref, cached)
        if index is None:
            return None
        sidecar = await self._read_sidecar(ref) if self._want_sidecar(ref) else None
        container = self._build(ref, ref.etag, index, sidecar, cached.tail)
        await self._keep(container, cached.head, publish=False)
        return container

    async def _keep(self, container: Container, head: bytes | None, publish: bool) -> None:
        """Record the bytes the index was parsed from, so a remount reads none of them,
        and (`publish`) so that the other hosts of a fleet do not either."""
        index, tail_start = container.index, container.tail_start
        start = max(index.index_start, tail_start)
        if head is None and tail_start == 0:
            head = container.tail[:HEAD_BYTES]  # the kept tail no longer starts at 0
        tail = container.tail[start - tail_start :]
        key, etag = container.ref.key, container.etag
        if self._store is not None:
            try:
                await trio.to_thread.run_sync(
                    self._store.put, key, etag, index.size, tail, start, head
                )
            except (OSError, DesfsError) as exc:
                log.warning("index cache: cannot keep %s: %s", key, exc)
        if publish and self._shared is not None:
            await trio.to_thread.run_sync(
                self._shared.put, key, etag, index.size, tail, start, head,
                limiter=self._shared_limiter,
            )  # fmt: skip

    async def _first_round(
        self, ref: ContainerRef, known_tail: Blob | None
    ) -> tuple[Blob, bytes | None, bytes | None]:
        want_head = ref.name.format is Format.DES2 and ref.size > self._window
        results: dict[str, object] = {"tail": known_tail}

        async def tail() -> None:
            results["tail"] = await self.read_tail(ref.key)

        async def head() -> None:
            results["head"] = await self._storage.read_range(ref.key, 0, HEAD_BYTES, None)

        async def sidecar() -> None:
            results["sidecar"] = await self._read_sidecar(ref)

        jobs = [] if known_tail is not None else [tail]
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
        if ref.sidecar is not None:
            return ref.sidecar.size <= self._sidecar_max
        # Found by routing, not by a listing: a DES container may have one; look.
        return not ref.listed and ref.name.sidecar_key is not None

    async def _read_sidecar(self, ref: ContainerRef) -> bytes | None:
        key = ref.sidecar.key if ref.sidecar is not None else ref.name.sidecar_key
        assert key is not None
        try:
            blob = await self._storage.read_suffix(key, self._sidecar_max + 1)
        except ObjectMissing:
            return None
        except DesfsError as exc:
            log.warning("sidecar %s unreadable, nothing hidden: %s", key, exc)
            return None
        if blob.size > self._sidecar_max:
            log.warning("sidecar %s is over %d bytes; nothing hidden", key, self._sidecar_max)
            return None
        return blob.data

    def _tombstones(self, ref: ContainerRef, sidecar: bytes | None) -> frozenset[str]:
        if sidecar is None:
            return frozenset()
        try:
            return tombstoned_uids(sidecar)
        except FormatError as exc:
            log.warning("sidecar of %s ignored: %s", ref.key, exc)
            return frozenset()


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
