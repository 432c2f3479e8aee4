"""The fleet's shared index cache on a real redis-server: two mount daemons stand for two
hosts of one S3 source (moto behind the counting proxy, so store requests are counted on
the server side). The second host's container opens cost no store GET; Redis lost, slow,
full, password-protected or holding damaged records costs no correctness and no hang."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.moto_server import MotoServer, upload_tree
from tests.support.mounting import Mounted, needs_fuse, root_stats
from tests.support.redis_server import RedisServer, needs_redis
from tests.support.s3proxy import S3Proxy
from tests.support.trees import random_files

pytestmark = [needs_fuse(), needs_redis(), pytest.mark.s3]

BUCKET = "fleet"
FILES = 600


@dataclass(frozen=True)
class Store:
    source: Path  # the files before packing
    keys: tuple[str, ...]
    proxy: S3Proxy
    env: dict[str, str]


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer, s3_client: Any
) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("fleet")
    src = root / "src"
    random_files(src, FILES, 13, lambda i: f"d{i % 4}/f{i:04d}.bin", (1, 400))
    packed = root / "packed"
    pack_directory(src, packed, PackOptions(Format.DESHEAD1, date(2025, 3, 1), shard_bits=2))
    pack_directory(src, packed, PackOptions(Format.DES2, date(2025, 3, 2), shard_bits=4))
    s3_client.create_bucket(Bucket=BUCKET)
    keys = tuple(upload_tree(s3_client, BUCKET, packed, ""))
    assert len(keys) == 4 + 16
    proxy = S3Proxy(moto_server.port).start()
    try:
        yield Store(src, keys, proxy, {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url})
    finally:
        proxy.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def _host(
    store: Store, tmp: Path, name: str, url: str, extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Mounted:  # fmt: skip
    args = ["--shared-cache", url, "--tail-window", "4KiB", *(extra or [])]
    return Mounted(
        f"s3://{BUCKET}", tmp / name, tmp / f"{name}.log", args, {**store.env, **(env or {})}
    )


def _object_gets(proxy: S3Proxy) -> list[str]:
    return [r.path for r in proxy.requests if r.kind != "list"]


def _walk(mount: Mounted) -> list[str]:
    found = mount.run("find", str(mount.path), "-type", "f").stdout.decode().split()
    return sorted(p.removeprefix(str(mount.path)) for p in found)


def _check_some(mount: Mounted, store: Store, count: int = 20) -> None:
    files = _walk(mount)
    for rel in random.Random(5).sample(files, count):
        name = rel.rsplit("/", 1)[-1]
        [original] = list(store.source.glob(f"*/{name}"))
        got = mount.run("cat", str(mount.path) + rel).stdout
        assert got == original.read_bytes(), rel


def _warnings(mount: Mounted, text: str) -> list[str]:
    return [line for line in mount.log().splitlines() if text in line]


def test_second_host_opens_every_container_from_redis(
    store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    store.proxy.reset_counts()
    with _host(store, tmp_path, "host-a", redis_server.url) as first:
        cold = _walk(first)
        opened = {p.removeprefix(f"/{BUCKET}/") for p in _object_gets(store.proxy)}
        assert opened == set(store.keys), "the first host opens every container itself"
        published = root_stats(first.path)["shared_cache"]
        assert published["misses"] == len(store.keys)
        assert published["hits"] == 0
    assert len(redis_server.records()) == len(store.keys), "one record per container"

    store.proxy.reset_counts()
    with _host(store, tmp_path, "host-b", redis_server.url) as second:
        assert _walk(second) == cold
        assert _object_gets(store.proxy) == [], "the second host reads no footer or index"
        assert store.proxy.counts().get("list", 0) > 0, "days and shards are still listed"
        stats = root_stats(second.path)["shared_cache"]
        assert stats["hits"] == len(store.keys)
        assert stats["misses"] == stats["errors"] == 0
        _check_some(second, store)
    assert len(cold) == 2 * FILES


def test_redis_killed_mid_walk_reads_go_on(
    store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    with _host(store, tmp_path, "seed", redis_server.url) as seed:
        cold = _walk(seed)
    with _host(store, tmp_path, "host", redis_server.url) as mount:
        day = sorted(p.name for p in mount.path.iterdir())[0]
        mount.run("ls", "-R", str(mount.path / day))
        redis_server.kill()
        assert _walk(mount) == cold, "the rest of the walk is served from the store"
        _check_some(mount, store)
        stats = root_stats(mount.path)["shared_cache"]
        assert stats["hits"] >= 1 and stats["errors"] >= 1
        assert len(_warnings(mount, "shared index cache")) == 1, "one warning per outage"


def test_damaged_and_foreign_records_are_never_used(
    store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    extra = ["--shared-record-max", "64KiB"]
    with _host(store, tmp_path, "seed", redis_server.url, extra) as seed:
        cold = _walk(seed)
    client = redis_server.client()
    keys = redis_server.records()
    for key in keys[:3]:  # flipped bytes
        value = bytearray(client.get(key))
        value[len(value) // 2] ^= 0x5A
        client.set(key, bytes(value))
    client.set(keys[3], b"garbage, not a record")
    client.set(keys[4], client.get(keys[5]))  # another container's (valid) record
    client.set(keys[6], b"x" * (1 << 20))  # bigger than any record: never read whole
    client.delete(keys[7])
    client.rpush(keys[7], b"not a string")  # a value of another type
    refused = 7  # keys[5] is left alone: its record is only copied

    store.proxy.reset_counts()
    with _host(store, tmp_path, "host", redis_server.url, extra) as mount:
        assert _walk(mount) == cold
        opened = {p.removeprefix(f"/{BUCKET}/") for p in _object_gets(store.proxy)}
        assert len(opened) == refused, "exactly the refused records were read from the store"
        _check_some(mount, store)
        stats = root_stats(mount.path)["shared_cache"]
        assert stats["hits"] == len(store.keys) - refused
        assert stats["errors"] == refused
        assert len(_warnings(mount, "damaged record")) == 5
        assert len(_warnings(mount, "1048576-byte value")) == 1
        assert len(_warnings(mount, "refused a call")) == 1


def test_silent_redis_costs_a_bounded_wait(store: Store, tmp_path: Path) -> None:
    """A port that accepts connections and never answers: every call ends after
    cache.shared_timeout, then the store answers; one warning."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    try:
        with _host(store, tmp_path, "host", url, ["--shared-cache-timeout", "0.1"]) as mount:
            assert len(_walk(mount)) == 2 * FILES
            _check_some(mount, store, 5)
            stats = root_stats(mount.path)["shared_cache"]
            assert stats["errors"] >= 1 and stats["hits"] == 0
            [warning] = _warnings(mount, "shared index cache")
            assert "Timeout" in warning
    finally:
        stop.set()
        thread.join()
        for sock in held:
            sock.close()
        listener.close()


