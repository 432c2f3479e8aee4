"""The inode table: stable inode numbers, kernel lookup counts, and release on forget.

An inode number is a 64-bit hash of the node's identity (day, shard, path), so the same
file has the same number for the life of the mount and, barring a collision, across
remounts. A collision with a live node of another identity is resolved by probing the
next free number, so two live nodes never share one. Nodes are forgotten when the
kernel's lookup count drops to zero, so a walk over millions of files keeps the table
no larger than what the kernel itself still caches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

ROOT_INODE = 1
_MASK = (1 << 63) - 1

N = TypeVar("N")


@dataclass(slots=True)
class _Slot(Generic[N]):
    identity: tuple[str, ...]
    node: N
    lookups: int


class InodeTable(Generic[N]):
    def __init__(self, root: N) -> None:
        self._slots: dict[int, _Slot[N]] = {ROOT_INODE: _Slot(("root",), root, 1)}
        self._by_identity: dict[tuple[str, ...], int] = {("root",): ROOT_INODE}

    def __len__(self) -> int:
        return len(self._slots)

    def number(self, identity: tuple[str, ...]) -> int:
        """The inode number `identity` has (or would get); allocates nothing."""
        known = self._by_identity.get(identity)
        if known is not None:
            return known
        ino = _hash(identity)
        while ino in self._slots or ino <= ROOT_INODE:
            ino = (ino + 1) & _MASK
        return ino

    def remember(self, identity: tuple[str, ...], node: N) -> int:
        """Count one kernel lookup of the node and return its inode number."""
        ino = self.number(identity)
        slot = self._slots.get(ino)
        if slot is None:
            self._slots[ino] = _Slot(identity, node, 1)
            self._by_identity[identity] = ino
        else:
            slot.lookups += 1
            slot.node = node
        return ino

    def get(self, ino: int) -> N | None:
        slot = self._slots.get(ino)
        return None if slot is None else slot.node

    def forget(self, ino: int, count: int) -> None:
        slot = self._slots.get(ino)
        if slot is None or ino == ROOT_INODE:
            return
        slot.lookups -= count
        if slot.lookups <= 0:
            del self._slots[ino]
            del self._by_identity[slot.identity]


def _hash(identity: tuple[str, ...]) -> int:
    digest = hashlib.blake2b("\x00".join(identity).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & _MASK
