"""The file tree of one shard: which entry names become which paths, and which are hidden.

design-brief §1 "Names", "Duplicates", "Tombstones". A tree is built once from a
container's entries and never changes. Every exposed path is made only of components
that were checked to be non-empty, not "." or "..", free of NUL and "/", and at most
255 bytes, and every lookup is an exact dictionary match on such a component, so no
name can resolve outside its shard.

Directories are kept as ids into flat tables (not keyed by their full path), so a
hostile name with thousands of components costs memory linear in its length.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias, overload

from desfs.errors import NotADirectory, NotFound
from desfs.format.model import Entry

NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)


class Hide(StrEnum):
    """Why a name is not exposed (shown by `desfs ls --all` and counted)."""

    NOT_UTF8 = "not valid UTF-8"
    DELETED = "deleted (flag bit 3)"
    TOMBSTONED = "tombstoned"
    EMPTY = "empty name"
    NUL = "contains NUL"
    ABSOLUTE = "leading '/'"
    EMPTY_COMPONENT = "empty path component"
    DOT_COMPONENT = "'.' or '..' component"
    TOO_LONG = "component over 255 bytes"
    DIRECTORY = "collides with a directory"
    SHADOWED = "shadowed by a later entry"


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


# A child code is an entry index (>= 0) or ~dir_id (< 0) for a directory.
_Kids: TypeAlias = dict[str, int]
_Trie: TypeAlias = dict[str, "_Trie"]


class _Listing(Sequence[tuple[str, Node]]):
    """One directory's children in index order, each node made when it is asked for."""

    __slots__ = ("_base", "_kids", "_names", "_tree")

    def __init__(self, tree: ShardTree, base: str, kids: _Kids, names: tuple[str, ...]) -> None:
        self._tree = tree
        self._base = base
        self._kids = kids
        self._names = names

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, item: int) -> tuple[str, Node]: ...
    @overload
    def __getitem__(self, item: slice) -> Sequence[tuple[str, Node]]: ...
    def __getitem__(self, item: int | slice) -> tuple[str, Node] | Sequence[tuple[str, Node]]:
        if isinstance(item, slice):
            return _Listing(self._tree, self._base, self._kids, self._names[item])
        name = self._names[item]
        return name, self._tree._node(self._base, name, self._kids[name])


class ShardTree:
    """The exposed files and directories of one shard, and its hidden names.

    Built by `build_tree`; nothing changes it afterwards.
    """

    __slots__ = ("_by_hidden_name", "_entries", "_errors", "_hidden", "_kids", "_order")

    def __init__(
        self, entries: tuple[Entry, ...], kids: list[_Kids], hidden: tuple[HiddenName, ...]
    ) -> None:
        self._entries = entries
        self._kids = kids
        self._order = [tuple(k) for k in kids]  # dicts keep insertion (index) order
        self._hidden = hidden
        self._by_hidden_name = {h.name: h.position for h in hidden if h.reason is not Hide.SHADOWED}
        gone = {h.position for h in hidden}
        self._errors = sum(1 for i, e in enumerate(entries) if e.error and i not in gone)

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry of the container in index order, hidden ones included."""
        return self._entries

    @property
    def hidden(self) -> tuple[HiddenName, ...]:
        """Every entry that is not exposed, in index order, with the reason."""
        return self._hidden

    @property
    def file_count(self) -> int:
        return len(self._entries) - len(self._hidden)

    @property
    def dir_count(self) -> int:
        """Directories made by names with "/"; the shard root is not counted."""
        return len(self._kids) - 1

    @property
    def error_count(self) -> int:
        """Exposed files that are listed but unreadable (Entry.error)."""
        return self._errors

    @property
    def root(self) -> DirNode:
        return DirNode("", 0)

    def hidden_counts(self) -> dict[Hide, int]:
        return dict(Counter(h.reason for h in self._hidden))

    def _dir_id(self, directory: str | DirNode) -> int | None:
        if isinstance(directory, DirNode):
            return directory.id if 0 <= directory.id < len(self._kids) else None
        current = 0
        if directory == "":
            return current
        for part in directory.split("/"):
            code = self._kids[current].get(part)
            if code is None or code >= 0:
                return None
            current = ~code
        return current

    def _node(self, base: str, name: str, code: int) -> Node:
        """The node for child code `code` (see `_Kids`) named `name` in directory `base`."""
        path = f"{base}/{name}" if base else name
        if code >= 0:
            return FileNode(path, code, self._entries[code])
        return DirNode(path, ~code)

    def lookup(self, directory: str | DirNode, name: str) -> Node | None:
        """The child `name` of a directory (its path or node); None when there is none."""
        dir_id = self._dir_id(directory)
        if dir_id is None:
            return None
        code = self._kids[dir_id].get(name)
        if code is None:
            return None
        return self._node(_path_of(directory), name, code)

    def resolve(self, path: str) -> Node | None:
        """A whole path inside the shard ("" is the root); no normalisation is applied."""
        if path == "":
            return self.root
        base, _, name = path.rpartition("/")
        return self.lookup(base, name)

    def listdir(self, directory: str | DirNode) -> Sequence[tuple[str, Node]]:
        """The children in index order; raises NotFound or NotADirectory."""
        dir_id = self._dir_id(directory)
        path = _path_of(directory)
        if dir_id is None:
            if isinstance(self.resolve(path), FileNode):
                raise NotADirectory(f"not a directory in the shard: {path!r}")
            raise NotFound(f"no such directory in the shard: {path!r}")
        return _Listing(self, path, self._kids[dir_id], self._order[dir_id])

    def first_position(self, directory: DirNode) -> int:
        """The index position of the directory's first file, depth first (0 if empty)."""
        dir_id = directory.id
        while self._order[dir_id]:
            code = self._kids[dir_id][self._order[dir_id][0]]
            if code >= 0:
                return code
            dir_id = ~code
        return 0

    def walk(self) -> Iterator[tuple[str, Node]]:
        """Every path below the root, depth first, in listing order."""
        stack: list[tuple[int, str, Iterator[str]]] = [(0, "", iter(self._order[0]))]
        while stack:
            dir_id, base, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            node = self._node(base, name, self._kids[dir_id][name])
            yield node.path, node
            if isinstance(node, DirNode):
                stack.append((node.id, node.path, iter(self._order[node.id])))

    def by_raw_name(self, name: bytes) -> Entry | None:
        """The winning entry for a raw name, exposed or hidden (`desfs cat --raw`)."""
        index = self._by_hidden_name.get(name)
        if index is not None:
            return self._entries[index]
        try:
            node = self.resolve(name.decode("utf-8")) if name else None
        except UnicodeDecodeError:
            return None
        return node.entry if isinstance(node, FileNode) else None


