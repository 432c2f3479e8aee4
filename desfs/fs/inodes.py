"""The inode table: stable inode numbers, kernel lookup counts, and release on forget.

Inode numbers are derived, not allocated: a day's is a hash of its name; a shard's is a
hash of (day, shard) with the low `ENTRY_BITS` clear, and the nodes inside the shard
fill those low bits from their index position. So the same file has the same number for
the life of the mount and, barring a collision, across remounts; and numbers inside a
shard follow container order, which matters because `cp -r` and other tools read a
directory's files sorted by inode number. A collision with a live node of another
identity is resolved by probing the next free number, so two live nodes never share
one. Nodes are forgotten when the kernel's lookup count drops to zero.

The kernel forgets only under memory pressure, so after a walk it would keep every
entry, and this table one node per entry. The table therefore has a soft `limit`: past
it, `surplus` names the least recently looked-up leaves (nodes with no remembered
children) for the FUSE layer to invalidate, and the kernel's forgets then shrink the
table. Leaves only, so a directory the walk is still inside is never dropped whole.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
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
    parent: int
    children: int = 0  # remembered nodes whose parent this is
    released: bool = False  # the kernel has been asked to drop its entry


@dataclass(frozen=True, slots=True)
class Release(Generic[N]):
    """One kernel entry to invalidate: `node` under the directory `parent`."""

    ino: int
    parent: int
    node: N


class InodeTable(Generic[N]):
    def __init__(self, root: N, limit: int) -> None:
        self._slots: dict[int, _Slot[N]] = {ROOT_INODE: _Slot(("root",), root, 1, ROOT_INODE)}
        self._by_identity: dict[tuple[str, ...], int] = {("root",): ROOT_INODE}
        self._limit = limit
        self._leaves: OrderedDict[int, None] = OrderedDict()  # oldest lookup first
        self._released = 0

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

    def remember(self, identity: tuple[str, ...], preferred: int, node: N, parent: int) -> int:
        """Count one kernel lookup of the node (a child of `parent`); return its number."""
        ino = self.number(identity, preferred)
        slot = self._slots.get(ino)
        if slot is None:
            slot = self._slots[ino] = _Slot(identity, node, 1, parent)
            self._by_identity[identity] = ino
            self._adopt(parent)
        else:
            slot.lookups += 1
            slot.node = node
            self._unmark(slot)
        if slot.children == 0:
            self._leaves[ino] = None
            self._leaves.move_to_end(ino)
        return ino

    def get(self, ino: int) -> N | None:
        slot = self._slots.get(ino)
        return None if slot is None else slot.node

    def forget(self, ino: int, count: int) -> None:
        slot = self._slots.get(ino)
        if slot is None or ino == ROOT_INODE:
            return
        slot.lookups -= count
        if slot.lookups > 0:
            return
        del self._slots[ino]
        del self._by_identity[slot.identity]
        self._leaves.pop(ino, None)
        self._unmark(slot)
        parent = self._slots.get(slot.parent)
        if parent is not None and parent.children > 0:
            parent.children -= 1
            if parent.children == 0 and not parent.released and slot.parent != ROOT_INODE:
                self._leaves[slot.parent] = None

    def over_limit(self) -> bool:
        return bool(self._leaves) and len(self._slots) - self._released > self._limit

    def surplus(self, most: int) -> list[Release[N]]:
        """Up to `most` least recently looked-up leaves beyond the limit, marked released."""
        found: list[Release[N]] = []
        excess = len(self._slots) - self._released - self._limit
        while excess > len(found) and len(found) < most and self._leaves:
            ino, _ = self._leaves.popitem(last=False)
            slot = self._slots[ino]
            slot.released = True
            self._released += 1
            found.append(Release(ino, slot.parent, slot.node))
        return found

    def unrelease(self, ino: int) -> None:
        """The kernel had no entry to drop (yet): make the node a candidate again."""
        slot = self._slots.get(ino)
        if slot is not None and slot.released:
            self._unmark(slot)
            if slot.children == 0:
                self._leaves[ino] = None

    def _adopt(self, parent: int) -> None:
        slot = self._slots.get(parent)
        if slot is not None:
            slot.children += 1
            self._leaves.pop(parent, None)

    def _unmark(self, slot: _Slot[N]) -> None:
        if slot.released:
            slot.released = False
            self._released -= 1


def hashed_inode(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & _MASK


def shard_inode(day: str, shard: str) -> int:
    return hashed_inode("shard", day, shard) & ~_ENTRY_MASK


def entry_inode(shard_ino: int, position: int, is_directory: bool) -> int:
    return shard_ino | ((((position + 1) << 1) | is_directory) & _ENTRY_MASK)
