"""The inode table's limit: which nodes it names for release, and its bookkeeping."""

from __future__ import annotations

from desfs.fs.inodes import COLD_EPOCHS, EPOCH_BITS, ROOT_INODE, InodeTable


def remember(table: InodeTable[str], path: str, parent: int, directory: bool = False) -> int:
    return table.remember(("n", path), hash(path) & 0xFFFFFFFF, path, parent, directory)


def fill(table: InodeTable[str], parent: int, prefix: str, count: int) -> list[int]:
    return [remember(table, f"{prefix}/f{i}", parent) for i in range(count)]


def test_forget_removes_a_node_once_the_kernel_count_reaches_zero() -> None:
    table: InodeTable[str] = InodeTable("root", limit=100)
    ino = remember(table, "a", ROOT_INODE)
    assert remember(table, "a", ROOT_INODE) == ino
    table.forget(ino, 1)
    assert table.get(ino) == "a"
    table.forget(ino, 1)
    assert table.get(ino) is None
    assert len(table) == 1


def test_under_the_limit_nothing_is_released() -> None:
    table: InodeTable[str] = InodeTable("root", limit=100)
    fill(table, ROOT_INODE, "d", 99)
    assert not table.over_limit()
    assert table.surplus(10) == []


def test_a_cold_directory_is_released_whole() -> None:
    later = (COLD_EPOCHS + 2) << EPOCH_BITS
    nodes = 1 + 1 + 100 + 1 + later
    table: InodeTable[str] = InodeTable("root", limit=nodes - 101)
    cold = remember(table, "cold", ROOT_INODE, directory=True)
    fill(table, cold, "cold", 100)
    hot = remember(table, "hot", ROOT_INODE, directory=True)
    fill(table, hot, "hot", later)
    # One invalidation, counted as the directory and its 100 files: back at the limit.
    released = table.surplus(10)
    assert [(r.node, r.parent) for r in released] == [("cold", ROOT_INODE)]
    assert not table.over_limit()


def test_without_a_cold_directory_the_oldest_files_go_first() -> None:
    table: InodeTable[str] = InodeTable("root", limit=10)
    folder = remember(table, "d", ROOT_INODE, directory=True)
    files = fill(table, folder, "d", 15)
    released = table.surplus(100)
    assert [r.ino for r in released] == files[:7]  # 17 nodes with the root and "d"
    assert not table.over_limit()


def test_forgets_after_a_release_keep_the_count_exact() -> None:
    table: InodeTable[str] = InodeTable("root", limit=50)
    folders = [remember(table, f"d{n}", ROOT_INODE, directory=True) for n in range(4)]
    files = {folder: fill(table, folder, f"d{folder}", 100) for folder in folders}
    for _ in range(COLD_EPOCHS + 2):
        fill(table, folders[-1], "late", 1 << EPOCH_BITS)
    released = table.surplus(100)
    assert released and all(r.node.startswith("d") for r in released)
    for item in released:  # the kernel drops each released subtree: children first
        for ino in files.get(item.ino, []):
            table.forget(ino, 1)
        table.forget(item.ino, 1)
    assert all(table.get(r.ino) is None for r in released)
    # Nothing is counted as going any more: over the limit means over the limit.
    assert table.over_limit() == (len(table) > 50)


def test_a_release_the_kernel_could_not_do_is_retried() -> None:
    table: InodeTable[str] = InodeTable("root", limit=2)
    first, second = fill(table, ROOT_INODE, "x", 2)
    assert [r.ino for r in table.surplus(10)] == [first]
    assert table.surplus(10) == []
    table.unrelease(first)
    assert [r.ino for r in table.surplus(10)] == [second]


def test_a_looked_up_node_is_no_longer_released() -> None:
    table: InodeTable[str] = InodeTable("root", limit=2)
    first, _ = fill(table, ROOT_INODE, "x", 2)
    assert [r.ino for r in table.surplus(10)] == [first]
    remember(table, "x/f0", ROOT_INODE)
    assert table.over_limit()


def test_crowded_is_a_quarter_over_the_limit() -> None:
    table: InodeTable[str] = InodeTable("root", limit=8)
    fill(table, ROOT_INODE, "x", 9)
    assert table.over_limit() and not table.crowded()
    fill(table, ROOT_INODE, "y", 1)
    assert table.crowded()
