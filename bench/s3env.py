"""The local object store: Ceph RGW (default) or a moto server, with the counting,
latency-injecting proxy before it, and the store's own floor measured through that proxy.

All of it comes from the test support. The proxy's handler writes a reply's head and body in
two sends; with Nagle's algorithm on, the client's delayed ACK then holds every GET with
a body for about 40 ms, which would turn the "0 ms" run into a 40 ms one. The bench sets
TCP_NODELAY on the proxy's sockets (the standard `disable_nagle_algorithm` switch).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tests.support import s3proxy
from tests.support.moto_server import MotoServer
from tests.support.rgw import RgwServer, rgw_missing
from tests.support.s3proxy import RequestRecord, S3Proxy

HEADER_GET_MAX = 64  # a GET of at most this many bytes at offset 0 is a format header probe


class Server(Protocol):
    port: int

    def env(self) -> dict[str, str]: ...

    def client(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Store:
    server: Server
    proxy: S3Proxy
    kind: str  # "rgw" or "moto"

    def env(self) -> dict[str, str]:
        """AWS variables that send a client through the proxy."""
        return {**self.server.env(), "AWS_ENDPOINT_URL": self.proxy.url}

    def client(self) -> Any:
        """A boto3 client that goes through the proxy (so it pays its latency)."""
        import boto3

        env = self.env()
        return boto3.client(
            "s3",
            endpoint_url=self.proxy.url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )


# moto keeps objects above ~5 MiB in temporary files; dropping the page cache for a cold
# run would then make the store itself cold. Real object stores do not share our cache.
KEY_BUFFER = str(8 << 30)
CALIBRATION_GETS = 15


STORES = ("rgw", "moto")


@contextmanager
def running_store(kind: str = "rgw") -> Iterator[Store]:
    s3proxy._ProxyHandler.disable_nagle_algorithm = True
    if kind == "moto":
        os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = KEY_BUFFER
        with MotoServer() as moto, S3Proxy(moto.port) as proxy:
            _quiet_resets(proxy)
            yield Store(moto, proxy, kind)
        return
    reason = rgw_missing()
    if reason is not None:
        raise RuntimeError(reason)
    with (
        tempfile.TemporaryDirectory(prefix="desfs-bench-rgw-") as where,
        RgwServer(Path(where)) as rgw,
        S3Proxy(rgw.port) as proxy,
    ):
        _quiet_resets(proxy)
        yield Store(rgw, proxy, kind)


def _quiet_resets(proxy: S3Proxy) -> None:
    """A peer killed mid-request resets its connection: not worth a traceback on stderr."""
    server = proxy._server
    if server is None:
        return
    default = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)

    server.handle_error = handle_error  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """What one workload run asked of the store."""

    total: int
    get: int  # GETs of object bytes (whole or ranged)
    head: int
    list: int
    other: int
    bytes: int  # body bytes sent to the client
    open_gets: int  # suffix GETs and small header GETs (container opens)
    data_gets: int  # the other GETs


def summarize(records: list[RequestRecord]) -> RequestSummary:
    gets = [r for r in records if r.kind in ("get", "get_range")]
    opens = [r for r in gets if _is_open(r.range)]
    return RequestSummary(
        total=len(records),
        get=len(gets),
        head=sum(r.kind == "head" for r in records),
        list=sum(r.kind == "list" for r in records),
        other=sum(r.kind == "other" for r in records),
        bytes=sum(r.bytes for r in records),
        open_gets=len(opens),
        data_gets=len(gets) - len(opens),
    )


def _is_open(range_: str | None) -> bool:
    if range_ is None or not range_.startswith("bytes="):
        return False
    spec = range_[len("bytes=") :]
    if spec.startswith("-"):
        return True
    start, _, end = spec.partition("-")
    return start == "0" and end.isdigit() and int(end) < HEADER_GET_MAX


def calibrate(store: Store, bucket: str, keys: dict[str, str]) -> dict[str, float]:
    """Milliseconds per ranged 4 KiB GET through the proxy at 0 ms, by object (median).

    moto reads a whole object to answer a range of it, so its time per GET grows with the
    object's size; this is the store's own cost, not the latency the proxy adds.
    """
    client = store.client()
    store.proxy.latency = 0.0
    found: dict[str, float] = {}
    for label, key in keys.items():
        times = []
        for index in range(CALIBRATION_GETS):
            started = time.perf_counter()
            reply = client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={index * 4096}-{index * 4096 + 4095}"
            )
            reply["Body"].read()
            times.append(time.perf_counter() - started)
        found[label] = 1000 * statistics.median(times)
    store.proxy.reset_counts()
    return found


@dataclass(frozen=True, slots=True)
class Floor:
    """What the store gives a bare client through the proxy at one latency: the physical
    limit any mount on this machine works under."""

    latency_ms: int
    small_gets_per_s: float  # one thread, 4 KiB ranges of small objects, one after another
    stream_mib_per_s: float  # one GET of a whole big object
    parallel_mib_per_s: float  # the same object in 8 MiB ranges, PARALLEL_GETS at once


FLOOR_GETS = 200
PARALLEL_GETS = 8
PART = 8 << 20


def measure_floor(
    store: Store, bucket: str, small_keys: list[str], big_key: str, latency_ms: int
) -> Floor:
    client = store.client()
    store.proxy.latency = latency_ms / 1000
    try:
        count = max(20, FLOOR_GETS // (1 + latency_ms // 5))
        began = time.perf_counter()
        for index in range(count):
            key = small_keys[index % len(small_keys)]
            client.get_object(Bucket=bucket, Key=key, Range="bytes=0-4095")["Body"].read()
        small = count / (time.perf_counter() - began)
        size = client.head_object(Bucket=bucket, Key=big_key)["ContentLength"]
        began = time.perf_counter()
        client.get_object(Bucket=bucket, Key=big_key)["Body"].read()
        stream = size / (time.perf_counter() - began) / (1 << 20)
        parts = [(start, min(size, start + PART) - 1) for start in range(0, size, PART)]
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=PARALLEL_GETS) as pool:
            list(pool.map(lambda p: _ranged(client, bucket, big_key, p), parts))
        parallel = size / (time.perf_counter() - began) / (1 << 20)
    finally:
        store.proxy.latency = 0.0
        store.proxy.reset_counts()
    return Floor(latency_ms, round(small, 1), round(stream, 1), round(parallel, 1))


def _ranged(client: Any, bucket: str, key: str, part: tuple[int, int]) -> int:
    reply = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={part[0]}-{part[1]}")
    return len(reply["Body"].read())
