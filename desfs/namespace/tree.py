"""The file tree of one shard: which entry names become which paths, and which are hidden.

design-brief §1 "Names", "Duplicates", "Tombstones". A tree is built once from a
container's entries and never changes. Every exposed path is made only of components
that passed `names.check_path`, and every lookup is an exact match on such a path, so no
name can resolve outside its shard.

Memory is a few bytes per entry, not an object per entry: names are read from the index
bytes (`format.table.EntryTable`) when needed; an open-addressing table of positions,
keyed by the raw name, finds a name; a byte per entry records why it is hidden; and one
array per directory lists its children in index order. Directories, usually far fewer
than files, are ordinary dicts. A hostile name with thousands of components costs
memory linear in its length.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias, overload

from desfs.errors import NotADirectory, NotFound
from desfs.format.model import Entry
from desfs.format.packed import PackedEntries
from desfs.format.table import EntryTable
from desfs.namespace.names import Hide, check_path

__all__ = ["DirNode", "FileNode", "HiddenName", "Hide", "Node", "ShardTree", "build_tree"]


@dataclass(frozen=True, slots=True)
class FileNode:
    path: str
    position: int  # index into ShardTree.entries (the container's index order)
    entry: Entry  # entry.error set: listed, but reading it gives EIO


@dataclass(frozen=True, slots=True)
class DirNode:
    path: str  # "" is the shard root
    id: int


Node: TypeAlias = FileNode | DirNode


@dataclass(frozen=True, slots=True)
class HiddenName:
    name: bytes  # raw, as stored
    position: int  # index into ShardTree.entries
    reason: Hide


class _Names:
    """Raw names and deletion marks, from an EntryTable (or PackedEntries) without
    building entries."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.name: Callable[[int], bytes]
        self.deleted: Callable[[int], bool] | None  # None: no entry can be marked
        self.all: Callable[[], Iterable[bytes]]
        if isinstance(entries, EntryTable):
            self.name, self.all = entries.name, entries.names
            self.deleted = entries.deleted if entries.has_deletions else None
        elif isinstance(entries, PackedEntries):  # other stores: no deletion marks
            self.name, self.all, self.deleted = entries.name, entries.names, None
        else:
            self.name = lambda i: entries[i].name
            self.all = lambda: (e.name for e in entries)
            self.deleted = lambda i: entries[i].deleted


class _Positions:
    """Raw name -> index position, open addressing over an array (position + 1; 0 empty)."""

    def __init__(self, count: int, name: Callable[[int], bytes]) -> None:
        size = 8
        while size < 2 * count:
            size *= 2
        self._mask = size - 1
        kind = "I" if count < 2**32 - 1 else "Q"
        self._slots = array(kind, bytes(size * array(kind).itemsize))
        self._name = name

    def put(self, raw: bytes, position: int) -> int | None:
        """Record `position` for `raw`; the position it replaces, if any."""
        slots, mask, at = self._slots, self._mask, hash(raw) & self._mask
        while slots[at]:
            old = slots[at] - 1
            if self._name(old) == raw:
                slots[at] = position + 1
                return old
            at = (at + 1) & mask
        slots[at] = position + 1
        return None

    def get(self, raw: bytes) -> int | None:
        slots, mask, at = self._slots, self._mask, hash(raw) & self._mask
        while slots[at]:
            old = slots[at] - 1
            if self._name(old) == raw:
                return old
            at = (at + 1) & mask
        return None

    @property
    def nbytes(self) -> int:
        return self._slots.itemsize * len(self._slots)

    @property
    def slots(self) -> Sequence[int]:
        return self._slots

    def relocated(self, slots: Sequence[int], name: Callable[[int], bytes]) -> _Positions:
        moved = _Positions.__new__(_Positions)
        moved._mask, moved._slots, moved._name = self._mask, slots, name  # type: ignore[assignment]
        return moved


class _Listing(Sequence[tuple[str, Node]]):
    """One directory's children in index order, each node made when it is asked for."""

    __slots__ = ("_base", "_codes", "_tree")

    def __init__(self, tree: ShardTree, base: str, codes: Sequence[int]) -> None:
        self._tree = tree
        self._base = base
        self._codes = codes

    def __len__(self) -> int:
        return len(self._codes)

    @overload
    def __getitem__(self, item: int) -> tuple[str, Node]: ...
    @overload
    def __getitem__(self, item: slice) -> Sequence[tuple[str, Node]]: ...
    def __getitem__(self, item: int | slice) -> tuple[str, Node] | Sequence[tuple[str, Node]]:
        if isinstance(item, slice):
            return _Listing(self._tree, self._base, self._codes[item])
        node = self._tree._node(self._codes[item])
        return node.path.rpartition("/")[2], node


