"""Fixtures for the storage contract: fresh buckets, a counting proxy, and a `store`
fixture that gives the same harness over LocalStorage and S3Storage. The moto server,
its client and the clean AWS environment come from tests/conftest.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from desfs.settings.sections import S3Settings
from desfs.storage.base import Storage
from desfs.storage.local import LocalStorage
from desfs.storage.s3 import S3Storage
from tests.support.moto_server import DUMMY_KEY_ID, DUMMY_SECRET, REGION, MotoServer
from tests.support.rgw import ACCESS_KEY, SECRET_KEY, RgwServer
from tests.support.s3proxy import S3Proxy

RGW_KEYS = (ACCESS_KEY, SECRET_KEY)

SOURCE_PREFIX = "src/"


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    name = f"desfs-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[S3Proxy]:
    server = S3Proxy(moto_server.port).start()
    yield server
    server.stop()


def s3_settings(
    endpoint: str,
    bucket: str,
    prefix: str = SOURCE_PREFIX,
    keys: tuple[str, str] = (DUMMY_KEY_ID, DUMMY_SECRET),
) -> S3Settings:
    """Settings for tests: path-style through `endpoint`, small timeouts and backoff."""
    return S3Settings(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=keys[0],
        secret_access_key=keys[1],
        addressing_style="path",
        connect_timeout=2.0,
        read_timeout=5.0,
        max_attempts=3,
        backoff_base=0.01,
        backoff_cap=0.05,
    )


@dataclass
class StoreHarness:
    """One backend under test, with a way to put objects behind its back."""

    name: str
    make: Callable[[int], Storage]  # page size -> a fresh Storage over the same source
    put_many: Callable[[dict[str, bytes]], None]
    proxy: S3Proxy | None
    storage: Storage

    def put(self, key: str, data: bytes) -> None:
        self.put_many({key: data})

    def server_counts(self) -> dict[str, int] | None:
        return None if self.proxy is None else self.proxy.counts()

    def reset_counts(self) -> None:
        if self.proxy is not None:
            self.proxy.reset_counts()


def _local_harness(tmp_path: Path) -> StoreHarness:
    root = tmp_path / "source"
    root.mkdir()

    def put_many(items: dict[str, bytes]) -> None:
        for key, data in items.items():
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            old = path.stat().st_mtime_ns if path.exists() else 0
            path.write_bytes(data)
            # Coarse timestamps must not hide a rewrite from the size+mtime ETag.
            mtime = max(path.stat().st_mtime_ns, old + 1_000_000_000)
            os.utime(path, ns=(mtime, mtime))

    def make(page_size: int) -> Storage:
        return LocalStorage(root, page_size=page_size)

    return StoreHarness("local", make, put_many, None, make(1000))


def _s3_harness(
    client: Any, bucket: str, proxy: S3Proxy, keys: tuple[str, str], name: str
) -> StoreHarness:
    def put_many(items: dict[str, bytes]) -> None:
        def put(item: tuple[str, bytes]) -> None:
            client.put_object(Bucket=bucket, Key=SOURCE_PREFIX + item[0], Body=item[1])

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(put, items.items()))

    def make(page_size: int) -> Storage:
        return S3Storage(s3_settings(proxy.url, bucket, keys=keys), page_size=page_size)

    # Outside the source prefix: must never show up.
    client.put_object(Bucket=bucket, Key="elsewhere/decoy.des", Body=b"decoy")
    return StoreHarness(name, make, put_many, proxy, make(1000))


@pytest.fixture
def rgw_proxy(rgw_server: RgwServer) -> Iterator[S3Proxy]:
    server = S3Proxy(rgw_server.port).start()
    yield server
    server.stop()


@pytest.fixture(
    params=[
        "local",
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("rgw", marks=pytest.mark.s3),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreHarness:
    """The same contract over a directory, moto, and Ceph RGW (each S3 one behind the
    counting proxy)."""
    if request.param == "local":
        return _local_harness(tmp_path)
    if request.param == "rgw":
        client = request.getfixturevalue("rgw_client")
        bucket = f"desfs-test-{uuid.uuid4().hex[:16]}"
        client.create_bucket(Bucket=bucket)
        proxy = request.getfixturevalue("rgw_proxy")
        return _s3_harness(client, bucket, proxy, RGW_KEYS, "rgw")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    proxy = request.getfixturevalue("proxy")
    return _s3_harness(client, bucket, proxy, (DUMMY_KEY_ID, DUMMY_SECRET), "s3")
