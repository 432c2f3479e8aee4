"""IndexStore: records on disk survive a new instance, damage is discarded, LRU eviction
keeps the directory under its budget, and concurrent stores never hand out wrong bytes."""

from __future__ import annotations

import logging
import os
import random
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from desfs.cache.persistent import SUFFIX, IndexStore
from desfs.cache.records import MAGIC, CachedTail
from desfs.errors import FormatError, UsageError

SOURCE = "s3://bucket/prefix at http://127.0.0.1:9"
BIG = 1 << 30


def _tail(key: str, length: int = 1000, salt: int = 0) -> bytes:
    return random.Random(f"{key}/{salt}").randbytes(length)


def _put(
    store: IndexStore, key: str, tail: bytes, head: bytes | None = b"DES2\x00\x00\x00\x01"
) -> None:
    size = 50_000 + len(tail)
    store.put(key, f"etag-{key}", size, tail, size - len(tail), head)


def _get(store: IndexStore, key: str, length: int = 1000) -> CachedTail | None:
    return store.get(key, f"etag-{key}", 50_000 + length)


def _records(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_round_trip_survives_a_new_store(tmp_path: Path) -> None:
    directory = tmp_path / "cache" / "index"
    first = IndexStore(directory, BIG, SOURCE)
    tail = _tail("a")
    _put(first, "2024-12-03/0.des", tail)
    _put(first, "2024-12-03/1.des", tail, head=None)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700

    second = IndexStore(directory, BIG, SOURCE)  # a remount
    got = _get(second, "2024-12-03/0.des")
    assert got == CachedTail(51_000, tail, b"DES2\x00\x00\x00\x01")
    assert got is not None and got.tail_start == 50_000
    no_head = _get(second, "2024-12-03/1.des")
    assert no_head is not None and no_head.head is None and no_head.tail == tail
    stats = second.statistics()
    assert (stats.hits, stats.misses, stats.discarded) == (2, 0, 0)


def test_other_etag_or_source_is_a_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = IndexStore(tmp_path, BIG, SOURCE)
    _put(store, "k.des", _tail("k"))
    assert store.get("k.des", "another-etag", 51_000) is None
    assert IndexStore(tmp_path, BIG, "local:/elsewhere").get("k.des", "etag-k.des", 51_000) is None
    assert store.statistics().misses == 1
    assert _warnings(caplog) == []
    assert _get(store, "k.des") is not None


def test_put_refuses_a_tail_that_does_not_end_at_the_size(tmp_path: Path) -> None:
    store = IndexStore(tmp_path, BIG, SOURCE)
    with pytest.raises(FormatError):
        store.put("k.des", "e", 100, b"x" * 10, 80, None)
    assert _records(tmp_path) == []


def _flip(offset: int) -> Callable[[Path, Path], None]:
    def damage(path: Path, _: Path) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x40
        path.write_bytes(bytes(data))

    return damage


def _truncate(path: Path, _: Path) -> None:
    path.write_bytes(path.read_bytes()[:-300])


def _truncate_to_header(path: Path, _: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def _wrong_magic(path: Path, _: Path) -> None:
    path.write_bytes(b"DESFSIC9" + path.read_bytes()[len(MAGIC) :])


def _wrong_key(path: Path, other: Path) -> None:
    # A complete, checksummed record of another container under this one's name.
    path.write_bytes(other.read_bytes())


@pytest.mark.parametrize(
    "damage",
    [_flip(0), _flip(9), _flip(20), _flip(60), _flip(-1), _truncate, _truncate_to_header,
     _wrong_magic, _wrong_key],
    ids=["magic-byte", "version", "checksum", "fields", "payload", "truncated",
         "header-only", "wrong-magic", "wrong-key-echo"],
)  # fmt: skip
def test_damaged_record_is_discarded_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path, Path], None]
) -> None:
    store = IndexStore(tmp_path, BIG, SOURCE)
    _put(store, "a.des", _tail("a"))
    [path_a] = _records(tmp_path)
    _put(store, "b.des", _tail("b"))
    [path_b] = [p for p in _records(tmp_path) if p != path_a]
    damage(path_a, path_b)

    with caplog.at_level(logging.WARNING):
        assert _get(store, "a.des") is None
        assert _get(store, "a.des") is None  # now simply missing: no second warning
    [warning] = _warnings(caplog)
    assert "a.des" in warning.getMessage() and "damaged" in warning.getMessage()
    assert not path_a.exists()
    assert _get(store, "b.des") == CachedTail(51_000, _tail("b"), b"DES2\x00\x00\x00\x01")
    assert store.statistics().discarded == 1

    _put(store, "a.des", _tail("a"))  # refetched and kept again
    assert _get(store, "a.des") is not None


