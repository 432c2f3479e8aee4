"""The local object store: a moto server with the counting, latency-injecting proxy before it.

Both come from the test support. The proxy's handler writes a reply's head and body in
two sends; with Nagle's algorithm on, the client's delayed ACK then holds every GET with
a body for about 40 ms, which would turn the "0 ms" run into a 40 ms one. The bench sets
TCP_NODELAY on the proxy's sockets (the standard `disable_nagle_algorithm` switch).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.support import s3proxy
from tests.support.moto_server import MotoServer
from tests.support.s3proxy import RequestRecord, S3Proxy

HEADER_GET_MAX = 64  # a GET of at most this many bytes at offset 0 is a format header probe


@dataclass(frozen=True, slots=True)
class Store:
    moto: MotoServer
    proxy: S3Proxy

    def env(self) -> dict[str, str]:
        """AWS variables that send a client through the proxy."""
        return {**self.moto.env(), "AWS_ENDPOINT_URL": self.proxy.url}


# moto keeps objects above ~5 MiB in temporary files; dropping the page cache for a cold
# run would then make the store itself cold. Real object stores do not share our cache.
KEY_BUFFER = str(8 << 30)
CALIBRATION_GETS = 15


@contextmanager
def running_store() -> Iterator[Store]:
    s3proxy._ProxyHandler.disable_nagle_algorithm = True
    os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = KEY_BUFFER
    with MotoServer() as moto, S3Proxy(moto.port) as proxy:
        _quiet_resets(proxy)
        yield Store(moto, proxy)


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
    import boto3

    env = store.env()
    client = boto3.client(
        "s3",
        endpoint_url=store.proxy.url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
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
