"""Prometheus metrics on 127.0.0.1, built from snapshots the trio side publishes.

The HTTP server runs in prometheus-client's own thread. It never reads desfs's live
structures (those belong to the trio thread): a trio task publishes an immutable
`Snapshot` every `PUBLISH_SECONDS`, and each scrape turns the latest one into metrics.
So a scrape costs the filesystem nothing, and is at most that old.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import trio
from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from desfs.archive.engine import EngineStats
from desfs.cache.lru import LruStats
from desfs.cache.shared import SharedStats
from desfs.errors import UsageError
from desfs.storage.counters import LATENCY_BUCKETS, CounterSnapshot

log = logging.getLogger(__name__)

PUBLISH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    engine: EngineStats
    inodes: int  # nodes the kernel holds (0 where there is no kernel: the HTTP front end)


class MetricsExporter(Collector):
    def __init__(self, address: str, port: int) -> None:
        if address not in ("127.0.0.1", "::1", "localhost"):
            raise UsageError(f"metrics.address: {address!r} must be a loopback address")
        self._address = address
        self._port = port
        self._latest: Snapshot | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def start(self) -> None:
        try:
            start_http_server(self._port, addr=self._address, registry=self.registry)
        except OSError as exc:
            raise UsageError(
                f"--metrics-port: cannot listen on {self._address}:{self._port} "
                f"({exc.strerror or exc}); choose another port (metrics.port)"
            ) from None
        log.info("metrics on http://%s:%d/metrics", self._address, self._port)

    def publish(self, snapshot: Snapshot) -> None:
        self._latest = snapshot  # one reference assignment: atomic for the scraping thread

    async def publish_forever(self, take: Callable[[], Snapshot]) -> None:
        while True:
            self.publish(take())
            await trio.sleep(PUBLISH_SECONDS)

    def collect(self) -> Iterator[Metric]:
        found = self._latest
        if found is None:
            return
        engine = found.engine
        yield from _store_metrics(engine.store)
        yield from _cache_metrics(engine.caches)
        yield _counter(
            "desfs_prefetched_bytes",
            "Bytes the store sent ahead of reads (neighbours, readahead)",
            engine.prefetched_bytes,
        )
        yield _counter("desfs_read_bytes", "Bytes delivered to readers", engine.delivered_bytes)
        yield _gauge("desfs_containers_open", "Container indices in memory", engine.containers_open)
        yield _counter(
            "desfs_stale_listings",
            "Listings served past their TTL while the store did not answer",
            engine.stale_listings,
        )
        yield _gauge("desfs_inodes", "Inodes the kernel holds", found.inodes)
        if engine.shared is not None:
            yield from _shared_metrics(engine.shared)
        if engine.zones:
            yield from _zone_metrics(engine.zones)


def _zone_metrics(zones: dict[str, CounterSnapshot]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "desfs_zone_requests", "Requests sent to each DES zone", labels=["zone", "kind"]
    )
    errors = CounterMetricFamily(
        "desfs_zone_errors", "Calls to each DES zone that failed", labels=["zone"]
    )
    for name, shot in zones.items():
        for kind, count in shot.requests.items():
            requests.add_metric([name, kind], count)
        errors.add_metric([name], shot.errors)
    yield requests
    yield errors


def _shared_metrics(shared: SharedStats) -> Iterator[Metric]:
    yield _counter("desfs_shared_cache_hits", "Opens served by the shared cache", shared.hits)
    yield _counter(
        "desfs_shared_cache_misses", "Shared cache lookups that found nothing", shared.misses
    )
    yield _counter(
        "desfs_shared_cache_errors",
        "Shared cache calls that failed, timed out or met a damaged record",
        shared.errors,
    )
    yield _counter(
        "desfs_shared_cache_round_trips", "Shared cache calls answered", shared.round_trips
    )
    yield CounterMetricFamily(
        "desfs_shared_cache_seconds",
        "Time spent in answered shared cache calls",
        value=shared.latency_seconds,
    )


def _store_metrics(store: CounterSnapshot) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "desfs_store_requests", "Requests sent to the store", labels=["kind"]
    )
    for kind, count in store.requests.items():
        requests.add_metric([kind], count)
    yield requests
    yield _counter("desfs_store_bytes", "Bytes received from the store", store.bytes)
    yield _counter("desfs_store_retries", "Requests retried", store.retries)
    yield _counter("desfs_store_errors", "Store calls that failed", store.errors)
    cumulative, buckets = 0, []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), store.latency_buckets, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
    latency = HistogramMetricFamily(
        "desfs_store_request_seconds", "Store request latency", unit="seconds"
    )
    latency.add_metric([], buckets, sum_value=store.latency_seconds)
    yield latency


def _cache_metrics(caches: dict[str, LruStats]) -> Iterator[Metric]:
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
        "hits": CounterMetricFamily("desfs_cache_hits", "Cache hits", labels=["cache"]),
        "misses": CounterMetricFamily("desfs_cache_misses", "Cache misses", labels=["cache"]),
        "evictions": CounterMetricFamily(
            "desfs_cache_evictions", "Entries evicted", labels=["cache"]
        ),
        "bytes": GaugeMetricFamily("desfs_cache_bytes", "Bytes held", labels=["cache"]),
    }
    for name, stats in caches.items():
        for field, family in families.items():
            family.add_metric([name], getattr(stats, field))
    yield from families.values()


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