def test_full_redis_refuses_writes_and_the_mount_serves(store: Store, tmp_path: Path) -> None:
    server = RedisServer(
        tmp_path / "redis", ["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"]
    ).start()
    try:
        client = server.client()
        filler = b"x" * 65536
        i = 0
        while True:  # fill it up to maxmemory
            try:
                client.set(f"filler:{i}", filler)
            except Exception:
                break
            i += 1
        with _host(store, tmp_path, "host", server.url) as mount:
            assert len(_walk(mount)) == 2 * FILES
            stats = root_stats(mount.path)["shared_cache"]
            # Redis sits at its limit: a small record may still squeeze in now and then.
            kept = len(server.records())
            assert stats["errors"] + kept == len(store.keys)
            assert stats["errors"] >= len(store.keys) // 2, "publishes were refused"
            assert len(_warnings(mount, "refused")) == 1
    finally:
        server.kill()


def test_password_comes_from_the_environment_never_the_url(store: Store, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.password = "s3cr3t-for-test"
    server.start()
    try:
        secret = {"DESFS_CACHE_SHARED_PASSWORD": server.password}
        with _host(store, tmp_path, "seed", server.url, env=secret) as seed:
            _walk(seed)
        with _host(store, tmp_path, "host", server.url, env=secret) as mount:
            _walk(mount)
            assert root_stats(mount.path)["shared_cache"]["hits"] == len(store.keys)
            assert server.password not in mount.log()
        with _host(store, tmp_path, "nopass", server.url) as mount:
            _walk(mount)  # Redis refuses unauthenticated calls: the store serves
            assert root_stats(mount.path)["shared_cache"]["hits"] == 0
    finally:
        server.kill()
    in_url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
    done = subprocess.run(
        [sys.executable, "-m", "desfs", "ls", f"s3://{BUCKET}", "--shared-cache", in_url],
        capture_output=True, text=True, timeout=60, env={**os.environ, **store.env},
    )  # fmt: skip
    assert done.returncode == 2
    assert "--shared-cache" in done.stderr and "cache.shared_password" in done.stderr
