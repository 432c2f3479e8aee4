"""The inode table: stable inode numbers, kernel lookup counts, and release on forget.

Inode numbers are derived, not allocated: a day's is a hash of its name; a shard's is a
hash of (day, shard) with the low `ENTRY_BITS` clear, and the nodes inside the shard
fill those low bits from their index position. So the same file has the same number for
the life of the mount and, barring a collision, across remounts; and numbers inside a
shard follow container order, which matters because `cp -r` and other tools read a
directory's files sorted by inode number. A collision with a live node of another
identity is resolved by probing the next free number, so two live nodes never share
one. Nodes are forgotten when the kernel's lookup count drops to zero, so a walk over
millions of files keeps the table no larger than what the kernel itself still caches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

ROOT_INODE = 1
ENTRY_BITS = 28  # low bits of a shard's inode numbers: (position + 1) << 1 | is_directory
_MASK = (1 << 63) - 1
_ENTRY_MASK = (1 << ENTRY_BITS) - 1

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

    def number(self, identity: tuple[str, ...], preferred: int) -> int:
        """The inode number `identity` has (or would get); allocates nothing."""
        known = self._by_identity.get(identity)
        if known is not None:
            return known
        ino = preferred & _MASK
        while ino in self._slots or ino <= ROOT_INODE:
            ino = (ino + 1) & _MASK
        return ino

    def remember(self, identity: tuple[str, ...], preferred: int, node: N) -> int:
        """Count one kernel lookup of the node and return its inode number."""
        ino = self.number(identity, preferred)
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


def hashed_inode(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & _MASK


def shard_inode(day: str, shard: str) -> int:
    return hashed_inode("shard", day, shard) & ~_ENTRY_MASK


def entry_inode(shard_ino: int, position: int, is_directory: bool) -> int:
    return shard_ino | ((((position + 1) << 1) | is_directory) & _ENTRY_MASK)
