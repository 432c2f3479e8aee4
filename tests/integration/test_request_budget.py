"""The request budget of design-brief §2, counted on the server side by a proxy in front of
Ceph RGW while ordinary tools (`ls`, `stat`, `cat`, `cp -r`) use a real mount."""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from desfs.archive.readahead import PART, RANDOM_MISSES, WHOLE_CHUNK
from desfs.archive.walk import WINDOW as WALK_WINDOW
from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.moto_server import upload_tree
from tests.support.mounting import Mounted, needs_fuse, root_stats
from tests.support.rgw import RgwServer
from tests.support.s3proxy import RequestRecord, S3Proxy

pytestmark = [needs_fuse(), pytest.mark.s3]

MiB = 1024 * 1024
PREFETCH_CAP = 256 * 1024
SMALL_FILES = 300
BIG_FILE = 24 * MiB
READAHEAD_MAX = 4 * MiB


@dataclass(frozen=True)
class Layout:
    mnt: Path
    proxy: S3Proxy
    files: dict[str, bytes]  # relative path in the mount -> bytes


def _make_source(root: Path) -> dict[str, bytes]:
    rng = random.Random(7)
    src = root / "src"
    files: dict[str, bytes] = {}
    for i in range(SMALL_FILES):
        files[f"docs/file-{i:04d}.txt"] = rng.randbytes(rng.randint(200, 6000))
    files["docs/empty.txt"] = b""
    files["big/large.bin"] = rng.randbytes(1 * MiB) * (BIG_FILE // MiB)
    files["big/random.bin"] = rng.randbytes(BIG_FILE)  # read only by the random-read test
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    out = root / "bucket"
    # One shard for everything keeps the test's arithmetic plain.
    options = PackOptions(format=Format.DESHEAD1, day=date(2024, 12, 3), shard_bits=1)
    report = pack_directory(src, out, options)
    assert len(report.containers) >= 1
    return files


@contextmanager
def _mounted_bucket(
    root: Path, bucket: str, store: RgwServer, client: Any, files: dict[str, bytes], args: list[str]
) -> Iterator[Layout]:
    """Upload root/bucket to a fresh bucket and mount it through a counting proxy."""
    client.create_bucket(Bucket=bucket)
    upload_tree(client, bucket, root / "bucket", "")
    proxy = S3Proxy(store.port).start()
    env = {**store.env(), "AWS_ENDPOINT_URL": proxy.url}
    try:
        with Mounted(f"s3://{bucket}", root / "mnt", root / "daemon.log", args, env) as mount:
            yield Layout(mount.path, proxy, files)
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def budget_mount(
    tmp_path_factory: pytest.TempPathFactory, rgw_server: RgwServer, rgw_client: Any
) -> Iterator[Layout]:
    args = ["--prefetch-cap", str(PREFETCH_CAP), "--readahead-max", str(READAHEAD_MAX)]
    with _packed_and_mounted(tmp_path_factory, "budget", rgw_server, rgw_client, args) as layout:
        yield layout


@contextmanager
def _packed_and_mounted(
    factory: pytest.TempPathFactory, bucket: str, store: RgwServer, client: Any, args: list[str]
) -> Iterator[Layout]:
    root = factory.mktemp(bucket)
    files = _make_source(root)
    with _mounted_bucket(root, bucket, store, client, files, args) as layout:
        yield layout


def _opened(layout: Layout, name: str) -> Path:
    """The file's path once its container is open (a `stat`), with the counts reset."""
    path = _shard_of(layout, name) / name
    subprocess.run(["stat", str(path)], check=True, timeout=30, capture_output=True)
    layout.proxy.reset_counts()
    return path


def _shard_of(layout: Layout, relative: str) -> Path:
    day = layout.mnt / "2024-12-03"
    for shard in sorted(day.iterdir()):
        if (shard / relative).exists():
            return shard
    raise AssertionError(f"{relative} not found in any shard")


def _gets(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.kind in ("get", "get_range", "head")]


def _range_length(record: RequestRecord) -> int:
    assert record.range is not None
    match = re.fullmatch(r"bytes=(\d+)-(\d+)", record.range)
    assert match, record.range
    return int(match[2]) - int(match[1]) + 1


def test_listing_and_open_costs(budget_mount: Layout) -> None:
    layout, proxy = budget_mount, budget_mount.proxy
    subprocess.run(["ls", str(layout.mnt / "2024-12-03")], check=True, timeout=30)
    shards = sorted((layout.mnt / "2024-12-03").iterdir())
    proxy.reset_counts()
    subprocess.run(["ls", str(shards[0])], check=True, timeout=30, capture_output=True)
    opened = proxy.requests
    assert [r.kind for r in opened] == ["get_range"], opened
    assert opened[0].range is not None and opened[0].range.startswith("bytes=-")
    proxy.reset_counts()
    subprocess.run(["ls", "-lR", str(shards[0])], check=True, timeout=30, capture_output=True)
    subprocess.run(["stat", str(shards[0])], check=True, timeout=30, capture_output=True)
    assert proxy.requests == [], "stat and ls -l of a loaded shard must cost nothing"
    missing = shards[0] / "docs" / "no-such-file"
    assert not missing.exists()
    assert proxy.requests == [], "a name not in a loaded index costs nothing"


def test_small_file_is_one_exact_get_then_cached(budget_mount: Layout) -> None:
    layout, proxy = budget_mount, budget_mount.proxy
    name = "docs/file-0150.txt"
    path = _opened(layout, name)
    data = subprocess.run(["cat", str(path)], check=True, timeout=30, capture_output=True).stdout
    assert data == layout.files[name]
    gets = _gets(proxy.requests)
    assert len(gets) == 1 and _range_length(gets[0]) == len(data), gets
    proxy.reset_counts()
    again = subprocess.run(["cat", str(path)], check=True, timeout=30, capture_output=True).stdout
    assert again == data and _gets(proxy.requests) == []


def test_empty_file_costs_nothing(budget_mount: Layout) -> None:
    layout, proxy = budget_mount, budget_mount.proxy
    path = _shard_of(layout, "docs/empty.txt") / "docs/empty.txt"
    subprocess.run(["stat", str(path)], check=True, timeout=30, capture_output=True)
    proxy.reset_counts()
    assert path.read_bytes() == b""
    assert proxy.requests == []


def test_cp_r_of_a_shard_is_coalesced(budget_mount: Layout, tmp_path: Path) -> None:
    layout, proxy = budget_mount, budget_mount.proxy
    shard = _shard_of(layout, "docs/file-0000.txt")
    subprocess.run(["ls", "-R", str(shard)], check=True, timeout=30, capture_output=True)
    proxy.reset_counts()
    subprocess.run(
        ["cp", "-r", str(shard / "docs"), str(tmp_path / "copy")], check=True, timeout=120
    )
    copied = sorted((tmp_path / "copy").iterdir())
    small = {f"docs/{p.name}": layout.files[f"docs/{p.name}"] for p in copied}
    assert len(small) >= SMALL_FILES // 4, "the shard should hold a good part of the files"
    for path in copied:
        assert path.read_bytes() == small[f"docs/{path.name}"], path
    gets = _gets(proxy.requests)
    total = sum(len(v) for v in small.values())
    bound = 2 + math.ceil(total / PREFETCH_CAP)
    # One GET per prefetch cap of neighbouring files, not one per file.
    assert len(gets) <= bound, (len(gets), bound, len(small), [r.range for r in gets][:20])
    fetched = sum(r.bytes for r in gets)
    assert fetched <= 1.5 * total + PREFETCH_CAP


def test_large_sequential_read_grows_then_caps(budget_mount: Layout) -> None:
    layout, proxy = budget_mount, budget_mount.proxy
    name = "big/large.bin"
    path = _opened(layout, name)
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 * MiB):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(layout.files[name]).hexdigest()
    sizes = [_range_length(r) for r in _gets(proxy.requests)]
    assert sizes, "the read needed no GET at all?"
    assert sizes[0] <= 1 * MiB + 256 * 1024, sizes
    growth = math.ceil(math.log2(READAHEAD_MAX / MiB)) + 1
    linear = math.ceil(BIG_FILE / READAHEAD_MAX)
    assert len(sizes) <= growth + linear + 2, sizes
    assert max(sizes) <= READAHEAD_MAX + 256 * 1024, sizes
    assert sum(sizes) <= BIG_FILE + READAHEAD_MAX, sizes


