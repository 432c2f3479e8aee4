"""AsyncStorage: the limiter bounds concurrent backend calls, and cancellation neither
wedges nor over-subscribes it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import trio

from desfs.errors import ObjectMissing, UsageError
from desfs.storage.aio import AsyncStorage
from desfs.storage.base import Blob, ListPage, ObjectInfo
from desfs.storage.counters import RequestCounters


class GatedStorage:
    """A Storage double whose calls block until `gate` opens, counting how many overlap."""

    def __init__(self) -> None:
        self.counters = RequestCounters()
        self.gate = threading.Event()
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.finished = 0

    def describe(self) -> str:
        return "gated test storage"

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            assert self.gate.wait(timeout=30)
        finally:
            with self._lock:
                self.active -= 1
                self.finished += 1

    def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage:
        self._enter()
        number = int(token or 0)
        info = ObjectInfo(f"{prefix}{number}", 1, "e", 0)
        return ListPage((info,), (), str(number + 1) if number < 2 else None)

    def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        self._enter()
        if key == "missing":
            raise ObjectMissing(key)
        return bytes(end - start)

    def read_suffix(self, key: str, length: int) -> Blob:
        self._enter()
        return Blob(bytes(length), length, "e", 0.0)

    def read_object(self, key: str) -> Blob:
        self._enter()
        return Blob(b"x", 1, "e", 0.0)


async def wait_for(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        # Polling: the state changes in worker threads, which cannot set a trio.Event.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.001)


async def test_limiter_bounds_concurrency() -> None:
    backend = GatedStorage()
    storage = AsyncStorage(backend, max_concurrency=3)
    results: list[bytes] = []

    async def read(i: int) -> None:
        results.append(await storage.read_range(f"k{i}", 0, i + 1, None))

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(read, i)
        await wait_for(lambda: backend.active == 3)
        await trio.sleep(0.05)  # room for a fourth call to sneak in, if it could
        assert backend.active == 3
        assert storage.limiter.borrowed_tokens == 3
        backend.gate.set()

    assert backend.max_active == 3
    assert sorted(len(r) for r in results) == list(range(1, 11))


async def test_cancellation_does_not_wedge_the_limiter() -> None:
    backend = GatedStorage()
    storage = AsyncStorage(backend, max_concurrency=1)

    with trio.move_on_after(0.05) as scope:
        await storage.read_suffix("k", 4)
    assert scope.cancelled_caught
    # The abandoned thread still holds the only token: concurrency stays bounded.
    assert storage.limiter.borrowed_tokens == 1

    backend.gate.set()
    await wait_for(lambda: storage.limiter.borrowed_tokens == 0)
    assert (await storage.read_object("k")).data == b"x"
    assert storage.limiter.borrowed_tokens == 0


async def test_cancel_while_waiting_for_a_token() -> None:
    backend = GatedStorage()
    storage = AsyncStorage(backend, max_concurrency=1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(storage.read_object, "holder")
        await wait_for(lambda: backend.active == 1)
        with trio.move_on_after(0.05):
            await storage.read_object("waiter")  # never gets the token
        backend.gate.set()

    assert backend.finished == 1  # the cancelled waiter never ran
    assert storage.limiter.borrowed_tokens == 0


async def test_errors_release_the_token() -> None:
    backend = GatedStorage()
    backend.gate.set()
    storage = AsyncStorage(backend, max_concurrency=1)

    with pytest.raises(ObjectMissing):
        await storage.read_range("missing", 0, 1, None)
    assert storage.limiter.borrowed_tokens == 0
    assert await storage.read_range("k", 0, 2, None) == b"\0\0"


async def test_pages_and_counters_come_from_the_backend() -> None:
    backend = GatedStorage()
    backend.gate.set()
    storage = AsyncStorage(backend, max_concurrency=2)

    keys: list[str] = []
    token: str | None = None
    while True:
        page = await storage.list_page("p/", "/", token)
        keys += [o.key for o in page.objects]
        token = page.next_token
        if token is None:
            break

    assert keys == ["p/0", "p/1", "p/2"]
    assert storage.counters is backend.counters
    assert storage.describe() == "gated test storage"


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(UsageError):
        AsyncStorage(GatedStorage(), max_concurrency=0)
