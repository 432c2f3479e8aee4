"""Request counters: what desfs asked of its store, by kind, with bytes and latency.

Backends update them from worker threads, so updates take a lock; readers get an
immutable snapshot. The root xattrs, `desfs status` and the metrics all read snapshots.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum


class RequestKind(Enum):
    LIST = "list"
    GET = "get"  # a whole object
    GET_RANGE = "get_range"  # a byte range, suffix ranges included
    HEAD = "head"


# Upper bounds (seconds) of the latency histogram buckets; the last bucket is open.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    requests: dict[str, int]
    bytes: int
    retries: int
    errors: int
    latency_seconds: float
    latency_buckets: tuple[int, ...]

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": dict(self.requests),
            "bytes": self.bytes,
            "retries": self.retries,
            "errors": self.errors,
            "latency_seconds": round(self.latency_seconds, 6),
        }


@dataclass
class RequestCounters:
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _requests: dict[RequestKind, int] = field(default_factory=lambda: dict.fromkeys(RequestKind, 0))
    _bytes: int = 0
    _retries: int = 0
    _errors: int = 0
    _latency: float = 0.0
    _buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    def record(self, kind: RequestKind, nbytes: int, seconds: float) -> None:
        """One request that completed (successfully) after `seconds`."""
        with self._lock:
            self._requests[kind] += 1
            self._bytes += nbytes
            self._latency += seconds
            self._buckets[_bucket(seconds)] += 1

    def record_retry(self) -> None:
        with self._lock:
            self._retries += 1

    def record_error(self) -> None:
        with self._lock:
            self._errors += 1

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            return CounterSnapshot(
                requests={kind.value: n for kind, n in self._requests.items()},
                bytes=self._bytes,
                retries=self._retries,
                errors=self._errors,
                latency_seconds=self._latency,
                latency_buckets=tuple(self._buckets),
            )


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(LATENCY_BUCKETS):
        if seconds <= bound:
            return i
    return len(LATENCY_BUCKETS)
