"""The Storage contract, run unchanged against LocalStorage and S3Storage (through the
counting proxy, so request counts are checked on both sides of the wire)."""

from __future__ import annotations

import os

import pytest

from desfs.errors import ObjectChanged, ObjectMissing, StorageError, UsageError
from desfs.storage.base import ListPage, Storage
from tests.contract.conftest import StoreHarness

DATA = bytes(range(256)) * 4 + b"tail!"  # 1029 bytes, every offset distinguishable


def requests(storage: Storage) -> dict[str, int]:
    return {k: v for k, v in storage.counters.snapshot().requests.items() if v}


def assert_counts(store: StoreHarness, expected: dict[str, int]) -> None:
    """desfs's own counters, and the server's view when there is a server."""
    assert requests(store.storage) == expected
    server = store.server_counts()
    if server is not None:
        assert server == expected


def all_pages(storage: Storage, prefix: str, delimiter: str) -> list[ListPage]:
    pages = [storage.list_page(prefix, delimiter, None)]
    while pages[-1].next_token is not None:
        pages.append(storage.list_page(prefix, delimiter, pages[-1].next_token))
    return pages


def test_listing_paginates_past_1000_keys_in_order(store: StoreHarness) -> None:
    keys = [f"many/{i:05d}-{'x' * (i % 7)}.des" for i in range(1050)]
    store.put_many({k: b"%d" % i for i, k in enumerate(keys)})

    pages = all_pages(store.storage, "many/", "/")

    assert [len(p.objects) for p in pages] == [1000, 50]
    listed = [o.key for p in pages for o in p.objects]
    assert listed == sorted(keys)
    assert all(not p.prefixes for p in pages)
    assert_counts(store, {"list": 2})


def test_listing_interleaves_prefixes_and_objects_across_pages(store: StoreHarness) -> None:
    store.put_many(
        {
            "2024-12-03/a.des": b"a",
            "2024-12-03/sub/b.des": b"b",
            "2024-12-04/c.des": b"c",
            "2024-12-04.des": b"d",
            "20241205_AB_0001.des": b"e",
            ".des-pack-tmp-1": b"f",
            "README": b"g",
        }
    )
    storage = store.make(2)

    pages = all_pages(storage, "", "/")

    assert [len(p.objects) + len(p.prefixes) for p in pages] == [2, 2, 2]
    names = [o.key for p in pages for o in p.objects] + [x for p in pages for x in p.prefixes]
    assert sorted(names) == [
        ".des-pack-tmp-1",
        "2024-12-03/",
        "2024-12-04.des",
        "2024-12-04/",
        "20241205_AB_0001.des",
        "README",
    ]
    # S3 order: "2024-12-04.des" < "2024-12-04/" because "." < "/".
    per_page = [sorted([o.key for o in p.objects] + list(p.prefixes)) for p in pages]
    assert per_page == [
        [".des-pack-tmp-1", "2024-12-03/"],
        ["2024-12-04.des", "2024-12-04/"],
        ["20241205_AB_0001.des", "README"],
    ]
    assert requests(storage) == {"list": 3}


def test_listing_prefixes_and_delimiters(store: StoreHarness) -> None:
    store.put_many({"d/x/1": b"1", "d/x/2": b"22", "d/y": b"333", "dz": b"4", "e/5": b"5"})
    s = store.storage

    root = s.list_page("", "/", None)
    assert [o.key for o in root.objects] == ["dz"]
    assert root.prefixes == ("d/", "e/")
    assert root.next_token is None

    partial = s.list_page("d", "/", None)
    assert ([o.key for o in partial.objects], partial.prefixes) == (["dz"], ("d/",))

    inner = s.list_page("d/", "/", None)
    assert ([o.key for o in inner.objects], inner.prefixes) == (["d/y"], ("d/x/",))
    assert [o.size for o in inner.objects] == [3]

    flat = s.list_page("d/", "", None)
    assert [o.key for o in flat.objects] == ["d/x/1", "d/x/2", "d/y"]
    assert flat.prefixes == ()

    everything = s.list_page("", "", None)
    assert [o.key for o in everything.objects] == ["d/x/1", "d/x/2", "d/y", "dz", "e/5"]

    nothing = s.list_page("nope/", "/", None)
    assert nothing == ListPage((), (), None)
    assert_counts(store, {"list": 6})


