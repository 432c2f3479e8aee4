"""What an exposed path names: the root, a day, a directory inside a shard, or a file.

Paths are the mount's `/YYYY-MM-DD/<shard>/<name>`. Inside a shard a path is resolved one
component at a time against the shard's tree, so no name can step outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from desfs.archive.opened import Container
from desfs.errors import NotADirectory, NotFound
from desfs.format.model import Entry
from desfs.namespace.tree import DirNode, FileNode


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
            return FileRef(day, container, "/".join(parts), node.entry)
        assert isinstance(node, DirNode)
        current = node.path
    return ShardDir(day, container, current)
