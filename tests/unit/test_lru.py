"""ByteLRU: the byte budget, recency order, counters and bulk discards."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desfs.cache.lru import ByteLRU
from desfs.errors import UsageError


def test_exact_budget_and_eviction_order() -> None:
    lru: ByteLRU[str] = ByteLRU(10)
    assert lru.put("a", b"aaaa")
    assert lru.put("b", b"bbbb")
    assert lru.put("c", b"cc")  # exactly 10 bytes: nothing goes
    stats = lru.statistics()
    assert (stats.bytes, stats.entries, stats.evictions) == (10, 3, 0)

    assert lru.get("a") == b"aaaa"  # "a" is now the most recent; "b" the oldest
    assert lru.put("d", b"d")  # 11 > 10: evicts "b" only
    assert "b" not in lru
    assert ["a" in lru, "c" in lru, "d" in lru] == [True, True, True]
    assert lru.statistics().bytes == 7

    assert lru.put("e", b"eeee")  # 11 > 10: evicts "c" (2), leaving 9
    assert "c" not in lru
    stats = lru.statistics()
    assert (stats.bytes, stats.entries, stats.evictions) == (9, 3, 2)


def test_value_larger_than_budget_is_not_kept() -> None:
    lru: ByteLRU[str] = ByteLRU(4)
    assert lru.put("k", b"1234")
    assert not lru.put("big", b"12345")
    assert "big" not in lru
    assert lru.get("k") == b"1234"  # nothing was evicted for it
    assert not lru.put("k", b"123456789")  # replaced, so the old value goes too
    assert "k" not in lru
    stats = lru.statistics()
    assert (stats.bytes, stats.entries, stats.evictions) == (0, 0, 0)


def test_zero_budget_keeps_nothing_but_empty_values() -> None:
    lru: ByteLRU[str] = ByteLRU(0)
    assert not lru.put("a", b"a")
    assert lru.put("empty", b"")
    assert lru.get("empty") == b""
    assert lru.get("a") is None


def test_negative_budget_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        ByteLRU(-1)


def test_replacing_a_value_adjusts_the_byte_count() -> None:
    lru: ByteLRU[str] = ByteLRU(10)
    lru.put("a", b"aaaaaa")
    lru.put("a", b"aa")
    assert lru.statistics().bytes == 2
    lru.put("b", b"bbbbbbbb")
    assert lru.get("a") == b"aa"
    assert lru.statistics().evictions == 0


def test_hits_misses_and_pop() -> None:
    lru: ByteLRU[str] = ByteLRU(100)
    lru.put("a", b"xyz")
    assert lru.get("a") == b"xyz"
    assert lru.get("nope") is None
    assert "a" in lru  # membership is not counted
    assert lru.pop("a") == b"xyz"
    assert lru.pop("a") is None
    stats = lru.statistics()
    assert (stats.hits, stats.misses, stats.bytes, stats.evictions) == (1, 1, 0, 0)


def test_discard_where_drops_all_blocks_of_one_object() -> None:
    lru: ByteLRU[tuple[str, int]] = ByteLRU(100)
    for block in range(3):
        lru.put(("old", block), b"o" * 5)
        lru.put(("other", block), b"t" * 5)
    assert lru.discard_where(lambda key: key[0] == "old") == 3
    assert len(lru) == 3
    assert all(("other", block) in lru for block in range(3))
    assert lru.statistics().bytes == 15


operations = st.lists(
    st.tuples(
        st.sampled_from(["get", "put", "pop"]),
        st.integers(min_value=0, max_value=5),
        st.integers(min_value=0, max_value=12),
    ),
    max_size=60,
)


@given(budget=st.integers(min_value=0, max_value=30), ops=operations)
def test_matches_a_reference_lru(budget: int, ops: list[tuple[str, int, int]]) -> None:
    lru: ByteLRU[int] = ByteLRU(budget)
    model: OrderedDict[int, bytes] = OrderedDict()
    for op, key, length in ops:
        if op == "get":
            assert lru.get(key) == model.get(key)
            if key in model:
                model.move_to_end(key)
        elif op == "pop":
            assert lru.pop(key) == model.pop(key, None)
        else:
            value = bytes([key]) * length
            model.pop(key, None)
            if length <= budget:
                model[key] = value
                while sum(map(len, model.values())) > budget:
                    model.popitem(last=False)
            lru.put(key, value)
        assert all(k in lru for k in model)
        assert len(lru) == len(model)
        assert lru.statistics().bytes == sum(map(len, model.values())) <= budget