def _span(proxy: S3Proxy) -> int:
    """From the first byte any GET has asked for to the last (one big file's bytes)."""
    ranges = [re.fullmatch(r"bytes=(\d+)-(\d+)", r.range or "") for r in _gets(proxy.requests)]
    found = [(int(m[1]), int(m[2]) + 1) for m in ranges if m]
    return max(e for _, e in found) - min(s for s, _ in found) if found else 0


WIDE_READAHEAD = 8 * MiB


@pytest.fixture(scope="module")
def wide_mount(
    tmp_path_factory: pytest.TempPathFactory, rgw_server: RgwServer, rgw_client: Any
) -> Iterator[Layout]:
    """Readahead windows up to two parts wide."""
    args = ["--readahead-max", str(WIDE_READAHEAD)]
    with _packed_and_mounted(tmp_path_factory, "wide", rgw_server, rgw_client, args) as layout:
        yield layout


def test_wide_readahead_windows_go_out_as_parallel_parts(wide_mount: Layout) -> None:
    """A window wider than PART is several GETs at once, with the same bytes in all."""
    layout, proxy = wide_mount, wide_mount.proxy
    name = "big/large.bin"
    path = _opened(layout, name)
    proxy.latency = 0.05  # every part waits here together, or the test shows they do not
    try:
        data = path.read_bytes()
    finally:
        proxy.latency = 0.0
    assert hashlib.sha256(data).digest() == hashlib.sha256(layout.files[name]).digest()
    sizes = [_range_length(r) for r in _gets(proxy.requests)]
    assert max(sizes) <= PART + 256 * 1024, sizes
    assert sum(sizes) <= BIG_FILE + WIDE_READAHEAD, sizes
    assert len(sizes) <= math.ceil(BIG_FILE / PART) + 4, sizes  # + the ramp below PART
    assert proxy.most_in_flight >= WIDE_READAHEAD // PART, (proxy.most_in_flight, sizes)


