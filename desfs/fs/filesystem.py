"""The filesystem model: lookup, getattr, readdir, read, xattrs and statfs, without FUSE.

It speaks inode numbers and desfs values (`Attr`, bytes); the FUSE adapter only
translates. Root and day directories change as the store gains days and containers, so
their entries carry the listing TTL; shard contents are immutable and carry the long
`entry_ttl`. A shard directory loads its container on the first operation that needs
the index (opendir, lookup inside it), never on `ls` of the day.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from desfs.errors import NotADirectory, NotFound, PartialContainer
from desfs.fs.archive import Archive, DayDir, FileRef, RootDir, ShardDir
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
from desfs.fs.catalog import ContainerRef
from desfs.fs.containers import Container
from desfs.fs.inodes import InodeTable, entry_inode, hashed_inode, shard_inode
from desfs.fs.reader import Stream
from desfs.namespace.layout import external_key
from desfs.namespace.tree import DirNode, FileNode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShardStub:
    """A shard directory as the day listing shows it; its index loads on first need."""

    day: str
    shard: str
    ref: ContainerRef


Node = RootDir | DayDir | ShardStub | ShardDir | FileRef
Identity = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    identity: Identity
    node: Node
    preferred_ino: int


@dataclass(frozen=True, slots=True)
class FsStats:
    blocks: int
    files: int
    block_size: int = 4096
    namemax: int = 255


@dataclass(slots=True)
class _Open:
    file: FileRef
    stream: Stream = field(default_factory=Stream)


class DesFilesystem:
    def __init__(
        self,
        archive: Archive,
        owner: Ownership,
        entry_ttl: float,
        stats: Callable[[], dict[str, object]],
    ) -> None:
        self.archive = archive
        self._owner = owner
        self._entry_ttl = entry_ttl
        self._listing_ttl = archive.settings.cache.listing_ttl
        self._stats = stats
        self.inodes: InodeTable[Node] = InodeTable(RootDir())
        self._dirs: dict[int, list[Child]] = {}
        self._files: dict[int, _Open] = {}
        self._handles = count(1)

    # -- names -----------------------------------------------------------------------

    async def lookup(self, parent: int, name: str) -> Attr:
        child = await self._child(self._node(parent), name)
        ino = self.remember(child)
        return await self._attr(ino, child.node)

    async def getattr(self, ino: int) -> Attr:
        return await self._attr(ino, self._node(ino))

    def attr_of(self, child: Child) -> Attr:
        """Attributes for a readdir entry, before the kernel has looked it up."""
        return self._attr_now(self.inodes.number(child.identity, child.preferred_ino), child.node)

    def remember(self, child: Child) -> int:
        return self.inodes.remember(child.identity, child.preferred_ino, child.node)

    def forget(self, ino: int, nlookup: int) -> None:
        self.inodes.forget(ino, nlookup)

    def negative_ttl(self, parent: int) -> float:
        """How long a missing name under `parent` may be cached as missing (0: not at all)."""
        node = self.inodes.get(parent)
        return self._entry_ttl if isinstance(node, ShardStub | ShardDir) else 0.0

    # -- directories -------------------------------------------------------------------

    async def opendir(self, ino: int) -> int:
        children = await self._children(self._node(ino))
        fh = next(self._handles)
        self._dirs[fh] = children
        return fh

    def readdir(self, fh: int, start: int) -> list[tuple[int, Child]]:
        """Entries from `start` on, each with the id of the entry after it."""
        children = self._dirs.get(fh, [])
        return [(i + 1, children[i]) for i in range(start, len(children))]

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # -- files -------------------------------------------------------------------------

    def open(self, ino: int) -> int:
        node = self._node(ino)
        if not isinstance(node, FileRef):
            raise NotFound(f"inode {ino} is not a file")
        fh = next(self._handles)
        self._files[fh] = _Open(node)
        return fh

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        opened = self._files.get(fh)
        if opened is None:
            raise NotFound(f"no open file handle {fh}")
        ref = opened.file
        return await self.archive.reader.read(ref.container, ref.entry, offset, size, opened.stream)

    def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    # -- xattrs and statfs ---------------------------------------------------------------

    async def getxattr(self, ino: int, name: str) -> bytes:
        return pick_xattr(await self._xattrs(self._node(ino)), name)

    async def listxattr(self, ino: int) -> list[str]:
        return sorted(await self._xattrs(self._node(ino)))

    def statfs(self) -> FsStats:
        containers = list(self.archive.loader.opened())
        total = sum(c.index.size for c in containers)
        files = sum(c.tree.file_count for c in containers)
        return FsStats(blocks=(total + 4095) // 4096, files=files + len(self.inodes))

    async def _xattrs(self, node: Node) -> dict[str, bytes]:
        if isinstance(node, RootDir):
            return {"user.des.stats": json.dumps(self._stats(), sort_keys=True).encode()}
        if isinstance(node, ShardStub):
            return shard_xattrs(await self._load(node))
        if isinstance(node, ShardDir) and node.path == "":
            return shard_xattrs(node.container)
        if isinstance(node, FileRef):
            key = external_key(
                node.container.ref.key,
                node.entry,
                node.container.ref.name.layout,
                self.archive.settings.layout.bigfiles_dir,
            )
            return file_xattrs(node.container, node.entry, key)
        return {}

    # -- internals -----------------------------------------------------------------------

    def _node(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None:
            raise NotFound(f"inode {ino} is not known (forgotten)")
        return node

    async def _load(self, stub: ShardStub) -> Container:
        try:
            return await self.archive.loader.load(stub.ref)
        except PartialContainer as exc:
            raise NotFound(f"{stub.ref.key} is still being written") from exc

    async def _children(self, node: Node) -> list[Child]:
        if isinstance(node, RootDir):
            return [_day_child(day) for day in await self.archive.catalog.days()]
        if isinstance(node, DayDir):
            listing = await self.archive.catalog.day(node.day)
            return [
                _shard_child(node.day, shard, ref)
                for shard, ref in listing.shards.items()
                if not self.archive.loader.known_partial(ref)
            ]
        if isinstance(node, ShardStub):
            return _tree_children(node.day, node.shard, await self._load(node), "")
        if isinstance(node, ShardDir):
            return _tree_children(
                node.day, node.container.ref.name.shard, node.container, node.path
            )
        raise NotADirectory(f"{node} is not a directory")

    async def _child(self, parent: Node, name: str) -> Child:
        if isinstance(parent, RootDir):
            if name not in await self.archive.catalog.days():
                raise NotFound(f"no day {name!r}")
            return _day_child(name)
        if isinstance(parent, DayDir):
            return _shard_child(parent.day, name, await self.archive.shard_ref(parent.day, name))
        if isinstance(parent, ShardStub):
            return _tree_child(parent.day, parent.shard, await self._load(parent), "", name)
        if isinstance(parent, ShardDir):
            shard = parent.container.ref.name.shard
            return _tree_child(parent.day, shard, parent.container, parent.path, name)
        raise NotADirectory(f"{name!r}: parent is not a directory")

    async def _attr(self, ino: int, node: Node) -> Attr:
        return self._attr_now(ino, node)

    def _attr_now(self, ino: int, node: Node) -> Attr:
        owner = self._owner
        if isinstance(node, RootDir):
            return Attr.directory(ino, 0, owner, self._listing_ttl)
        if isinstance(node, DayDir):
            return Attr.directory(ino, day_mtime_ns(node.day), owner, self._listing_ttl)
        if isinstance(node, ShardStub):
            return Attr.directory(ino, container_mtime_ns(node.ref), owner, self._listing_ttl)
        if isinstance(node, ShardDir):
            return Attr.directory(
                ino, container_mtime_ns(node.container.ref), owner, self._entry_ttl
            )
        mtime = entry_mtime_ns(node.container, node.entry)
        return Attr.file(ino, node.entry.size, mtime, owner, self._entry_ttl)


def _tree_children(day: str, shard: str, container: Container, path: str) -> list[Child]:
    return [
        _wrap(day, shard, container, path, name, node)
        for name, node in container.tree.listdir(path)
    ]


def _tree_child(day: str, shard: str, container: Container, path: str, name: str) -> Child:
    node = container.tree.lookup(path, name)
    if node is None:
        raise NotFound(f"{container.ref.key}: no {name!r} in {path or '/'}")
    return _wrap(day, shard, container, path, name, node)


def _day_child(day: str) -> Child:
    return Child(day, ("day", day), DayDir(day), hashed_inode("day", day))


def _shard_child(day: str, shard: str, ref: ContainerRef) -> Child:
    return Child(shard, ("shard", day, shard), ShardStub(day, shard, ref), shard_inode(day, shard))


def _wrap(
    day: str, shard: str, container: Container, path: str, name: str, node: FileNode | DirNode
) -> Child:
    full = f"{path}/{name}" if path else name
    base = shard_inode(day, shard)
    if isinstance(node, FileNode):
        entry = container.index.entries[node.position]
        ino = entry_inode(base, node.position, False)
        return Child(name, ("file", day, shard, full), FileRef(day, container, full, entry), ino)
    ino = entry_inode(base, container.tree.first_position(node), True)
    return Child(name, ("dir", day, shard, full), ShardDir(day, container, full), ino)
