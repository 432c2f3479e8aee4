"""PackedEntries: the other stores' entries, a few bytes each, built on access."""

from __future__ import annotations

import pytest

from desfs.format.model import Codec, Elsewhere, Entry
from desfs.format.packed import PackedEntries


def test_entries_are_built_as_appended() -> None:
    place = Elsewhere("data_000001.s4db", None, 0)
    table = PackedEntries([None, place])
    table.append(b"a/b", 3, 100, 20, Codec.S4_RECORD, 1)
    table.append(b"", 0, 0, 0, error="bad header")
    table.append(b"\xff\x00", 7, 9, 7)
    assert len(table) == 3
    assert table[0] == Entry(b"a/b", 0, 3, 100, 20, Codec.S4_RECORD, elsewhere=place)
    assert table[1] == Entry(b"", 1, 0, 0, 0, error="bad header")
    assert table[-1] == Entry(b"\xff\x00", 2, 7, 9, 7)
    assert list(table.names()) == [b"a/b", b"", b"\xff\x00"]
    assert [e.position for e in table] == [0, 1, 2]
    assert table[1:] == [table[1], table[2]]
    with pytest.raises(IndexError):
        table[3]


def test_memory_is_a_few_bytes_per_entry() -> None:
    table = PackedEntries()
    for i in range(10_000):
        table.append(f"{i:020d}.bin".encode(), i, i * 1024, i)
    assert table.table_bytes < 10_000 * (24 + 45)  # the name and seven numbers