class ShardTree:
    """The exposed files and directories of one shard, and its hidden names.

    Built by `build_tree`; nothing changes it afterwards.
    """

    __slots__ = (
        "_children",
        "_dir_first",
        "_dir_of",
        "_dirs",
        "_entries",
        "_hidden",
        "_hide",
        "_names",
        "_positions",
        "_shown_hidden",
        "_winner",
    )

    def __init__(self, entries: Sequence[Entry]) -> None:
        self._entries = entries
        self._names = _Names(entries)
        self._positions = _Positions(len(entries), self._names.name)
        self._hide = bytearray(len(entries))  # a Hide per entry, 0 when exposed
        self._winner: dict[int, int] = {}  # first position of a repeated name -> the last
        # Directories by (parent id, component), so memory stays linear in the names even
        # for a hostile name of thousands of components; id 0 is the shard root.
        self._dirs: dict[tuple[int, str], int] = {}
        self._dir_of: list[tuple[int, str]] = [(0, "")]  # id -> (parent id, component)
        self._dir_first: array[int] = array("q", [0])
        self._children: list[array[int]] = [array("q")]  # >= 0: position; < 0: ~dir id
        self._hidden: int = 0
        self._shown_hidden: tuple[HiddenName, ...] | None = None

    @property
    def entries(self) -> Sequence[Entry]:
        """Every entry of the container in index order, hidden ones included."""
        return self._entries

    @property
    def hidden(self) -> tuple[HiddenName, ...]:
        """Every entry that is not exposed, in index order, with the reason."""
        if self._shown_hidden is None:
            name = self._names.name
            self._shown_hidden = tuple(
                HiddenName(name(i), i, Hide(code)) for i, code in enumerate(self._hide) if code
            )
        return self._shown_hidden

    @property
    def hidden_count(self) -> int:
        return self._hidden

    @property
    def file_count(self) -> int:
        return len(self._entries) - self._hidden

    @property
    def dir_count(self) -> int:
        """Directories made by names with "/"; the shard root is not counted."""
        return len(self._dir_of) - 1

    @property
    def error_count(self) -> int:
        """Exposed files that are listed but unreadable (builds every entry: slow)."""
        return sum(1 for i, e in enumerate(self._entries) if e.error and not self._hide[i])

    @property
    def root(self) -> DirNode:
        return DirNode("", 0)

    def memory(self) -> int:
        """Bytes the tree keeps beyond the index bytes (the index cache counts them)."""
        children = sum(a.itemsize * len(a) for a in self._children)
        return self._positions.nbytes + len(self._hide) + children + self.directory_memory()

    def directory_memory(self) -> int:
        """Bytes of the per-directory part alone (what stays in memory when spilled)."""
        per_dir = 200  # the dict slot, the key tuple, the name and the children array
        dirs = sum(len(name) for _, name in self._dir_of) + per_dir * len(self._dir_of)
        return dirs + 64 * len(self._winner)

    def bulk(self) -> tuple[Sequence[int], bytes | bytearray, array[int], array[int]]:
        """The per-entry tables, to move them elsewhere: name slots, hide codes, every
        directory's children end to end, and where each directory's children start."""
        joined, bounds = array("q"), array("q", [0])
        for children in self._children:
            joined.extend(children)
            bounds.append(len(joined))
        return self._positions.slots, self._hide, joined, bounds

    def relocated(
        self,
        entries: Sequence[Entry],
        slots: Sequence[int],
        hide: Sequence[int],
        children: Sequence[int],
        bounds: array[int],
    ) -> ShardTree:
        """The same tree over other storage holding the tables of `bulk`."""
        moved = ShardTree.__new__(ShardTree)
        moved._entries = entries
        moved._names = _Names(entries)
        moved._positions = self._positions.relocated(slots, moved._names.name)
        moved._hide = hide  # type: ignore[assignment]
        moved._winner, moved._dirs, moved._dir_of = self._winner, self._dirs, self._dir_of
        moved._dir_first, moved._hidden = self._dir_first, self._hidden
        moved._shown_hidden = self._shown_hidden
        moved._children = [
            children[bounds[i] : bounds[i + 1]]  # type: ignore[misc]
            for i in range(len(bounds) - 1)
        ]
        return moved

    def hidden_counts(self) -> dict[Hide, int]:
        return dict(Counter(h.reason for h in self.hidden))

    def lookup(self, directory: str | DirNode, name: str) -> Node | None:
        """The child `name` of a directory (its path or node); None when there is none."""
        dir_id = self._dir_id(directory)
        if dir_id is None or not name or "/" in name:
            return None
        base = directory.path if isinstance(directory, DirNode) else directory
        path = f"{base}/{name}" if base else name
        found = self._dirs.get((dir_id, name))
        if found is not None:
            return DirNode(path, found)
        try:
            raw = path.encode("utf-8")
        except UnicodeEncodeError:
            return None
        position = self._positions.get(raw)
        if position is None or self._hide[position]:
            return None
        return FileNode(path, position, self._entries[position])

    def resolve(self, path: str) -> Node | None:
        """A whole path inside the shard ("" is the root); no normalisation is applied."""
        if path == "":
            return self.root
        base, _, name = path.rpartition("/")
        return self.lookup(base, name)

    def listdir(self, directory: str | DirNode) -> Sequence[tuple[str, Node]]:
        """The children in index order; raises NotFound or NotADirectory."""
        dir_id = self._dir_id(directory)
        path = directory.path if isinstance(directory, DirNode) else directory
        if dir_id is None:
            if isinstance(self.resolve(path), FileNode):
                raise NotADirectory(f"not a directory in the shard: {path!r}")
            raise NotFound(f"no such directory in the shard: {path!r}")
        return _Listing(self, path, self._children[dir_id])

    def first_position(self, directory: DirNode) -> int:
        """The index position of the directory's first file, depth first (0 if empty)."""
        dir_id = self._dir_id(directory)
        return 0 if dir_id is None else self._dir_first[dir_id]

    def walk(self) -> Iterator[tuple[str, Node]]:
        """Every path below the root, depth first, in listing order."""
        stack: list[Iterator[int]] = [iter(self._children[0])]
        while stack:
            code = next(stack[-1], None)
            if code is None:
                stack.pop()
                continue
            node = self._node(code)
            yield node.path, node
            if isinstance(node, DirNode):
                stack.append(iter(self._children[node.id]))

    def by_raw_name(self, name: bytes) -> Entry | None:
        """The winning entry for a raw name, exposed or hidden (`desfs cat --name`)."""
        position = self._positions.get(name)
        return None if position is None else self._entries[position]

    def why_hidden(self, position: int) -> Hide | None:
        """Why the entry at `position` is not exposed; None when it is."""
        code = self._hide[position]
        return Hide(code) if code else None

    def _dir_id(self, directory: str | DirNode) -> int | None:
        if isinstance(directory, DirNode):
            found = directory.id
            ok = 0 <= found < len(self._dir_of) and self._dir_path(found) == directory.path
            return found if ok else None
        current = 0
        if directory:
            for part in directory.split("/"):
                child = self._dirs.get((current, part))
                if child is None:
                    return None
                current = child
        return current

    def _dir_path(self, dir_id: int) -> str:
        parts = []
        while dir_id:
            dir_id, name = self._dir_of[dir_id]
            parts.append(name)
        return "/".join(reversed(parts))

    def _node(self, code: int) -> Node:
        if code < 0:
            return DirNode(self._dir_path(~code), ~code)
        raw = self._names.name(code)
        return FileNode(raw.decode("utf-8"), code, self._entries[code])


