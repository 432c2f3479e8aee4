"""SingleFlight: one load per key for concurrent callers; failures and cancellation."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from desfs.cache.singleflight import SingleFlight
from desfs.errors import DesfsError, FormatError, ObjectChanged, StorageError


class GatedLoad:
    """A load that counts its calls and blocks until the gate opens."""

    def __init__(self, value: bytes = b"value") -> None:
        self.value = value
        self.calls = 0
        self.gate = trio.Event()
        self.error: Exception | None = None

    async def __call__(self) -> bytes:
        self.calls += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value


async def _collect(
    flights: SingleFlight[str, bytes], key: str, load: GatedLoad, out: list[object]
) -> None:
    try:
        out.append(await flights.run(key, load))
    except DesfsError as exc:
        out.append(exc)


async def test_ten_concurrent_callers_share_one_load() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    results: list[object] = []
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(_collect, flights, "k", load, results)
        await trio.testing.wait_all_tasks_blocked()
        assert flights.in_flight("k")
        load.gate.set()
    assert load.calls == 1
    assert results == [b"value"] * 10
    assert not flights.in_flight("k")
    stats = flights.statistics()
    assert (stats.loads, stats.joins, stats.failures, stats.abandoned) == (1, 9, 0, 0)


async def test_different_keys_load_separately() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    loads = {"a": GatedLoad(b"A"), "b": GatedLoad(b"B")}
    results: list[object] = []
    async with trio.open_nursery() as nursery:
        for key, load in loads.items():
            nursery.start_soon(_collect, flights, key, load, results)
        await trio.testing.wait_all_tasks_blocked()
        for load in loads.values():
            load.gate.set()
    assert set(results) == {b"A", b"B"}
    assert [load.calls for load in loads.values()] == [1, 1]


async def test_failed_leader_fails_followers_with_fresh_errors_of_same_class() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    original = ObjectChanged("container s/day/a.des changed")
    load.error = original
    results: list[object] = []
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(_collect, flights, "k", load, results)
        await trio.testing.wait_all_tasks_blocked()
        load.gate.set()
    assert load.calls == 1
    assert len(results) == 4
    assert sum(result is original for result in results) == 1  # the leader's own
    followers = [result for result in results if result is not original]
    assert len({id(result) for result in followers}) == 3
    for error in followers:
        assert type(error) is ObjectChanged
        assert str(error) == "container s/day/a.des changed"
        assert error.errno == errno.ESTALE
        assert error.__cause__ is original
    assert flights.statistics().failures == 1


async def test_errors_are_not_cached() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    load.gate.set()
    load.error = StorageError("store unreachable")
    with pytest.raises(StorageError):
        await flights.run("k", load)
    load.error = None
    assert await flights.run("k", load) == b"value"
    assert load.calls == 2


class KeyedError(FormatError):
    """An error whose constructor does not take the message, as subclasses may do."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


async def test_fresh_error_keeps_class_and_attributes_of_unusual_constructors() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    load.error = KeyedError("a.des", "bad footer")
    results: list[object] = []
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(_collect, flights, "k", load, results)
        await trio.testing.wait_all_tasks_blocked()
        load.gate.set()
    follower = next(result for result in results if result is not load.error)
    assert isinstance(follower, KeyedError)
    assert follower.key == "a.des"
    assert str(follower) == "a.des: bad footer"


async def test_unexpected_leader_error_reaches_followers_as_desfs_error() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    original = KeyError("bug")
    load.error = original
    results: list[object] = []

    async def leader() -> None:
        with pytest.raises(KeyError):
            await flights.run("k", load)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(_collect, flights, "k", load, results)
        await trio.testing.wait_all_tasks_blocked()
        load.gate.set()
    [follower] = results
    assert type(follower) is DesfsError
    assert isinstance(follower, DesfsError)
    assert follower.__cause__ is original


async def test_cancelled_leader_hands_over_to_one_follower() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    results: list[object] = []
    leader_scope = trio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await flights.run("k", load)
        results.append("leader cancelled")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(5):
            nursery.start_soon(_collect, flights, "k", load, results)
        await trio.testing.wait_all_tasks_blocked()
        assert load.calls == 1
        leader_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert load.calls == 2  # exactly one follower took over
        assert flights.in_flight("k")
        load.gate.set()
    assert leader_scope.cancelled_caught
    assert sorted(map(str, results)) == ["b'value'"] * 5 + ["leader cancelled"]
    stats = flights.statistics()
    assert (stats.loads, stats.abandoned, stats.failures) == (2, 1, 0)


async def test_cancelled_follower_does_not_disturb_the_leader() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    results: list[object] = []
    follower_scope = trio.CancelScope()

    async def follower() -> None:
        with follower_scope:
            await flights.run("k", load)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, flights, "k", load, results)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        follower_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert flights.in_flight("k")
        load.gate.set()
    assert follower_scope.cancelled_caught
    assert results == [b"value"]
    assert load.calls == 1


async def test_none_is_a_value_like_any_other() -> None:
    flights: SingleFlight[str, None] = SingleFlight()
    calls = 0
    gate = trio.Event()

    async def load() -> None:
        nonlocal calls
        calls += 1
        await gate.wait()

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(flights.run, "k", load)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert calls == 1


async def test_claim_publishes_each_key_as_soon_as_it_is_settled() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    unused = GatedLoad(b"unused")
    results: list[object] = []
    with flights.claim(["a", "b"]) as claim:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, flights, "a", unused, results)
            nursery.start_soon(_collect, flights, "b", unused, results)
            await trio.testing.wait_all_tasks_blocked()
            claim.settle("a", b"A")
            await trio.testing.wait_all_tasks_blocked()
            assert results == [b"A"]
            assert flights.in_flight("b")
            claim.settle("b", b"B")
    assert results == [b"A", b"B"]
    assert unused.calls == 0


async def test_claim_of_a_key_in_flight_is_refused() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    with flights.claim(["a"]) as claim:
        with pytest.raises(DesfsError):
            flights.claim(["b", "a"])
        assert not flights.in_flight("b")
        with pytest.raises(DesfsError):
            flights.claim(["c", "c"])
        claim.settle("a", b"A")
        with pytest.raises(DesfsError):
            claim.settle("a", b"A")


async def test_unsettled_claim_without_error_lets_followers_retry() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    load = GatedLoad()
    load.gate.set()
    results: list[object] = []
    async with trio.open_nursery() as nursery:
        with flights.claim(["a"]):
            nursery.start_soon(_collect, flights, "a", load, results)
            await trio.testing.wait_all_tasks_blocked()
    assert results == [b"value"]
    assert load.calls == 1
    assert flights.statistics().abandoned == 1
