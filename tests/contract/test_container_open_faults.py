"""Opening a container while the store misbehaves: the failure keeps its desfs error class
(never an exception group from the concurrent first round), a store that did not answer
is asked again at the very next touch, and what says something lasting about the object
(it is not there) is remembered for the error TTL."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from desfs.archive.catalog import ContainerRef
from desfs.archive.containers import ContainerLoader
from desfs.errors import ObjectMissing, StorageError, StorageTimeout
from desfs.namespace.layout import ContainerName, Layout
from desfs.settings.sections import CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStorage
from desfs.storage.s3 import S3Storage
from tests.contract.conftest import SOURCE_PREFIX, s3_settings
from tests.support.builders import build_deshead1
from tests.support.s3proxy import S3Proxy

pytestmark = [pytest.mark.s3, pytest.mark.timeout(60)]

KEY = "2024-12-03/s0.des"
BODY = build_deshead1([(f"f{i}.bin", bytes([i]) * 30_000, None) for i in range(4)])
NAMES = [f"f{i}.bin".encode() for i in range(4)]


def _loader(proxy: S3Proxy, bucket: str) -> ContainerLoader:
    settings = dataclasses.replace(s3_settings(proxy.url, bucket), read_timeout=0.5, max_attempts=2)
    storage = AsyncStorage(S3Storage(settings), 4)
    # A long error TTL: whatever is remembered stays remembered for the whole test.
    return ContainerLoader(storage, CacheSettings(error_ttl=3600.0), LayoutSettings())


def _ref(key: str, size: int, etag: str) -> ContainerRef:
    return ContainerRef(ContainerName(key, "2024-12-03", "s0", Layout.DATAVISION), size, etag, 0)


@pytest.fixture
def stored(s3_client: Any, s3_bucket: str) -> ContainerRef:
    reply = s3_client.put_object(Bucket=s3_bucket, Key=SOURCE_PREFIX + KEY, Body=BODY)
    return _ref(KEY, len(BODY), reply["ETag"].strip('"'))


@pytest.mark.parametrize(
    ("fault", "error"),
    [("stall", StorageTimeout), ("fail", StorageError)],
    ids=["timeout", "http_500"],
)
async def test_a_store_that_did_not_answer_is_asked_again(
    proxy: S3Proxy, s3_bucket: str, stored: ContainerRef, fault: str, error: type[Exception]
) -> None:
    loader = _loader(proxy, s3_bucket)
    if fault == "stall":
        proxy.stall_next(2, seconds=2.0)
    else:
        proxy.fail_next(2, 500, "InternalError")
    with pytest.raises(error) as failed:
        await loader.load(stored)
    assert type(failed.value) is error  # the class itself, not a group around it
    container = await loader.load(stored)  # at once, not after the error TTL
    assert [entry.name for entry in container.index.entries] == NAMES


async def test_a_missing_container_is_remembered(
    proxy: S3Proxy, s3_bucket: str, s3_client: Any
) -> None:
    loader = _loader(proxy, s3_bucket)
    ref = _ref(KEY, len(BODY), "0123")
    with pytest.raises(ObjectMissing):
        await loader.load(ref)
    s3_client.put_object(Bucket=s3_bucket, Key=SOURCE_PREFIX + KEY, Body=BODY)
    proxy.reset_counts()
    with pytest.raises(ObjectMissing):
        await loader.load(ref)
    assert proxy.requests == [], "a remembered failure must not ask the store again"
