"""The persistent index cache through real mounts: a remount over a warm `--cache-dir` reads
no footer or index from the store (counted on the server side by the proxy), a damaged
record is refetched with one warning, and a local container with a new size or mtime does
not use the record of its old self."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
from tests.support.mounting import Mounted, needs_fuse
from tests.support.s3proxy import S3Proxy
from tests.support.trees import random_files

pytestmark = [needs_fuse(), pytest.mark.s3]

BUCKET = "idxcache"
# Small enough that the bigger indices need a second round at a cold open.
WINDOW = ["--tail-window", "4KiB"]


@dataclass(frozen=True)
class Store:
    packed: Path  # the packed containers, as uploaded
    keys: tuple[str, ...]
    proxy: S3Proxy
    env: dict[str, str]


def _pack(root: Path, seed: int, count: int) -> Path:
    src = root / f"src-{seed}"
    random_files(src, count, seed, lambda i: f"d{i % 5}/file-{seed}-{i:04d}.txt", (10, 300))
    out = root / f"bucket-{seed}"
    pack_directory(src, out, PackOptions(Format.DESHEAD1, date(2024, 12, 3), shard_bits=2))
    pack_directory(src, out, PackOptions(Format.DES2, date(2024, 12, 4), shard_bits=4))
    return out


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer, s3_client: Any
) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("idxcache")
    packed = _pack(root, seed=1, count=1500)
    s3_client.create_bucket(Bucket=BUCKET)
    keys = tuple(upload_tree(s3_client, BUCKET, packed, ""))
    assert len(keys) == 4 + 16
    proxy = S3Proxy(moto_server.port).start()
    try:
        yield Store(packed, keys, proxy, {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url})
    finally:
        proxy.stop()


def _mount(
    source: str, tmp: Path, cache: Path, name: str, env: dict[str, str] | None = None
) -> Mounted:
    args = [*WINDOW, "--cache-dir", str(cache)]
    return Mounted(source, tmp / "mnt", tmp / f"{name}.log", args, env)


def _ls_r(mount: Mounted) -> str:
    return mount.run("ls", "-R", str(mount.path)).stdout.decode()


def _records(cache: Path) -> list[Path]:
    return sorted((cache / "index").glob("*.idx"))


def _object_gets(proxy: S3Proxy) -> list[str]:
    """Paths of every request that was not a LIST."""
    return [r.path for r in proxy.requests if r.kind != "list"]


def _damaged_warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "damaged record" in line]


def test_warm_remount_reads_no_index(store: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    store.proxy.reset_counts()
    with _mount(f"s3://{BUCKET}", tmp_path, cache, "cold", store.env) as mount:
        cold = _ls_r(mount)
    opened = {path.removeprefix(f"/{BUCKET}/") for path in _object_gets(store.proxy)}
    assert opened == set(store.keys), "the cold mount opens every container"
    assert len(_records(cache)) == len(store.keys)

    store.proxy.reset_counts()
    with _mount(f"s3://{BUCKET}", tmp_path, cache, "warm", store.env) as mount:
        warm = _ls_r(mount)
        assert _object_gets(store.proxy) == [], "a warm remount reads no footer or index"
        assert store.proxy.counts().get("list", 0) > 0
        # Reads still work from a container opened from its record.
        some = next(p for p in sorted(mount.path.rglob("*.txt")) if p.stat().st_size > 0)
        assert some.read_bytes() == _source_bytes(store, some.name)
    assert warm == cold
    assert cold.count("file-1-") == 2 * 1500


def _source_bytes(store: Store, name: str) -> bytes:
    [found] = list(store.packed.parent.glob(f"src-1/*/{name}"))
    return found.read_bytes()


def test_damaged_record_is_refetched_with_one_warning(store: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with _mount(f"s3://{BUCKET}", tmp_path, cache, "cold", store.env) as mount:
        cold = _ls_r(mount)
    victim = _records(cache)[7]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))

    store.proxy.reset_counts()
    with _mount(f"s3://{BUCKET}", tmp_path, cache, "damaged", store.env) as mount:
        again = _ls_r(mount)
        log = mount.log()
    refetched = set(_object_gets(store.proxy))
    assert len(refetched) == 1, refetched
    [key] = [path.removeprefix(f"/{BUCKET}/") for path in refetched]
    [warning] = _damaged_warnings(log)
    assert key in warning
    assert again == cold
    assert len(_records(cache)) == len(store.keys), "the refetched index is kept again"

    store.proxy.reset_counts()
    with _mount(f"s3://{BUCKET}", tmp_path, cache, "healed", store.env) as mount:
        assert _ls_r(mount) == cold
        assert _object_gets(store.proxy) == []
        assert _damaged_warnings(mount.log()) == []


def _store_stats(mount: Mounted) -> dict[str, int]:
    raw = mount.run("getfattr", "--only-values", "-n", "user.des.stats", str(mount.path)).stdout
    requests: dict[str, int] = json.loads(raw)["store"]["requests"]
    return requests


def test_local_container_with_new_mtime_or_size_is_reread(store: Store, tmp_path: Path) -> None:
    local = tmp_path / "local"
    shutil.copytree(store.packed, local)
    cache = tmp_path / "cache"
    with _mount(str(local), tmp_path, cache, "cold") as mount:
        cold = _ls_r(mount)
    assert len(_records(cache)) == len(store.keys)

    with _mount(str(local), tmp_path, cache, "warm") as mount:
        assert _ls_r(mount) == cold
        assert _store_stats(mount)["get_range"] == 0

    touched = local / "2024-12-03" / "2.des"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    other = _pack(tmp_path, seed=2, count=200)
    os.replace(other / "2024-12-03" / "1.des", local / "2024-12-03" / "1.des")
    with _mount(str(local), tmp_path, cache, "changed") as mount:
        shard = mount.path / "2024-12-03" / "1"
        names = subprocess.run(
            ["ls", "-R", str(shard)], capture_output=True, timeout=60, check=True
        ).stdout.decode()
        assert "file-2-" in names and "file-1-" not in names, "the old index was used"
        assert sorted(_ls_r(mount).splitlines()) != sorted(cold.splitlines())
        assert _store_stats(mount)["get_range"] > 0
    # Exactly the two changed containers were read again (each miss keeps a new record).
    assert len(_records(cache)) == len(store.keys) + 2
