"""The archive: a source's catalog, container loader and entry reader, wired together.

Both the mount and the offline CLI use it, so `desfs cat` and `cat` on the mount share
every line of the read path. Paths are the exposed `/YYYY-MM-DD/<shard>/<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from desfs.cache.persistent import IndexStore
from desfs.config import ArchiveSettings
from desfs.errors import NotADirectory, NotFound
from desfs.format.model import Entry
from desfs.fs.catalog import Catalog, ContainerRef
from desfs.fs.containers import Container, ContainerLoader
from desfs.fs.reader import EntryReader
from desfs.namespace.tree import DirNode, FileNode
from desfs.storage.aio import AsyncStorage


@dataclass(frozen=True, slots=True)
class RootDir:
    pass


@dataclass(frozen=True, slots=True)
class DayDir:
    day: str


@dataclass(frozen=True, slots=True)
class ShardDir:
    """A directory inside a shard; `path` is "" for the shard directory itself."""

    day: str
    container: Container
    path: str


@dataclass(frozen=True, slots=True)
class FileRef:
    day: str
    container: Container
    path: str
    entry: Entry


Resolved = RootDir | DayDir | ShardDir | FileRef


class Archive:
    def __init__(self, storage: AsyncStorage, settings: ArchiveSettings) -> None:
        self.storage = storage
        self.settings = settings
        self.catalog = Catalog(storage, settings.layout, settings.cache)
        self.index_store = _index_store(storage, settings)
        self.loader = ContainerLoader(
            storage, settings.cache, settings.layout, store=self.index_store
        )
        self.reader = EntryReader(storage, settings.cache, settings.layout)
        self.reader.on_changed = self._changed

    def _changed(self, container: Container) -> None:
        """A container was replaced: forget its index and its day's listing, so the next
        lookup lists and opens the new object. Open files keep failing with ESTALE."""
        self.loader.forget(container)
        self.catalog.invalidate_day(container.ref.name.day)

    async def shard_ref(self, day: str, shard: str) -> ContainerRef:
        listing = await self.catalog.day(day)
        ref = listing.shards.get(shard)
        if ref is None:
            raise NotFound(f"no shard {shard!r} on {day}")
        return ref

    async def container(self, day: str, shard: str) -> Container:
        return await self.loader.load(await self.shard_ref(day, shard))

    async def resolve(self, path: str) -> Resolved:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return RootDir()
        day = parts[0]
        if day not in await self.catalog.days():
            raise NotFound(f"no day {day!r}")
        if len(parts) == 1:
            return DayDir(day)
        container = await self.container(day, parts[1])
        return resolve_in(day, container, "/".join(parts[2:]))


def _index_store(storage: AsyncStorage, settings: ArchiveSettings) -> IndexStore | None:
    """The on-disk index records of this source, when a cache directory is configured."""
    cache = settings.cache
    if cache.cache_dir is None:
        return None
    return IndexStore(cache.cache_dir / "index", cache.index_store_bytes, storage.describe())


def resolve_in(day: str, container: Container, inner: str) -> ShardDir | FileRef:
    """Resolve a path inside one shard, one component at a time."""
    current = ""
    parts = [p for p in inner.split("/") if p]
    for i, name in enumerate(parts):
        node = container.tree.lookup(current, name)
        if node is None:
            raise NotFound(f"{container.ref.key}: no {'/'.join(parts[: i + 1])!r}")
        if isinstance(node, FileNode):
            if i != len(parts) - 1:
                raise NotADirectory(f"{'/'.join(parts[: i + 1])!r} is a file")
            entry = container.index.entries[node.position]
            return FileRef(day, container, "/".join(parts), entry)
        assert isinstance(node, DirNode)
        current = node.path
    return ShardDir(day, container, current)