def _path_of(directory: str | DirNode) -> str:
    return directory.path if isinstance(directory, DirNode) else directory


def _winners(entries: tuple[Entry, ...]) -> tuple[list[int], list[HiddenName]]:
    """Last entry of each name wins; the list keeps each name's first position."""
    last: dict[bytes, int] = {}
    for index, entry in enumerate(entries):
        last[entry.name] = index  # re-assigning keeps the first insertion's order
    shadowed = [
        HiddenName(e.name, i, Hide.SHADOWED) for i, e in enumerate(entries) if last[e.name] != i
    ]
    return list(last.values()), shadowed


def _components(entry: Entry, tombstoned: frozenset[str]) -> list[str] | Hide:
    """The path components of an entry's name, or why the name is hidden."""
    try:
        text = entry.name.decode("utf-8")  # strict: surrogates and overlongs fail too
    except UnicodeDecodeError:
        return Hide.NOT_UTF8
    if entry.deleted:
        return Hide.DELETED
    if text in tombstoned:
        return Hide.TOMBSTONED
    if not text:
        return Hide.EMPTY
    if "\x00" in text:
        return Hide.NUL
    if text.startswith("/"):
        return Hide.ABSOLUTE
    parts = text.split("/")
    for part in parts:
        if not part:
            return Hide.EMPTY_COMPONENT
        if part in (".", ".."):
            return Hide.DOT_COMPONENT
        if len(part.encode("utf-8")) > NAME_MAX:
            return Hide.TOO_LONG
    return parts


def _directory_trie(candidates: list[tuple[int, list[str]]]) -> _Trie:
    """Every directory the candidate names create; a file at one of these is hidden."""
    trie: _Trie = {}
    for _, parts in candidates:
        node = trie
        for part in parts[:-1]:
            node = node.setdefault(part, {})
    return trie


def _is_directory(trie: _Trie, parts: list[str]) -> bool:
    node: _Trie | None = trie
    for part in parts:
        node = node.get(part) if node is not None else None
    return node is not None


def _insert(kids: list[_Kids], parts: list[str], index: int) -> None:
    current = 0
    for part in parts[:-1]:
        code = kids[current].get(part)
        if code is None:
            code = ~len(kids)
            kids[current][part] = code
            kids.append({})
        current = ~code
    kids[current][parts[-1]] = index


def build_tree(entries: Sequence[Entry], tombstoned: frozenset[str] = frozenset()) -> ShardTree:
    """Build the tree of one shard from its entries in index order."""
    frozen = tuple(entries)
    winners, hidden = _winners(frozen)
    candidates: list[tuple[int, list[str]]] = []
    for index in winners:
        entry = frozen[index]
        parts = _components(entry, tombstoned)
        if isinstance(parts, Hide):
            hidden.append(HiddenName(entry.name, index, parts))
        else:
            candidates.append((index, parts))
    trie = _directory_trie(candidates)
    kids: list[_Kids] = [{}]
    for index, parts in candidates:
        if _is_directory(trie, parts):
            entry = frozen[index]
            hidden.append(HiddenName(entry.name, index, Hide.DIRECTORY))
        else:
            _insert(kids, parts, index)
    hidden.sort(key=lambda h: h.position)
    return ShardTree(frozen, kids, tuple(hidden))
