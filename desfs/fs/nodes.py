"""The nodes the inode table holds, and how the children of a directory become nodes.

A node never holds a parsed container, only its listing reference (`ContainerRef`):
the kernel may keep an entry for hours, and if that entry held the container, the index
cache's byte budget would not bound anything. A file node keeps its index `Entry`, which
is all `stat` needs; reading or listing loads the container again if it was evicted.
"""

from __future__ import annotations

from dataclasses import dataclass

from desfs.archive.catalog import ContainerRef
from desfs.archive.opened import Container
from desfs.archive.paths import DayDir, RootDir
from desfs.format.model import Entry
from desfs.fs.inodes import entry_inode, hashed_inode, shard_inode
from desfs.namespace.tree import DirNode, FileNode


@dataclass(frozen=True, slots=True)
class ShardStub:
    """A directory of a shard ("" is the shard directory itself); loads its index on need."""

    day: str
    shard: str
    ref: ContainerRef
    path: str = ""


@dataclass(frozen=True, slots=True)
class FileStub:
    """A file of a shard: its index entry and the container that holds it."""

    day: str
    shard: str
    ref: ContainerRef
    path: str
    entry: Entry


@dataclass(frozen=True, slots=True)
class ByName:
    """`/<day>/.by-name`: a day's files by name alone, found by routing, never listed."""

    day: str


BY_NAME = ".by-name"

Node = RootDir | DayDir | ShardStub | FileStub | ByName
Identity = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    identity: Identity
    node: Node
    preferred_ino: int


def day_child(day: str) -> Child:
    return Child(day, ("day", day), DayDir(day), hashed_inode("day", day))


def shard_child(day: str, shard: str, ref: ContainerRef) -> Child:
    return Child(shard, ("shard", day, shard), ShardStub(day, shard, ref), shard_inode(day, shard))


def tree_child(
    parent: ShardStub, container: Container, name: str, node: FileNode | DirNode
) -> Child:
    """The child `name` (`node` in the container's tree) of the shard directory `parent`."""
    day, shard = parent.day, parent.shard
    base = shard_inode(day, shard)
    if isinstance(node, FileNode):
        ino = entry_inode(base, node.position, False)
        stub = FileStub(day, shard, parent.ref, node.path, node.entry)
        return Child(name, ("file", day, shard, node.path), stub, ino)
    ino = entry_inode(base, container.tree.first_position(node), True)
    dir_stub = ShardStub(day, shard, parent.ref, node.path)
    return Child(name, ("dir", day, shard, node.path), dir_stub, ino)


def by_name_child(day: str) -> Child:
    return Child(BY_NAME, ("by-name", day), ByName(day), hashed_inode("by-name", day))


def routed_child(day: str, container: Container, node: FileNode) -> Child:
    """A file of `.by-name`: the same node, and inode, as at its path in its shard."""
    shard = container.ref.name.shard
    stub = ShardStub(day, shard, container.ref)
    return tree_child(stub, container, node.path, node)


def name_of(node: Node) -> str:
    """The node's name in its parent directory ("" for the root)."""
    if isinstance(node, ByName):
        return BY_NAME
    if isinstance(node, DayDir):
        return node.day
    if isinstance(node, ShardStub) and node.path == "":
        return node.shard
    if isinstance(node, ShardStub | FileStub):
        return node.path.rpartition("/")[2]
    return ""
