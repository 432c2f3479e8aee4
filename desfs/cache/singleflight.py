"""Single flight: concurrent loads of the same key share one call.

The first caller for a key leads: it runs the load while later callers for that key wait
for its outcome. A failed leader makes each follower fail with its own fresh exception
chained from the leader's. A cancelled leader publishes nothing: its followers go round
again and one of them leads, so `trio.Cancelled` never crosses from one task to another.
Errors are never cached; the next call after a failure loads again.

A leader may also claim several keys at once (`claim`) when one load produces all of
their values, as a merged range fetch of adjacent blocks does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import trio

from desfs.errors import DesfsError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class FlightStats:
    loads: int  # claims made; one claim is one load, however many keys it covers
    joins: int  # calls that waited for another task's load instead of loading
    failures: int  # loads that ended with an exception before publishing every key
    abandoned: int  # loads whose leader was cancelled (or gave up) before publishing


class _Flight(Generic[V]):
    """The outcome of one key's load, shared by the leader and its followers."""

    __slots__ = ("done", "error", "outcome")

    def __init__(self) -> None:
        self.done = trio.Event()
        # A 1-tuple rather than the bare value, so that None is a valid value.
        self.outcome: tuple[V] | None = None
        self.error: Exception | None = None


class SingleFlight(Generic[K, V]):
    """Coalesce concurrent loads of the same key into a single call."""

    def __init__(self) -> None:
        self._flights: dict[K, _Flight[V]] = {}
        self._loads = 0
        self._joins = 0
        self._failures = 0
        self._abandoned = 0

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """Return the value of `key`, running `load` only if no other task is loading it."""
        while True:
            flight = self._flights.get(key)
            if flight is None:
                with self.claim((key,)) as claim:
                    value = await load()
                    claim.settle(key, value)
                    return value
            self._joins += 1
            await flight.done.wait()
            if flight.outcome is not None:
                return flight.outcome[0]
            if flight.error is not None:
                raise _fresh_error(flight.error) from flight.error
            # The leader was cancelled: go round, and perhaps lead this time.

    def claim(self, keys: Iterable[K]) -> Claim[K, V]:
        """Mark `keys` as being loaded by the calling task, which must not await before
        entering the returned context manager. None of the keys may be in flight."""
        wanted = tuple(keys)
        if len(set(wanted)) != len(wanted) or any(key in self._flights for key in wanted):
            raise DesfsError(f"single flight: keys already in flight or repeated: {wanted!r}")
        flights = {key: _Flight[V]() for key in wanted}
        self._flights.update(flights)
        self._loads += 1
        return Claim(self, flights)

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    def statistics(self) -> FlightStats:
        return FlightStats(
            loads=self._loads,
            joins=self._joins,
            failures=self._failures,
            abandoned=self._abandoned,
        )

    def _release(self, key: K, flight: _Flight[V]) -> None:
        del self._flights[key]
        flight.done.set()

    def _end(self, pending: dict[K, _Flight[V]], error: Exception | None) -> None:
        if not pending:
            return
        if error is None:
            self._abandoned += 1
        else:
            self._failures += 1
        for key, flight in pending.items():
            flight.error = error
            self._release(key, flight)
        pending.clear()


class Claim(Generic[K, V]):
    """Keys one task has promised to load; leaving the `with` block releases them all.

    Each key is published with `settle` as soon as its value is known. Keys still
    unsettled on exit fail their followers if an exception is leaving the block, and
    are otherwise abandoned (cancellation, or a leader that gave up), so that the
    followers retry.
    """

    def __init__(self, owner: SingleFlight[K, V], flights: dict[K, _Flight[V]]) -> None:
        self._owner = owner
        self._pending = flights

    def settle(self, key: K, value: V) -> None:
        """Publish the value of one claimed key and release its followers."""
        flight = self._pending.pop(key, None)
        if flight is None:
            raise DesfsError(f"single flight: {key!r} is not claimed or already settled")
        flight.outcome = (value,)
        self._owner._release(key, flight)

    def __enter__(self) -> Claim[K, V]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # trio.Cancelled and KeyboardInterrupt are BaseExceptions: they abandon the
        # keys instead of being handed to tasks they do not belong to.
        self._owner._end(self._pending, exc if isinstance(exc, Exception) else None)


def _fresh_error(error: Exception) -> DesfsError:
    """A new exception for one follower, so no exception object is raised in two tasks.

    A desfs error keeps its class, message and attributes (and so its errno); anything
    else is an unexpected failure of the load and becomes a plain DesfsError.
    """
    if isinstance(error, DesfsError):
        cls = type(error)
        # __new__ rather than cls(*args): subclasses may take other __init__ arguments.
        fresh = cls.__new__(cls, *error.args)
        fresh.__dict__.update(error.__dict__)
        return fresh
    return DesfsError(f"shared load failed: {error!r}")
