"""S3Storage under faults injected by the proxy: bounded retries, exact request counts,
the right error for each failure, and no secret in any error or log record."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from desfs.errors import (
    AccessDenied,
    ObjectChanged,
    ObjectMissing,
    StorageError,
    StorageTimeout,
)
from desfs.settings.sections import S3Settings
from desfs.storage.s3 import S3Storage
from tests.contract.conftest import SOURCE_PREFIX, s3_settings
from tests.support.moto_server import MotoServer
from tests.support.s3proxy import S3Proxy

DATA = bytes(range(256)) * 64  # 16 KiB
FAKE_KEY_ID = "AKIDDESFSFAKEKEYID01"
FAKE_SECRET = "desfs-FAKE-secret-0b5c1e2d3f4a"
FAKE_TOKEN = "desfs-FAKE-session-token-9a8b7c"

pytestmark = [pytest.mark.s3, pytest.mark.timeout(60)]


def fast_settings(proxy: S3Proxy, bucket: str) -> S3Settings:
    return dataclasses.replace(
        s3_settings(proxy.url, bucket),
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=3,
        backoff_base=0.01,
        backoff_cap=0.02,
    )


@pytest.fixture
def obj(s3_client: Any, s3_bucket: str) -> str:
    s3_client.put_object(Bucket=s3_bucket, Key=SOURCE_PREFIX + "obj.des", Body=DATA)
    return "obj.des"


@pytest.fixture
def storage(proxy: S3Proxy, s3_bucket: str, obj: str) -> S3Storage:
    return S3Storage(fast_settings(proxy, s3_bucket))


def test_slowdown_twice_then_success(storage: S3Storage, proxy: S3Proxy, obj: str) -> None:
    proxy.fail_next(2, status=503, code="SlowDown")

    assert storage.read_range(obj, 100, 200, None) == DATA[100:200]

    assert [r.status for r in proxy.requests] == [503, 503, 206]
    snap = storage.counters.snapshot()
    assert snap.requests["get_range"] == 3 == proxy.counts()["get_range"]
    assert (snap.retries, snap.errors) == (2, 0)


def test_5xx_every_time_gives_storage_error_after_max_attempts(
    storage: S3Storage, proxy: S3Proxy, obj: str
) -> None:
    proxy.fail_next(10, status=500, code="InternalError")

    with pytest.raises(StorageError) as caught:
        storage.read_suffix(obj, 64)

    assert not isinstance(caught.value, StorageTimeout)
    message = str(caught.value)
    assert obj in message
    assert "desfs-test-" in message  # the bucket
    assert "InternalError" in message  # the last cause
    assert len(proxy.requests) == 3
    snap = storage.counters.snapshot()
    assert (snap.requests["get_range"], snap.retries, snap.errors) == (3, 2, 1)


def test_412_is_object_changed_without_retry(storage: S3Storage, proxy: S3Proxy, obj: str) -> None:
    proxy.fail_next(1, status=412, code="PreconditionFailed")

    with pytest.raises(ObjectChanged):
        storage.read_range(obj, 0, 10, "some-etag")

    assert [r.status for r in proxy.requests] == [412]
    snap = storage.counters.snapshot()
    assert (snap.retries, snap.errors) == (0, 1)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(403, "AccessDenied", AccessDenied), (404, "NoSuchKey", ObjectMissing)],
)
def test_4xx_is_mapped_without_retry(
    storage: S3Storage, proxy: S3Proxy, obj: str, status: int, code: str, error: type
) -> None:
    proxy.fail_next(1, status=status, code=code)

    with pytest.raises(error):
        storage.read_object(obj)

    assert len(proxy.requests) == 1
    assert storage.counters.snapshot().retries == 0


def test_server_gone_then_back(storage: S3Storage, proxy: S3Proxy, obj: str) -> None:
    assert storage.read_range(obj, 0, 1, None) == DATA[:1]  # a pooled connection exists
    proxy.stop()

    with pytest.raises(StorageError) as caught:
        storage.read_range(obj, 0, 10, None)

    assert not isinstance(caught.value, ObjectMissing)
    assert "after 3 attempts" in str(caught.value)
    snap = storage.counters.snapshot()
    assert (snap.retries, snap.errors) == (2, 1)

    proxy.start()  # same port: the store comes back, the same Storage works again
    assert storage.read_range(obj, 0, 10, None) == DATA[:10]


def test_connection_refused_counts_no_server_requests(
    proxy: S3Proxy, s3_bucket: str, obj: str
) -> None:
    settings = fast_settings(proxy, s3_bucket)
    proxy.stop()
    storage = S3Storage(settings)

    with pytest.raises(StorageError):
        storage.read_object(obj)

    snap = storage.counters.snapshot()
    assert (snap.total_requests, snap.retries, snap.errors) == (0, 2, 1)


def test_stall_beyond_read_timeout_is_retried_then_times_out(
    storage: S3Storage, proxy: S3Proxy, obj: str
) -> None:
    proxy.stall_next(3, seconds=3.0)

    with pytest.raises(StorageTimeout) as caught:
        storage.read_range(obj, 0, 100, None)

    assert obj in str(caught.value)
    assert len(proxy.requests) == 3
    snap = storage.counters.snapshot()
    assert (snap.requests["get_range"], snap.retries, snap.errors) == (3, 2, 1)


def test_one_stall_then_success(storage: S3Storage, proxy: S3Proxy, obj: str) -> None:
    proxy.stall_next(1, seconds=2.0)

    assert storage.read_suffix(obj, 100).data == DATA[-100:]
    assert storage.counters.snapshot().retries == 1


def test_truncated_body_is_retried(storage: S3Storage, proxy: S3Proxy, obj: str) -> None:
    proxy.truncate_next(1)

    blob = storage.read_object(obj)

    assert blob.data == DATA
    assert [r.bytes for r in proxy.requests] == [len(DATA) // 2, len(DATA)]
    assert storage.counters.snapshot().retries == 1


def test_truncated_body_every_time_is_an_error(
    storage: S3Storage, proxy: S3Proxy, obj: str
) -> None:
    proxy.truncate_next(3)

    with pytest.raises(StorageError):
        storage.read_range(obj, 0, 8000, None)

    assert len(proxy.requests) == 3


def test_connection_reset_is_retried(storage: S3Storage, proxy: S3Proxy, obj: str) -> None:
    proxy.reset_next(2)

    assert storage.read_range(obj, 10, 20, None) == DATA[10:20]
    assert storage.counters.snapshot().retries == 2


def test_latency_is_only_slower(storage: S3Storage, proxy: S3Proxy, obj: str) -> None:
    proxy.latency = 0.05

    assert storage.list_page("", "/", None).objects[0].key == obj
    assert storage.counters.snapshot().retries == 0


def test_416_on_an_empty_object_suffix_read(s3_client: Any, s3_bucket: str, proxy: S3Proxy) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key=SOURCE_PREFIX + "empty", Body=b"")
    storage = S3Storage(fast_settings(proxy, s3_bucket))
    proxy.fail_next(1, status=416, code="InvalidRange")

    blob = storage.read_suffix("empty", 4096)

    assert (blob.data, blob.size) == (b"", 0)
    assert blob.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert [(r.kind, r.status) for r in proxy.requests] == [("get_range", 416), ("get", 200)]
    assert storage.counters.snapshot().requests["get"] == 1


def test_secrets_never_leak(
    proxy: S3Proxy, s3_bucket: str, obj: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = dataclasses.replace(
        fast_settings(proxy, s3_bucket),
        access_key_id=FAKE_KEY_ID,
        secret_access_key=FAKE_SECRET,
        session_token=FAKE_TOKEN,
    )
    storage = S3Storage(settings)
    texts = [repr(settings), str(settings), repr(storage), storage.describe()]

    assert storage.read_range(obj, 0, 4, None) == DATA[:4]  # moto accepts any credentials
    proxy.fail_next(1, status=403, code="InvalidAccessKeyId")
    proxy.fail_next(3, status=503, code="SlowDown")
    for _ in range(2):
        with pytest.raises(StorageError) as caught:
            storage.read_object(obj)
        texts.append(str(caught.value))
    proxy.stop()
    with pytest.raises(StorageError) as caught:
        storage.list_page("", "/", None)
    texts.append(str(caught.value))
    texts.extend(r.getMessage() for r in caplog.records)

    assert any("retry in" in t for t in texts)  # the retry log lines were captured
    for text in texts:
        for secret in (FAKE_SECRET, FAKE_TOKEN, FAKE_KEY_ID):
            assert secret not in text


def test_environment_is_honoured(
    monkeypatch: pytest.MonkeyPatch, proxy: S3Proxy, s3_bucket: str, obj: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    storage = S3Storage(S3Settings(bucket=s3_bucket, prefix=SOURCE_PREFIX, addressing_style="path"))

    assert storage.read_suffix(obj, 5).data == DATA[-5:]
    assert proxy.url in storage.describe()
    assert proxy.counts() == {"get_range": 1}


def test_explicit_endpoint_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, proxy: S3Proxy, s3_bucket: str, obj: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing there
    storage = S3Storage(fast_settings(proxy, s3_bucket))

    assert storage.read_range(obj, 0, 3, None) == DATA[:3]


def test_service_specific_endpoint_variable(
    monkeypatch: pytest.MonkeyPatch, proxy: S3Proxy, s3_bucket: str, obj: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the S3 one wins
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    storage = S3Storage(S3Settings(bucket=s3_bucket, prefix=SOURCE_PREFIX, addressing_style="path"))

    assert storage.read_object(obj).data == DATA


def test_anonymous_requests_are_unsigned(
    s3_client: Any, proxy: S3Proxy, s3_bucket: str, obj: str
) -> None:
    key = SOURCE_PREFIX + "public.des"
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=DATA, ACL="public-read")
    settings = dataclasses.replace(
        fast_settings(proxy, s3_bucket), access_key_id=None, secret_access_key=None
    )
    storage = S3Storage(dataclasses.replace(settings, anonymous=True))

    assert storage.read_range("public.des", 1, 3, None) == DATA[1:3]
    with pytest.raises(AccessDenied):  # the private object needs a signature
        storage.read_range(obj, 1, 3, None)


def test_moto_server_restarts_on_the_same_port() -> None:
    server = MotoServer().start()
    try:
        port = server.port
        server.client().create_bucket(Bucket="before-restart")
        server.kill()
        assert not server.running
        server.restart()
        assert server.port == port
        assert server.client().list_buckets()["Buckets"] == []  # state lives in memory
    finally:
        server.stop()


def test_a_server_ignoring_range_never_yields_wrong_bytes(
    storage: S3Storage, proxy: S3Proxy, obj: str
) -> None:
    proxy.ignore_range_next(3)

    with pytest.raises(StorageError, match="Range"):
        storage.read_range(obj, 100, 200, None)  # a 200 with byte 0 onwards: refused
    with pytest.raises(StorageError):
        storage.read_suffix(obj, 100)  # the whole object where 100 bytes were asked for
    assert storage.read_range(obj, 0, len(DATA) + 5, None) == DATA  # 200 is the answer here

    assert [r.status for r in proxy.requests] == [200, 200, 200]
    assert storage.counters.snapshot().retries == 0