def build_tree(entries: Sequence[Entry], tombstoned: frozenset[str] = frozenset()) -> ShardTree:
    """Build the tree of one shard from its entries in index order."""
    tree = ShardTree(entries)
    _Builder(tree, tombstoned).run()
    return tree


class _Builder:
    """Builds a tree: duplicates first, then every winning name in first-seen order.

    One pass suffices unless a name turns out to be a directory of a file already shown
    (`a` then `a/b`): directories win, and a directory is listed where its first shown
    file is, so the tree is then built again in two passes, directories first.
    """

    def __init__(self, tree: ShardTree, tombstoned: frozenset[str]) -> None:
        self._tree = tree
        self._tombstoned = tombstoned
        self._name = tree._names.name
        self._deleted = tree._names.deleted
        self._attached = bytearray(1)  # per directory: listed in its parent yet?
        self._attached[0] = 1
        self._shown = bytearray(len(tree._entries))

    def run(self) -> None:
        winners = self._duplicates()
        if all(self._add(position, raw, None) for position, raw in winners):
            return
        self._reset()
        directories: set[tuple[int, str]] = set()
        for position, raw in self._winners_again():
            text = self._text(raw, position) if b"/" in raw else None
            if isinstance(text, str):
                self._make_dirs(text.split("/")[:-1], directories)
        for position, raw in self._winners_again():
            self._add(position, raw, directories)

    def _duplicates(self) -> Iterable[tuple[int, bytes]]:
        """The last entry of each name wins; winners come in their name's first position."""
        tree = self._tree
        first_of: dict[int, int] = {}  # the current winner of a repeated name -> its first
        put = tree._positions.put
        for position, raw in enumerate(tree._names.all()):
            replaced = put(raw, position)
            if replaced is not None:
                tree._hide[replaced] = Hide.SHADOWED
                tree._hidden += 1
                first = first_of.pop(replaced, replaced)
                first_of[position] = first
                tree._winner[first] = position
        return self._winners_again()

    def _winners_again(self) -> Iterator[tuple[int, bytes]]:
        tree = self._tree
        if not tree._winner:
            yield from enumerate(tree._names.all())
            return
        repeated = set(tree._winner.values())
        for position, raw in enumerate(tree._names.all()):
            if position in tree._winner:
                winner = tree._winner[position]
                yield winner, self._name(winner)
            elif position not in repeated and tree._hide[position] != Hide.SHADOWED:
                yield position, raw

    def _reset(self) -> None:
        tree = self._tree
        for position, code in enumerate(tree._hide):
            if code and code != Hide.SHADOWED:
                tree._hide[position] = 0
                tree._hidden -= 1
        tree._dirs.clear()
        del tree._dir_of[1:], tree._dir_first[1:], tree._children[1:]
        tree._children[0] = array("q")
        self._attached = bytearray(1)
        self._attached[0] = 1
        self._shown = bytearray(len(tree._entries))

    def _text(self, raw: bytes, position: int) -> str | Hide:
        """The path of a winning entry, or why it is hidden."""
        try:
            text = raw.decode("utf-8")  # strict: surrogates and overlongs fail too
        except UnicodeDecodeError:
            return Hide.NOT_UTF8
        if self._deleted is not None and self._deleted(position):
            return Hide.DELETED
        if self._tombstoned and text in self._tombstoned:
            return Hide.TOMBSTONED
        return check_path(text) or text

    def _make_dirs(self, parts: list[str], known: set[tuple[int, str]] | None) -> int | None:
        """The id of the directory `parts` (made, with its parents, if new); None when a
        new directory has the path of a file already shown (one pass is not enough)."""
        tree, parent = self._tree, 0
        for depth, part in enumerate(parts):
            found = tree._dirs.get((parent, part))
            if found is None:
                if known is None and self._shown_at("/".join(parts[: depth + 1])):
                    return None
                found = len(tree._dir_of)
                tree._dirs[(parent, part)] = found
                tree._dir_of.append((parent, part))
                tree._dir_first.append(0)
                tree._children.append(array("q"))
                self._attached.append(0)
                if known is not None:
                    known.add((parent, part))
            parent = found
        return parent

    def _shown_at(self, path: str) -> bool:
        position = self._tree._positions.get(path.encode("utf-8"))
        return position is not None and bool(self._shown[position])

    def _add(self, position: int, raw: bytes, directories: set[tuple[int, str]] | None) -> bool:
        """Show or hide one winning entry; False when the single pass must start over."""
        tree = self._tree
        text = self._text(raw, position)
        parent = 0
        if isinstance(text, str) and "/" in text:
            parts = text.split("/")
            found = self._make_dirs(parts[:-1], None if directories is None else directories)
            if found is None:
                return False
            parent = found
            if (parent, parts[-1]) in tree._dirs:
                text = Hide.DIRECTORY
        elif isinstance(text, str) and (0, text) in tree._dirs:
            text = Hide.DIRECTORY
        if isinstance(text, Hide):
            tree._hide[position] = text
            tree._hidden += 1
            return True
        self._attach(parent, position)
        tree._children[parent].append(position)
        self._shown[position] = 1
        return True

    def _attach(self, dir_id: int, position: int) -> None:
        """List `dir_id` and its unlisted parents, where their first shown file is."""
        tree, pending = self._tree, []
        while not self._attached[dir_id]:
            pending.append(dir_id)
            dir_id = tree._dir_of[dir_id][0]
        for new in reversed(pending):
            self._attached[new] = 1
            tree._dir_first[new] = position
            tree._children[tree._dir_of[new][0]].append(~new)