def test_next_window_is_asked_for_while_the_reader_is_in_this_one(wide_mount: Layout) -> None:
    """Past the middle of a window the next one is fetched in the background. Read from
    the start, the windows are [0, 1), [1, 3), [3, 7), [7, 15), [15, 23) MiB: a reader that
    stops at 12 MiB has had [7, 15) fetched on demand, and [15, 23) only if asked for
    ahead."""
    layout, proxy = wide_mount, wide_mount.proxy
    name = "big/random.bin"  # read by no other test of this mount
    path = _shard_of(layout, name) / name
    subprocess.run(["stat", str(path)], check=True, timeout=30, capture_output=True)
    read = 12 * MiB
    proxy.reset_counts()
    with open(path, "rb", buffering=0) as stream:
        # No kernel readahead: the daemon sees exactly these reads, in order.
        os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        while stream.tell() < read:
            assert stream.read(256 * 1024)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _span(proxy) < 17 * MiB:
            time.sleep(0.05)
    assert _span(proxy) >= 17 * MiB, [r.range for r in proxy.requests]
    fetched = sum(_range_length(r) for r in _gets(proxy.requests))
    assert fetched <= 23 * MiB + 256 * 1024, fetched


@pytest.fixture(scope="module")
def des2_mount(
    tmp_path_factory: pytest.TempPathFactory, rgw_server: RgwServer, rgw_client: Any
) -> Iterator[Layout]:
    """A DES flat day: shard 0 with an index larger than the tail window, shard 1 with a
    small index but more data than the window."""
    root = tmp_path_factory.mktemp("budget2")
    rng = random.Random(8)
    # Numeric UIDs route by value mod 2^n_bits: multiples of 16 all land in shard 0.
    files = {str(16 * i).zfill(30): rng.randbytes(20) for i in range(2500)}
    files.update({str(16 * i + 1): rng.randbytes(50_000) for i in range(4)})
    src = root / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    options = PackOptions(format=Format.DES2, day=date(2024, 12, 4), shard_bits=4)
    report = pack_directory(src, root / "bucket", options)
    assert sorted(c.key for c in report.containers) == [
        "20241204_0_0000.des",
        "20241204_1_0000.des",
    ]
    with _mounted_bucket(root, "budget2", rgw_server, rgw_client, files, []) as layout:
        yield layout