def test_listed_etag_and_size_match_reads(store: StoreHarness) -> None:
    store.put("k.des", DATA)
    [info] = store.storage.list_page("k", "/", None).objects

    blob = store.storage.read_suffix("k.des", 10)

    assert (info.size, info.etag) == (len(DATA), blob.etag)
    assert blob.mtime == pytest.approx(info.mtime_ns / 1e9, abs=1.0)
    assert '"' not in info.etag


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (len(DATA) - 1, len(DATA)), (0, len(DATA)), (7, 300)],
    ids=["first-byte", "last-byte", "whole", "middle"],
)
def test_range_edges(store: StoreHarness, start: int, end: int) -> None:
    store.put("obj", DATA)

    assert store.storage.read_range("obj", start, end, None) == DATA[start:end]
    assert_counts(store, {"get_range": 1})
    snap = store.storage.counters.snapshot()
    assert snap.bytes == end - start
    if store.proxy is not None:
        assert store.proxy.bytes_sent() == end - start
        assert [r.range for r in store.proxy.requests] == [f"bytes={start}-{end - 1}"]


def test_range_past_the_end_is_short_and_past_eof_fails(store: StoreHarness) -> None:
    store.put("obj", DATA)

    assert store.storage.read_range("obj", 1000, 5000, None) == DATA[1000:]
    with pytest.raises(StorageError):
        store.storage.read_range("obj", len(DATA), len(DATA) + 10, None)
    assert_counts(store, {"get_range": 2})
    assert store.storage.counters.snapshot().errors == 1


def test_suffix_reads(store: StoreHarness) -> None:
    store.put("obj", DATA)

    tail = store.storage.read_suffix("obj", 12)
    bigger = store.storage.read_suffix("obj", 10 * len(DATA))

    assert (tail.data, tail.size) == (DATA[-12:], len(DATA))
    assert (bigger.data, bigger.size) == (DATA, len(DATA))
    assert tail.etag == bigger.etag
    assert_counts(store, {"get_range": 2})
    if store.proxy is not None:
        ranges = [r.range for r in store.proxy.requests]
        assert ranges == ["bytes=-12", f"bytes=-{10 * len(DATA)}"]


def test_empty_object(store: StoreHarness) -> None:
    store.put("empty", b"")
    [info] = store.storage.list_page("empty", "", None).objects

    tail = store.storage.read_suffix("empty", 65536)
    whole = store.storage.read_object("empty")

    assert (tail.data, tail.size, tail.etag) == (b"", 0, info.etag)
    assert (whole.data, whole.size, whole.etag) == (b"", 0, info.etag)


def test_read_object(store: StoreHarness) -> None:
    store.put("a/b/whole.bin", DATA)

    blob = store.storage.read_object("a/b/whole.bin")

    assert (blob.data, blob.size) == (DATA, len(DATA))
    assert_counts(store, {"get": 1})
    if store.proxy is not None:
        assert [r.range for r in store.proxy.requests] == [None]


def test_missing_keys(store: StoreHarness) -> None:
    store.put("present", b"x")
    s = store.storage

    with pytest.raises(ObjectMissing):
        s.read_range("absent", 0, 10, None)
    with pytest.raises(ObjectMissing):
        s.read_suffix("absent", 10)
    with pytest.raises(ObjectMissing):
        s.read_object("absent/deeper")
    assert_counts(store, {"get_range": 2, "get": 1})
    snap = s.counters.snapshot()
    assert (snap.errors, snap.retries) == (3, 0)


def test_if_match_mismatch_is_object_changed(store: StoreHarness) -> None:
    store.put("c.des", DATA)
    etag = store.storage.read_suffix("c.des", 16).etag
    assert store.storage.read_range("c.des", 0, 4, etag) == DATA[:4]

    store.put("c.des", DATA + b"appended")

    with pytest.raises(ObjectChanged):
        store.storage.read_range("c.des", 0, 4, etag)
    assert_counts(store, {"get_range": 3})
    snap = store.storage.counters.snapshot()
    assert (snap.retries, snap.errors) == (0, 1)
    if store.proxy is not None:
        assert [r.status for r in store.proxy.requests] == [206, 206, 412]


@pytest.mark.parametrize(("start", "end"), [(5, 5), (5, 4), (-1, 3), (0, 0)])
def test_empty_or_negative_range_is_refused_before_any_request(
    store: StoreHarness, start: int, end: int
) -> None:
    store.put("obj", DATA)
    before = store.storage.counters.snapshot()

    with pytest.raises(UsageError):
        store.storage.read_range("obj", start, end, None)
    with pytest.raises(UsageError):
        store.storage.read_suffix("obj", 0)

    assert store.storage.counters.snapshot() == before
    assert not store.server_counts()


def test_keys_that_cannot_exist_are_missing_without_a_request(store: StoreHarness) -> None:
    for key in ("", "/abs/olute", "nul\0byte"):
        with pytest.raises(ObjectMissing):
            store.storage.read_object(key)
    assert requests(store.storage) == {}
    assert not store.server_counts()


def test_describe_names_the_source(store: StoreHarness) -> None:
    text = store.storage.describe()
    assert ("s3://" in text) if store.name in ("s3", "rgw") else (os.sep in text)
