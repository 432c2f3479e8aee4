"""The file tree of one shard (desfs.namespace.tree): names, duplicates, hostile names."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desfs.errors import NotADirectory, NotFound
from desfs.format.model import Entry
from desfs.namespace.tree import DirNode, FileNode, Hide, Node, ShardTree, build_tree

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"


def _entries(*names: bytes | str, deleted: frozenset[int] = frozenset()) -> list[Entry]:
    return [
        Entry(
            name=n.encode() if isinstance(n, str) else n,
            position=i,
            size=i,
            offset=0,
            stored_length=0,
            deleted=i in deleted,
        )
        for i, n in enumerate(names)
    ]


def _tree(*names: bytes | str) -> ShardTree:
    return build_tree(_entries(*names))


def _listing(tree: ShardTree, path: str | DirNode = "") -> list[str]:
    return [name for name, _ in tree.listdir(path)]


def _file(tree: ShardTree, path: str) -> FileNode:
    node = tree.resolve(path)
    assert isinstance(node, FileNode), path
    return node


def _reasons(tree: ShardTree) -> dict[bytes, Hide]:
    return {h.name: h.reason for h in tree.hidden}


def test_flat_names_keep_index_order() -> None:
    tree = _tree("zeta.txt", "alpha.txt", "mid dle.txt", "zażółć.txt")
    assert _listing(tree) == ["zeta.txt", "alpha.txt", "mid dle.txt", "zażółć.txt"]
    assert (tree.file_count, tree.dir_count, tree.hidden) == (4, 0, ())
    node = tree.lookup("", "alpha.txt")
    assert node == FileNode("alpha.txt", 1, tree.entries[1])
    assert tree.lookup("", "missing") is None


def test_slash_makes_directories_at_first_descendant_position() -> None:
    tree = _tree("top.txt", "a/b/c.txt", "x.txt", "a/d.txt", "a/b/e.txt")
    assert _listing(tree) == ["top.txt", "a", "x.txt"]
    assert _listing(tree, "a") == ["b", "d.txt"]
    assert _listing(tree, "a/b") == ["c.txt", "e.txt"]
    assert (tree.file_count, tree.dir_count) == (5, 2)
    node = tree.lookup("a", "b")
    assert isinstance(node, DirNode)
    assert node.path == "a/b"
    assert _listing(tree, node) == ["c.txt", "e.txt"]
    assert tree.lookup(node, "e.txt") == FileNode("a/b/e.txt", 4, tree.entries[4])
    assert [p for p, _ in tree.walk()] == [
        "top.txt",
        "a",
        "a/b",
        "a/b/c.txt",
        "a/b/e.txt",
        "a/d.txt",
        "x.txt",
    ]


@pytest.mark.parametrize("names", [("a", "a/b"), ("a/b", "a")])
def test_directories_win_over_files_in_either_order(names: tuple[str, str]) -> None:
    tree = _tree(*names)
    assert isinstance(tree.resolve("a"), DirNode)
    assert _file(tree, "a/b").entry.name == b"a/b"
    assert _reasons(tree) == {b"a": Hide.DIRECTORY}
    assert tree.file_count == 1
    assert tree.by_raw_name(b"a") == tree.entries[names.index("a")]


def test_directory_position_ignores_hidden_descendants() -> None:
    tree = _tree("x/a", "y", "x/a/b")
    assert _listing(tree) == ["y", "x"]
    assert _reasons(tree) == {b"x/a": Hide.DIRECTORY}
    assert tree.dir_count == 2


def test_duplicates_last_wins_first_position_kept() -> None:
    tree = _tree("a", "b", "a", "c", "a")
    assert _listing(tree) == ["a", "b", "c"]
    assert _file(tree, "a").position == 4
    assert [(h.position, h.reason) for h in tree.hidden] == [
        (0, Hide.SHADOWED),
        (2, Hide.SHADOWED),
    ]
    assert tree.by_raw_name(b"a") is tree.entries[4]
    assert tree.file_count + len(tree.hidden) == 5


def test_deleted_last_copy_hides_the_name() -> None:
    tree = build_tree(_entries("a", "b", "a", deleted=frozenset({2})))
    assert _listing(tree) == ["b"]
    assert _reasons(tree) == {b"a": Hide.DELETED}
    assert [h.reason for h in tree.hidden] == [Hide.SHADOWED, Hide.DELETED]
    assert tree.by_raw_name(b"a") is tree.entries[2]


def test_tombstoned_uids_are_hidden_but_readable_raw() -> None:
    tree = build_tree(_entries("keep", "gone", "dir/gone"), tombstoned=frozenset({"gone"}))
    assert _listing(tree) == ["keep", "dir"]
    assert _reasons(tree) == {b"gone": Hide.TOMBSTONED}
    assert tree.by_raw_name(b"gone") is tree.entries[1]
    assert tree.hidden_counts() == {Hide.TOMBSTONED: 1}


def test_entries_with_errors_are_listed() -> None:
    entries = [*_entries("ok"), Entry(b"bad", 1, 5, 0, 0, error="unknown codec 7")]
    tree = build_tree(entries)
    assert _listing(tree) == ["ok", "bad"]
    assert _file(tree, "bad").entry.error == "unknown codec 7"
    assert tree.error_count == 1


def test_no_normalisation() -> None:
    nfc, nfd = "é.txt", "e\u0301.txt"
    tree = _tree(nfc, nfd, "Case", "case", " lead", "trail ", "tab\tname", "line\nfeed")
    assert tree.file_count == 8
    assert _file(tree, nfc).position == 0
    assert _file(tree, nfd).position == 1


HOSTILE: list[tuple[bytes, Hide]] = [
    (b"../escape.txt", Hide.DOT_COMPONENT),
    (b"/abs.txt", Hide.ABSOLUTE),
    (b"a/../../x", Hide.DOT_COMPONENT),
    (b"a//b", Hide.EMPTY_COMPONENT),
    (b"./x", Hide.DOT_COMPONENT),
    (b"x/.", Hide.DOT_COMPONENT),
    (b".", Hide.DOT_COMPONENT),
    (b"..", Hide.DOT_COMPONENT),
    (b"a/", Hide.EMPTY_COMPONENT),
    (b"/", Hide.ABSOLUTE),
    (b"", Hide.EMPTY),
    (b"\x00", Hide.NUL),
    (b"ok\x00/../x", Hide.NUL),
    (b"c" * 256, Hide.TOO_LONG),
    (b"d/" + "ł".encode() * 128, Hide.TOO_LONG),
    (b"\xff", Hide.NOT_UTF8),
    (b"\xed\xa0\x80", Hide.NOT_UTF8),  # an encoded surrogate
    (b"\xc0\xaf", Hide.NOT_UTF8),  # an overlong "/"
]


def test_hostile_names_are_hidden_and_resolve_nowhere() -> None:
    names = [n for n, _ in HOSTILE] + [b"a", b"a/b", b"e" * 255, b"x"]
    tree = _tree(*names)
    assert _reasons(tree) == {**dict(HOSTILE), b"a": Hide.DIRECTORY}
    assert [p for p, _ in tree.walk()] == ["a", "a/b", "e" * 255, "x"]
    for name, _ in HOSTILE:
        assert tree.by_raw_name(name) is tree.entries[names.index(name)]
    for path in ["..", "../escape.txt", "/abs.txt", "a/..", "a/../x", "./x", "a//b", "a/", "/"]:
        assert tree.resolve(path) is None, path
    for directory in ["..", ".", "/", "a/..", "a/.", "x"]:
        for child in ["..", ".", "", "x", "a", "../x", "a/b"]:
            assert tree.lookup(directory, child) is None, (directory, child)
    with pytest.raises(NotFound):
        tree.listdir("..")
    with pytest.raises(NotFound):
        tree.listdir("/")
    with pytest.raises(NotADirectory):
        tree.listdir("x")
    assert tree.hidden_counts()[Hide.DOT_COMPONENT] == 6


def test_by_raw_name_misses() -> None:
    tree = _tree("a/b", "c")
    assert tree.by_raw_name(b"a") is None  # a directory, not an entry
    assert tree.by_raw_name(b"") is None
    assert tree.by_raw_name(b"zz") is None
    assert tree.by_raw_name(b"\xff") is None
    assert tree.by_raw_name(b"a/b") is tree.entries[0]


def test_listing_is_a_sequence() -> None:
    tree = _tree("a", "b", "c", "d")
    listing = tree.listdir(tree.root)
    assert len(listing) == 4
    assert listing[-1][0] == "d"
    assert [n for n, _ in listing[1:3]] == ["b", "c"]
    assert isinstance(listing[0][1], FileNode)
    with pytest.raises(IndexError):
        listing[4]


def test_deep_hostile_nesting_stays_linear() -> None:
    name = "a/" * 20000 + "leaf"
    tree = _tree(name)
    assert tree.dir_count == 20000
    assert _file(tree, name).position == 0
    assert sum(1 for _ in tree.walk()) == 20001


def test_empty_shard() -> None:
    tree = build_tree([])
    assert (tree.file_count, tree.dir_count, list(tree.walk())) == (0, 0, [])
    assert _listing(tree) == []


def _fixture_containers() -> list[tuple[str, list[dict[str, Any]]]]:
    containers: dict[str, list[dict[str, Any]]] = {}
    for case in sorted(FIXTURES.glob("*/*/manifest.json")):
        for file in json.loads(case.read_text())["files"]:
            containers.setdefault(f"{case.parent.name}:{file['container']}", []).append(file)
    return sorted(containers.items())


@pytest.mark.parametrize(("container", "files"), _fixture_containers())
def test_fixture_names_expose_manifest_paths(container: str, files: list[dict[str, Any]]) -> None:
    entries = [
        Entry(
            name=bytes.fromhex(f["name_utf8_hex"]),
            position=f["index_position"],
            size=f["size"],
            offset=0,
            stored_length=0,
            deleted=bool(f.get("flags", 0) & 8),
        )
        for f in files
    ]
    tombstoned = frozenset(f["name"] for f in files if f.get("tombstoned"))
    tree = build_tree(entries, tombstoned)
    hidden = {h.position: h.reason for h in tree.hidden}
    for index, file in enumerate(files):
        if not file["effective"]:
            assert hidden[index] is Hide.SHADOWED
        elif file["path"] is not None:
            shard_path = file["path"].split("/", 3)[3]
            assert _file(tree, shard_path).entry.position == file["index_position"]
        elif file.get("tombstoned"):
            assert hidden[index] is Hide.TOMBSTONED


# Pieces chosen to hit every rule: dots, empties, NUL, long components, non-ASCII.
PIECES = ["a", "b", "é", "e\u0301", ".", "..", "", "\x00", "x" * 255, "y" * 256, " "]
text_names = st.builds(
    lambda lead, parts: ("/" if lead else "") + "/".join(parts),
    st.booleans(),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=4),
).map(str.encode)
raw_names = st.binary(max_size=6).map(lambda b: b.replace(b"\x01", b"/"))
names_st = st.lists(st.one_of(text_names, raw_names), max_size=25)


def _chain_lookup(tree: ShardTree, path: str) -> Node | None:
    node: Node | None = tree.root
    for part in path.split("/"):
        if not isinstance(node, DirNode):
            return None
        node = tree.lookup(node, part)
    return node


@settings(max_examples=300, deadline=None)
@given(names=names_st, deleted=st.sets(st.integers(0, 24)), tomb=st.sets(st.sampled_from(PIECES)))
def test_any_names_stay_inside_the_shard(
    names: list[bytes], deleted: set[int], tomb: set[str]
) -> None:
    tree = build_tree(_entries(*names, deleted=frozenset(deleted)), frozenset(tomb))
    files = dirs = 0
    exposed: set[int] = set()
    for path, node in tree.walk():
        parts = path.split("/")
        assert path == node.path
        assert posixpath.normpath(path) == path
        assert not path.startswith("/")
        assert "\x00" not in path
        assert all(p not in ("", ".", "..") and len(p.encode()) <= 255 for p in parts)
        assert _chain_lookup(tree, path) == node
        assert tree.resolve(path) == node
        if isinstance(node, FileNode):
            files += 1
            exposed.add(node.position)
            assert node.entry.name == path.encode()
            assert not node.entry.deleted
            assert path not in tomb
        else:
            dirs += 1
            assert len(tree.listdir(node)) > 0
    hidden = [h.position for h in tree.hidden]
    shadowed = sum(1 for h in tree.hidden if h.reason is Hide.SHADOWED)
    assert (files, dirs) == (tree.file_count, tree.dir_count)
    assert sorted(exposed | set(hidden)) == list(range(len(names)))
    assert len(exposed) + len(hidden) == len(names)
    assert shadowed == len(names) - len(set(names))
    for name in set(names):
        last = max(i for i, n in enumerate(names) if n == name)
        assert tree.by_raw_name(name) is tree.entries[last]