def test_size_mismatch_is_damage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = IndexStore(tmp_path, BIG, SOURCE)
    _put(store, "a.des", _tail("a"))
    with caplog.at_level(logging.WARNING):
        assert store.get("a.des", "etag-a.des", 51_001) is None
    assert len(_warnings(caplog)) == 1
    assert _records(tmp_path) == []


def test_eviction_removes_least_recently_used(tmp_path: Path) -> None:
    probe = IndexStore(tmp_path / "probe", BIG, SOURCE)
    _put(probe, "a.des", _tail("a"))
    [one] = _records(tmp_path / "probe")
    record = one.stat().st_size
    budget = 3 * record + record // 2
    store = IndexStore(tmp_path / "lru", budget, SOURCE)
    directory = store.directory
    for age, key in enumerate(["a.des", "b.des", "c.des"]):
        _put(store, key, _tail(key))
        [newest] = [p for p in _records(directory) if p.stat().st_mtime_ns > 10**15]
        os.utime(newest, ns=(10**12 * (age + 1),) * 2)  # a, b, c: oldest first
    assert _get(store, "a.des") is not None  # a is now the most recently used

    _put(store, "d.des", _tail("d"))  # 4 records > 3.5: the least recently used goes
    assert sum(p.stat().st_size for p in _records(directory)) <= budget
    assert _get(store, "b.des") is None
    assert [_get(store, k) is not None for k in ("a.des", "c.des", "d.des")] == [True] * 3
    stats = store.statistics()
    assert stats.evictions == 1 and stats.bytes_estimate == 3 * record


def test_budget_holds_over_many_writes(tmp_path: Path) -> None:
    store = IndexStore(tmp_path, 20_000, SOURCE)
    for i in range(200):
        _put(store, f"{i}.des", _tail(str(i), length=900 + i))
        assert sum(p.stat().st_size for p in _records(tmp_path)) <= 20_000
    assert _get(store, "199.des", length=1099) is not None


def test_record_larger_than_the_budget_is_not_kept(tmp_path: Path) -> None:
    store = IndexStore(tmp_path, 500, SOURCE)
    _put(store, "a.des", _tail("a"))
    assert _records(tmp_path) == [] and _get(store, "a.des") is None


def test_stale_temporary_files_are_swept(tmp_path: Path) -> None:
    leftover = tmp_path / ".tmp-crashed"
    leftover.write_bytes(b"half a record")
    os.utime(leftover, (1.0, 1.0))
    fresh = tmp_path / ".tmp-writing"
    fresh.write_bytes(b"being written")
    store = IndexStore(tmp_path, BIG, SOURCE)
    store.evict()
    assert not leftover.exists() and fresh.exists()


def test_directory_is_made_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    IndexStore(shared, BIG, SOURCE)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700


def test_a_file_is_not_a_cache_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError):
        IndexStore(tmp_path / "file", BIG, SOURCE)
    with pytest.raises(UsageError):
        IndexStore(tmp_path / "file" / "below", BIG, SOURCE)


def test_two_stores_in_threads_never_return_wrong_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [f"2024-12-03/{i}.des" for i in range(6)]
    # Both writers store different (equally valid) bytes under the same key and etag, so
    # a torn or mixed record would show up as bytes that are neither.
    payloads = {(k, w): _tail(k, length=3000 + 500 * w, salt=w) for k in keys for w in (0, 1)}
    seen: list[int] = [0, 0]

    def work(writer: int) -> None:
        store = IndexStore(tmp_path, 8 * 4000, SOURCE)  # small: eviction runs throughout
        rng = random.Random(writer)
        for _ in range(400):
            key = rng.choice(keys)
            tail = payloads[(key, writer)]
            size = 100_000
            if rng.random() < 0.5:
                store.put(key, "etag", size, tail, size - len(tail), None)
            got = store.get(key, "etag", size)
            if got is not None:
                assert got.tail in (payloads[(key, 0)], payloads[(key, 1)]), key
                assert got.head is None and got.size == size
                seen[writer] += 1

    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(work, 0), pool.submit(work, 1)]:
            future.result()
    assert _warnings(caplog) == []
    assert seen[0] > 0 and seen[1] > 0
