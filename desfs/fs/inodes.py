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
entry, and this table a node for each. The table therefore has a soft `limit`: past it,
`surplus` names nodes for the FUSE layer to invalidate, and the kernel's forgets then
shrink the table. It prefers a cold directory (nothing in or below it looked up for
`COLD_EPOCHS` epochs), because one invalidation drops its whole subtree, and falls back
to the least recently looked-up file. One invalidation costs the FUSE layer about one
request's worth of time, and one READDIRPLUS reply adds dozens of entries, so releasing
files one by one could not keep up with a walk. Inside one huge directory that is still
being listed there is no cold directory, so readdir hands out fewer entries per reply
while the table is `crowded`, and the walk proceeds at the pace of the releases.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

ROOT_INODE = 1
ENTRY_BITS = 28  # low bits of a shard's inode numbers: (position + 1) << 1 | is_directory
EPOCH_BITS = 8  # an epoch is 256 lookups
COLD_EPOCHS = 4
_MASK = (1 << 63) - 1
_ENTRY_MASK = (1 << ENTRY_BITS) - 1

N = TypeVar("N")


@dataclass(slots=True)
class _Slot(Generic[N]):
    identity: tuple[str, ...]
    node: N
    lookups: int
    parent: int
    directory: bool
    children: int = 0  # remembered nodes whose parent this is
    epoch: int = 0  # when this node, or anything below it, was last looked up
    counted: int = -1  # >= 0: released, and the nodes its release still counts as going


@dataclass(frozen=True, slots=True)
class Release(Generic[N]):
    """One kernel entry to invalidate: `node` under the directory `parent`."""

    ino: int
    parent: int
    node: N


class InodeTable(Generic[N]):
    def __init__(self, root: N, limit: int) -> None:
        root_slot = _Slot(("root",), root, 1, ROOT_INODE, True)
        self._slots: dict[int, _Slot[N]] = {ROOT_INODE: root_slot}
        self._by_identity: dict[tuple[str, ...], int] = {("root",): ROOT_INODE}
        self._limit = limit
        self._lookups = 0
        self._files: OrderedDict[int, None] = OrderedDict()  # oldest lookup first
        self._dirs: OrderedDict[int, None] = OrderedDict()  # oldest activity below first
        self._released = 0  # nodes the kernel was asked to drop and has not forgotten yet

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

    def remember(
        self, identity: tuple[str, ...], preferred: int, node: N, parent: int, directory: bool
    ) -> int:
        """Count one kernel lookup of the node (a child of `parent`); return its number."""
        ino = self.number(identity, preferred)
        slot = self._slots.get(ino)
        if slot is None:
            slot = self._slots[ino] = _Slot(identity, node, 1, parent, directory)
            self._by_identity[identity] = ino
            if parent in self._slots:
                self._slots[parent].children += 1
        else:
            slot.lookups += 1
            slot.node = node
            self._unrelease(slot)
        self._lookups += 1
        slot.epoch = self._lookups >> EPOCH_BITS
        queue = self._dirs if slot.directory else self._files
        queue[ino] = None
        queue.move_to_end(ino)
        self._touch(parent, slot.epoch)
        return ino

    def parent_of(self, ino: int) -> int:
        """The directory a remembered node was looked up in (the root's is the root)."""
        slot = self._slots.get(ino)
        return ROOT_INODE if slot is None else slot.parent

    def known(self, identity: tuple[str, ...]) -> int | None:
        """The inode number of a remembered node, or None."""
        return self._by_identity.get(identity)

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
        (self._dirs if slot.directory else self._files).pop(ino, None)
        self._unrelease(slot)
        parent = self._slots.get(slot.parent)
        if parent is not None:
            parent.children = max(0, parent.children - 1)
            if parent.counted > 1:
                parent.counted -= 1
                self._released -= 1

    def over_limit(self) -> bool:
        has_candidates = bool(self._files or self._dirs)
        return has_candidates and len(self._slots) - self._released > self._limit

    def crowded(self) -> bool:
        """Far enough over the limit that callers should hand the kernel fewer entries."""
        return len(self._slots) - self._released > self._limit + self._limit // 4

    def surplus(self, most: int) -> list[Release[N]]:
        """Up to `most` nodes to invalidate so that the table gets back under its limit."""
        found: list[Release[N]] = []
        while len(found) < most and self.over_limit():
            ino = self._pick()
            slot = self._slots[ino]
            parent = self._slots.get(slot.parent)
            if parent is not None and parent.counted >= 0:
                continue  # its directory's release drops it too
            slot.counted = 1 + (slot.children if slot.directory else 0)
            self._released += slot.counted
            found.append(Release(ino, slot.parent, slot.node))
        return found

    def unrelease(self, ino: int) -> None:
        """The kernel had no entry to drop (yet): make the node a candidate again."""
        slot = self._slots.get(ino)
        if slot is not None and slot.counted >= 0:
            self._unrelease(slot)
            (self._dirs if slot.directory else self._files)[ino] = None

    def _pick(self) -> int:
        """A cold directory if there is one, else the oldest file, else the oldest directory."""
        oldest_dir = next(iter(self._dirs), None)
        if oldest_dir is not None:
            epoch = self._lookups >> EPOCH_BITS
            if self._slots[oldest_dir].epoch + COLD_EPOCHS < epoch or not self._files:
                return self._dirs.popitem(last=False)[0]
        return self._files.popitem(last=False)[0]

    def _touch(self, ino: int, epoch: int) -> None:
        """Mark the directory `ino` and its ancestors active in this epoch."""
        while ino != ROOT_INODE:
            slot = self._slots.get(ino)
            if slot is None or slot.epoch == epoch:
                return
            slot.epoch = epoch
            if ino in self._dirs:
                self._dirs.move_to_end(ino)
            ino = slot.parent

    def _unrelease(self, slot: _Slot[N]) -> None:
        if slot.counted >= 0:
            self._released -= slot.counted
            slot.counted = -1


def hashed_inode(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & _MASK


def shard_inode(day: str, shard: str) -> int:
    return hashed_inode("shard", day, shard) & ~_ENTRY_MASK


def entry_inode(shard_ino: int, position: int, is_directory: bool) -> int:
    return shard_ino | ((((position + 1) << 1) | is_directory) & _ENTRY_MASK)
