"""The one place where blocking storage calls cross into trio worker threads.

Every call holds a token of one CapacityLimiter for as long as its thread runs, so no
more than `max_concurrency` requests are ever in flight; for S3 that number is the
connection pool size, so no thread waits for a connection. A cancelled caller returns at
once (the thread is abandoned, finishes on its own and only then gives its token back),
so cancellation never wedges the limiter and never leaves it over-subscribed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import trio

from desfs.errors import StorageTimeout, UsageError
from desfs.storage.base import Blob, ListPage, Storage
from desfs.storage.counters import RequestCounters

T = TypeVar("T")


class AsyncStore(Protocol):
    """What the engine reads a source through: one store (`AsyncStorage`), or DES zones
    (`desfs.storage.zoned.ZonedStore`), each zone an AsyncStorage of its own."""

    @property
    def counters(self) -> RequestCounters: ...

    @property
    def key_prefix(self) -> str: ...

    @property
    def page_cached(self) -> bool: ...

    def describe(self) -> str: ...

    async def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage: ...

    async def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes: ...

    async def read_suffix(self, key: str, length: int) -> Blob: ...

    async def read_object(self, key: str) -> Blob: ...


class AsyncStorage:
    """Async facade over a synchronous Storage, with bounded concurrency."""

    def __init__(
        self, storage: Storage, max_concurrency: int, deadline: float | None = None
    ) -> None:
        """`deadline`: seconds one call may take in all (waiting for a thread, every
        attempt and pause included) before it fails with StorageTimeout; None: no bound
        beyond the backend's own timeouts."""
        if max_concurrency < 1:
            raise UsageError(f"storage concurrency must be at least 1, got {max_concurrency}")
        self.storage = storage
        self.limiter = trio.CapacityLimiter(max_concurrency)
        self._deadline = deadline

    @property
    def counters(self) -> RequestCounters:
        return self.storage.counters

    @property
    def page_cached(self) -> bool:
        return self.storage.page_cached

    def describe(self) -> str:
        return self.storage.describe()

    @property
    def key_prefix(self) -> str:
        return self.storage.key_prefix

    async def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage:
        return await self._run(lambda: self.storage.list_page(prefix, delimiter, token))

    async def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        return await self._run(lambda: self.storage.read_range(key, start, end, etag))

    async def read_suffix(self, key: str, length: int) -> Blob:
        return await self._run(lambda: self.storage.read_suffix(key, length))

    async def read_object(self, key: str) -> Blob:
        return await self._run(lambda: self.storage.read_object(key))

    async def _run(self, call: Callable[[], T]) -> T:
        if self._deadline is None:
            return await trio.to_thread.run_sync(call, limiter=self.limiter, abandon_on_cancel=True)
        with trio.move_on_after(self._deadline):
            return await trio.to_thread.run_sync(call, limiter=self.limiter, abandon_on_cancel=True)
        # The thread is abandoned: it ends by its own timeouts and then frees its token.
        raise StorageTimeout(
            f"{self.describe()}: no answer within {self._deadline:g} s (s3.request_deadline)"
        )
