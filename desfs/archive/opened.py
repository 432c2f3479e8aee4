"""An opened container: its identity at open time, its parsed index and its file tree."""

from __future__ import annotations

from dataclasses import dataclass

from desfs.archive.catalog import ContainerRef
from desfs.archive.spill import SpilledTables
from desfs.format.model import ContainerIndex
from desfs.format.packed import PackedEntries
from desfs.format.table import EntryTable
from desfs.namespace.tree import ShardTree

CONTAINER_OVERHEAD = 4096  # the objects every container has, whatever its size
LISTED_ENTRY = 256  # an entry another store's opener built as an object, and its name


@dataclass(frozen=True, slots=True, eq=False)
class Container:
    """An opened container: identity at open time, parsed index, and its file tree."""

    ref: ContainerRef
    etag: str
    index: ContainerIndex
    tree: ShardTree
    tail: bytes  # the bytes of the tail read, [tail_start, index.size)
    spilled: SpilledTables | None = None  # set: tail and tables are a mapped file

    @property
    def object_id(self) -> tuple[str, str]:
        return (self.ref.key, self.etag)

    @property
    def tail_start(self) -> int:
        size = len(self.tail) if self.spilled is None else self.spilled.tail_size
        return self.index.size - size

    def memory_estimate(self) -> int:
        """Bytes this container keeps alive; the index cache's budget counts these: the
        index bytes, the entry table and the tree (a few bytes per entry each)."""
        if self.spilled is not None:
            return CONTAINER_OVERHEAD + self.tree.directory_memory()
        entries = self.index.entries
        if isinstance(entries, EntryTable | PackedEntries):
            table = entries.table_bytes
        else:
            table = LISTED_ENTRY * len(entries)
        return CONTAINER_OVERHEAD + len(self.tail) + table + self.tree.memory()
