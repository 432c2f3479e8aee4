"""An LRU of bytes values bounded by their total length.

Only the lengths of the values count against the budget (not the keys or Python's
per-object overhead). A value longer than the whole budget is simply not kept. Only
trio tasks touch it, all on one thread, so it takes no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from desfs.errors import UsageError

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class LruStats:
    hits: int
    misses: int
    evictions: int  # entries pushed out to make room; pops and discards are not counted
    bytes: int  # total length of the values held now
    entries: int
    budget: int


class ByteLRU(Generic[K]):
    """Least recently used bytes values, at most `budget` bytes in total."""

    def __init__(self, budget: int) -> None:
        if budget < 0:
            raise UsageError(f"cache budget must be >= 0 bytes, got {budget}")
        self._budget = budget
        self._entries: OrderedDict[K, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    @property
    def budget(self) -> int:
        return self._budget

    def get(self, key: K) -> bytes | None:
        """The value of `key` (now the most recently used), or None; counted as hit or miss."""
        value = self._entries.get(key)
        if value is None:
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return value

    def put(self, key: K, value: bytes) -> bool:
        """Keep `value` under `key`, evicting the least recently used entries as needed.

        Returns False when the value is longer than the whole budget and so not kept (any
        older value of `key` is dropped all the same, it has been replaced).
        """
        self.pop(key)
        size = len(value)
        if size > self._budget:
            return False
        while self._bytes + size > self._budget:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)
            self._evictions += 1
        self._entries[key] = value
        self._bytes += size
        return True

    def pop(self, key: K) -> bytes | None:
        """Remove `key` and return its value, or None when it is not cached."""
        value = self._entries.pop(key, None)
        if value is not None:
            self._bytes -= len(value)
        return value

    def discard_where(self, predicate: Callable[[K], bool]) -> int:
        """Remove every entry whose key satisfies `predicate`; returns how many went."""
        doomed = [key for key in self._entries if predicate(key)]
        for key in doomed:
            self.pop(key)
        return len(doomed)

    def __contains__(self, key: object) -> bool:
        """Membership without touching recency or the hit/miss counters."""
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def statistics(self) -> LruStats:
        return LruStats(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            bytes=self._bytes,
            entries=len(self._entries),
            budget=self._budget,
        )
