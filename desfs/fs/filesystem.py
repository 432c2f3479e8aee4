"""The filesystem model: lookup, getattr, readdir, read, xattrs and statfs, without FUSE.

It speaks inode numbers and desfs values (`Attr`, bytes); the FUSE adapter only
translates. Root and day directories change as the store gains days and containers, so
their entries carry the listing TTL; shard contents are immutable and carry the long
`entry_ttl`. A shard directory loads its container on the first operation that needs
the index (opendir, lookup inside it), never on `ls` of the day.

Memory stays bounded on huge walks: nodes name their container instead of holding it
(see `desfs.fs.nodes`), a directory handle makes a child's node only when the kernel
takes that entry, and past `inode_limit` remembered nodes the table names the least
recently used ones for the FUSE layer to invalidate in the kernel.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from desfs.archive.catalog import ContainerRef
from desfs.archive.engine import Archive
from desfs.archive.opened import Container
from desfs.archive.paths import DayDir, RootDir
from desfs.archive.readahead import Stream
from desfs.errors import EntryError, NoAttribute, NotADirectory, NotFound, PartialContainer
from desfs.format.model import Entry
from desfs.fs.attributes import (
    Attr,
    Ownership,
    container_mtime_ns,
    day_mtime_ns,
    entry_mtime_ns,
    file_xattrs,
    pick_xattr,
    shard_xattrs,
)
from desfs.fs.inodes import InodeTable
from desfs.fs.nodes import (
    BY_NAME,
    ByName,
    Child,
    FileStub,
    Node,
    ShardStub,
    by_name_child,
    day_child,
    name_of,
    routed_child,
    shard_child,
    tree_child,
)
from desfs.namespace.tree import FileNode

log = logging.getLogger(__name__)

XATTR_PREFIX = "user.des."
DOTS = 2  # "." and "..", the first two entries of every directory listing

# Offers one readdir entry (name, attributes, id of the next entry); False: buffer full.
Offer = Callable[[str, Attr, int], bool]


@dataclass(frozen=True, slots=True)
class FsStats:
    blocks: int
    files: int
    block_size: int = 4096
    namemax: int = 255


@dataclass(frozen=True, slots=True)
class Invalidation:
    """A kernel entry to drop: the node `ino`, named `name` in the directory `parent`."""

    ino: int
    parent: int
    name: str


@dataclass(frozen=True, slots=True)
class _Listing:
    """An open directory: its inode and its `size` children, each made on demand."""

    ino: int
    size: int
    child: Callable[[int], Child]


@dataclass(slots=True)
class _Open:
    container: Container
    entry: Entry
    stream: Stream = field(default_factory=Stream)


class DesFilesystem:
    def __init__(
        self,
        archive: Archive,
        owner: Ownership,
        entry_ttl: float,
        stats: Callable[[], dict[str, object]],
        inode_limit: int,
    ) -> None:
        self._archive = archive
        self._owner = owner
        self._entry_ttl = entry_ttl
        self._listing_ttl = archive.listing_ttl
        self._stats = stats
        self.inodes: InodeTable[Node] = InodeTable(RootDir(), inode_limit)
        self._dirs: dict[int, _Listing] = {}
        self._files: dict[int, _Open] = {}
        self._handles = count(1)
        self._gone: list[Invalidation] = []
        # The root's time before its first listing (then: midnight of its newest day).
        self._started_ns = time.time_ns()

    # -- names -----------------------------------------------------------------------

    async def lookup(self, parent: int, name: str) -> Attr:
        child = await self._child(self._node(parent), name)
        ino = self._remember(child, parent)
        return self._attr(ino, child.node)

    async def getattr(self, ino: int) -> Attr:
        return self._attr(ino, self._node(ino))

    def inode_count(self) -> int:
        return len(self.inodes)

    def forget(self, ino: int, nlookup: int) -> None:
        self.inodes.forget(ino, nlookup)

    def negative_ttl(self, parent: int) -> float:
        """How long a missing name under `parent` may be cached as missing (0: not at all)."""
        node = self.inodes.get(parent)
        return self._entry_ttl if isinstance(node, ShardStub) else 0.0

    def over_limit(self) -> bool:
        """More nodes are remembered than `inode_limit`: see `releases`."""
        return self.inodes.over_limit()

    def releases(self, most: int) -> list[Invalidation]:
        """Up to `most` least recently used entries the kernel should drop, oldest first."""
        return [Invalidation(r.ino, r.parent, name_of(r.node)) for r in self.inodes.surplus(most)]

    def not_released(self, ino: int) -> None:
        """The kernel had no such entry to drop; the node stays a candidate."""
        self.inodes.unrelease(ino)

    # -- directories -------------------------------------------------------------------

    async def opendir(self, ino: int) -> int:
        size, child = await self._children(self._node(ino))
        fh = next(self._handles)
        self._dirs[fh] = _Listing(ino, size, child)
        return fh

    def readdir(self, fh: int, start: int, offer: Offer) -> None:
        """Offer the entries from `start` on until `offer` declines one: "." and ".."
        first (`ls -a` shows them), then the children.

        Every child `offer` accepts counts as one kernel lookup (READDIRPLUS); "." and ".."
        do not, the kernel links no entry for them. While the inode table is crowded, one
        child per call: the kernel asks again, and the walk cannot outrun the release of
        old entries.
        """
        listing = self._dirs.get(fh)
        if listing is None:
            return
        self._archive.tick()
        for index in range(start, DOTS):
            ino = listing.ino if index == 0 else self.inodes.parent_of(listing.ino)
            node = self.inodes.get(ino) or self._node(listing.ino)  # a parent forgotten
            if not offer((".", "..")[index], self._attr(ino, node), index + 1):
                return
        for index in range(max(start, DOTS) - DOTS, listing.size):
            child = listing.child(index)
            ino = self.inodes.number(child.identity, child.preferred_ino)
            if not offer(child.name, self._attr(ino, child.node), index + DOTS + 1):
                return
            self._remember(child, listing.ino)
            if self.inodes.crowded():
                return

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # -- files -------------------------------------------------------------------------

    async def open(self, ino: int) -> int:
        node = self._node(ino)
        if not isinstance(node, FileStub):
            raise NotFound(f"inode {ino} is not a file")
        container, entry = await self._file(node)
        if entry.error is not None:
            # Refused at open: the kernel never reads an empty file, so a read cannot say it.
            raise EntryError(f"{container.ref.key}: entry {entry.name!r}: {entry.error}")
        fh = next(self._handles)
        self._files[fh] = _Open(container, entry)
        return fh

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        opened = self._files.get(fh)
        if opened is None:
            raise NotFound(f"no open file handle {fh}")
        return await self._archive.read(opened.container, opened.entry, offset, size, opened.stream)

    def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    # -- xattrs and statfs ---------------------------------------------------------------

    async def getxattr(self, ino: int, name: str) -> bytes:
        node = self._node(ino)
        if not name.startswith(XATTR_PREFIX):
            # `ls -l` asks for security.* on every file: answer without loading an index.
            raise NoAttribute(name)
        return pick_xattr(await self._xattrs(node), name)

    async def listxattr(self, ino: int) -> list[str]:
        return sorted(await self._xattrs(self._node(ino)))

    def statfs(self) -> FsStats:
        containers = self._archive.opened()
        total = sum(c.index.size for c in containers)
        files = sum(c.tree.file_count for c in containers)
        return FsStats(blocks=(total + 4095) // 4096, files=files + len(self.inodes))

    async def _xattrs(self, node: Node) -> dict[str, bytes]:
        if isinstance(node, RootDir):
            return {"user.des.stats": json.dumps(self._stats(), sort_keys=True).encode()}
        if isinstance(node, ShardStub) and node.path == "":
            return shard_xattrs(await self._load(node.ref))
        if isinstance(node, FileStub):
            container, entry = await self._file(node)
            key = self._archive.external_key(container, entry)
            return file_xattrs(container, entry, key)
        return {}

    # -- internals -----------------------------------------------------------------------

    def _node(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None:
            raise NotFound(f"inode {ino} is not known (forgotten)")
        return node

    def _remember(self, child: Child, parent: int) -> int:
        directory = not isinstance(child.node, FileStub)
        return self.inodes.remember(
            child.identity, child.preferred_ino, child.node, parent, directory
        )

    async def _load(self, ref: ContainerRef) -> Container:
        try:
            return await self._archive.open(ref)
        except PartialContainer as exc:
            raise self._partial(ref) from exc

    def _partial(self, ref: ContainerRef) -> NotFound:
        """A container found partly written leaves its day; the kernel's entry for its
        shard directory must go too, or `stat` would still find what `ls` does not."""
        day = ref.name.day
        parent = self.inodes.known(("day", day))
        if parent is not None:
            self._gone.append(Invalidation(0, parent, ref.name.shard))
        return NotFound(f"{ref.key} is still being written")

    def gone(self) -> list[Invalidation]:
        """Kernel entries of names that no longer exist, to invalidate (then forgotten)."""
        found, self._gone = self._gone, []
        return found

    async def _file(self, node: FileStub) -> tuple[Container, Entry]:
        """The file's container (loaded again if it was evicted) and its entry there."""
        container = await self._load(node.ref)
        found = container.tree.resolve(node.path)
        if not isinstance(found, FileNode):
            raise NotFound(f"{node.ref.key}: {node.path!r} is no longer a file")
        return container, found.entry

    async def _root_unit(self) -> ShardStub | None:
        """The root as a shard directory, when the source is one unit (an s4db store, a
        Conduit data directory); None when it lists days."""
        unit = await self._archive.root_unit()
        return None if unit is None else ShardStub("", "", unit)

    async def _children(self, node: Node) -> tuple[int, Callable[[int], Child]]:
        if isinstance(node, RootDir) and (unit := await self._root_unit()) is not None:
            return await self._children(unit)
        if isinstance(node, RootDir):
            days = [day_child(day) for day in await self._archive.days()]
            return len(days), days.__getitem__
        if isinstance(node, DayDir):
            shards = [
                shard_child(node.day, shard, ref)
                for shard, ref in await self._archive.shards(node.day)
            ]
            return len(shards), shards.__getitem__
        if isinstance(node, ShardStub):
            container = await self._open_shard(node)
            entries = container.tree.listdir(node.path)
            return len(entries), lambda i: tree_child(node, container, *entries[i])
        if isinstance(node, ByName):
            return 0, _nothing  # names are found, never listed
        raise NotADirectory(f"{node} is not a directory")

    async def _open_shard(self, node: ShardStub) -> Container:
        """The shard's container, about to be listed (the engine's walk-ahead applies)."""
        if node.path != "":
            return await self._load(node.ref)
        try:
            return await self._archive.open_to_list(node.ref)
        except PartialContainer as exc:
            raise self._partial(node.ref) from exc

    async def _child(self, parent: Node, name: str) -> Child:
        if isinstance(parent, RootDir) and (unit := await self._root_unit()) is not None:
            return await self._child(unit, name)
        if isinstance(parent, RootDir):
            if name not in await self._archive.days():
                raise NotFound(f"no day {name!r}")
            return day_child(name)
        if isinstance(parent, DayDir):
            if name == BY_NAME:
                return by_name_child(parent.day)
            return shard_child(parent.day, name, await self._archive.shard(parent.day, name))
        if isinstance(parent, ByName):
            return await self._routed(parent.day, name)
        if isinstance(parent, ShardStub):
            container = await self._load(parent.ref)
            found = container.tree.lookup(parent.path, name)
            if found is None:
                raise NotFound(f"{parent.ref.key}: no {name!r} in {parent.path or '/'}")
            return tree_child(parent, container, name, found)
        raise NotADirectory(f"{name!r}: parent is not a directory")

    async def _routed(self, day: str, name: str) -> Child:
        """`.by-name/<name>`: routed to its container, only ever inside `day`, and only a
        name the shard itself shows (hidden names stay hidden here too)."""
        found = await self._archive.locate(day, name)
        node = found.container.tree.lookup("", name)
        if found.hidden is not None or not isinstance(node, FileNode):
            raise NotFound(f"no {name!r} on {day}")
        return routed_child(day, found.container, node)

    def _attr(self, ino: int, node: Node) -> Attr:
        owner = self._owner
        if isinstance(node, RootDir):
            days = self._archive.known_days()
            mtime = day_mtime_ns(days[-1]) if days else self._started_ns
            return Attr.directory(ino, mtime, owner, self._listing_ttl)
        if isinstance(node, DayDir | ByName):
            return Attr.directory(ino, day_mtime_ns(node.day), owner, self._listing_ttl)
        if isinstance(node, ShardStub):
            ttl = self._listing_ttl if node.path == "" else self._entry_ttl
            return Attr.directory(ino, container_mtime_ns(node.ref), owner, ttl)
        mtime = entry_mtime_ns(node.ref, node.entry)
        return Attr.file(ino, node.entry.size, mtime, owner, self._entry_ttl)


def _nothing(index: int) -> Child:
    raise IndexError(index)