def test_des2_open_costs_and_own_counters_agree(des2_mount: Layout) -> None:
    layout, proxy = des2_mount, des2_mount.proxy
    day = layout.mnt / "2024-12-04"
    shards = sorted(day.iterdir())
    before = root_stats(layout.mnt)["store"]["requests"]
    for shard in shards:
        proxy.reset_counts()
        listed = subprocess.run(["ls", "-R", str(shard)], capture_output=True, timeout=60)
        assert listed.returncode == 0
        kinds = sorted(r.kind for r in proxy.requests)
        heavy_index = shard.name == "0_0000"
        ranges = [r.range or "" for r in proxy.requests]
        if heavy_index:
            # Tail window, the 8-byte header in the same round, then the rest of the index.
            assert kinds == ["get_range"] * 3, ranges
        else:
            # Tail window and header, sent together; the index fitted in the window.
            assert kinds == ["get_range"] * 2, ranges
        assert any(r.startswith("bytes=-") for r in ranges)
        assert "bytes=0-15" in ranges
    after = root_stats(layout.mnt)["store"]["requests"]
    server = 2 + 3  # the two opens above
    assert after["get_range"] - before["get_range"] == server


def test_random_reads_that_keep_missing_fetch_the_entry_whole(budget_mount: Layout) -> None:
    layout, proxy = budget_mount, budget_mount.proxy
    path = _shard_of(layout, "big/random.bin") / "big/random.bin"
    data = layout.files["big/random.bin"]
    subprocess.run(["stat", str(path)], check=True, timeout=30, capture_output=True)
    rng = random.Random(6)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        # A fresh open: earlier tests' blocks may be cached, so count only what this needs.
        proxy.reset_counts()
        for _ in range(200):
            start = rng.randrange(0, BIG_FILE - 4096) // 4096 * 4096
            assert os.pread(fd, 4096, start) == data[start : start + 4096]
    finally:
        os.close(fd)
    gets = _gets(proxy.requests)
    # A few block GETs, then the rest of the entry in parallel 8 MiB pieces: never one
    # round trip per random read.
    assert len(gets) > RANDOM_MISSES, "the first random misses fetch single blocks"
    # Each block already fetched can split one 8 MiB piece in two.
    bound = 2 * RANDOM_MISSES + math.ceil(BIG_FILE / WHOLE_CHUNK) + 1
    assert len(gets) <= bound, len(gets)
    assert max(_range_length(r) for r in gets) > 1 * MiB
    assert sum(r.bytes for r in gets) <= BIG_FILE + RANDOM_MISSES * 256 * 1024


@pytest.fixture(scope="module")
def many_shards(
    tmp_path_factory: pytest.TempPathFactory, rgw_server: RgwServer, rgw_client: Any
) -> Iterator[Layout]:
    root = tmp_path_factory.mktemp("walk")
    rng = random.Random(9)
    files = {f"f{i:04d}.txt": rng.randbytes(rng.randint(10, 2000)) for i in range(400)}
    for name, data in files.items():
        (root / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / name).write_bytes(data)
    options = PackOptions(format=Format.DESHEAD1, day=date(2024, 12, 7), shard_bits=4)
    pack_directory(root / "src", root / "bucket", options)
    with _mounted_bucket(root, "walk", rgw_server, rgw_client, files, []) as layout:
        yield layout


def test_a_walk_opens_the_next_shards_together(many_shards: Layout) -> None:
    layout, proxy = many_shards, many_shards.proxy
    day = layout.mnt / "2024-12-07"
    shards = sorted(os.listdir(day))
    assert len(shards) == 16
    proxy.reset_counts()
    os.listdir(day / shards[9])  # browsing: one shard, one open
    os.listdir(day / shards[3])  # not its successor: still one open
    assert len(_gets(proxy.requests)) == 2
    proxy.reset_counts()
    os.listdir(day / shards[4])  # the successor of the last one opened: a walk
    opened = {r.path.rsplit("/", 1)[1] for r in _gets(proxy.requests)}
    assert opened == {f"{s}.des" for s in shards[4 : 4 + 1 + WALK_WINDOW] if s != shards[9]}
    proxy.reset_counts()
    for shard in shards[5 : 4 + 1 + WALK_WINDOW]:
        os.listdir(day / shard)
    assert _gets(proxy.requests) == [], "shards opened ahead of the walk cost nothing"
