"""DES zones as one source: several buckets or endpoints, one tree (`settings.zones`).

Each zone is an S3 backend of its own (client, endpoint, credentials, counters, connection
limit and deadline), and a failure domain of its own. Everything here runs on the trio
thread; the zones' AsyncStorage adapters do the blocking work in workers.

Keys are routed by the shard index they carry: a container and its sidecar are read from,
and listed only from, the zone whose range holds that index, so a shard misplaced in
another zone's bucket is never shown twice. A key without an index (an external payload, a
tombstone) is listed from the first zone only, and read from the first zone that holds it
(where it was found is remembered).

Listings are the zones' listings one after the other (the continuation token says which
zone is next). A zone that fails a listing is left out of it with a warning naming the
zone: the other zones' days and shards are still shown, and the failing zone's shards come
back with the first listing after it answers again. Reads of a failing zone's shards fail
with its name in the error; no other shard is touched.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cachetools import LRUCache

from desfs.errors import ObjectMissing, StorageError
from desfs.settings.sections import S3Settings
from desfs.settings.zones import Zone, Zones, shard_index_of_key
from desfs.storage.aio import AsyncStorage
from desfs.storage.base import Blob, ListPage
from desfs.storage.counters import CounterSnapshot, RequestCounters

log = logging.getLogger(__name__)

T = TypeVar("T")
FOUND_KEPT = 4096  # keys without an index: which zone held them


class ZoneCounters(RequestCounters):
    """The sum of every zone's counters (each zone's backend records into its own)."""

    def __init__(self, parts: dict[str, RequestCounters]) -> None:
        super().__init__()
        self.parts = parts

    def snapshot(self) -> CounterSnapshot:
        shots = [part.snapshot() for part in self.parts.values()]
        requests: dict[str, int] = {}
        for shot in shots:
            for kind, count in shot.requests.items():
                requests[kind] = requests.get(kind, 0) + count
        return CounterSnapshot(
            requests=requests,
            bytes=sum(s.bytes for s in shots),
            retries=sum(s.retries for s in shots),
            errors=sum(s.errors for s in shots),
            latency_seconds=sum(s.latency_seconds for s in shots),
            latency_buckets=tuple(map(sum, zip(*(s.latency_buckets for s in shots), strict=True))),
        )


class ZonedStore:
    """An AsyncStore over DES zones: each zone an AsyncStorage with its own limiter and
    deadline, so a zone that stalls holds only its own connections."""

    def __init__(self, zones: Zones, stores: dict[str, AsyncStorage]) -> None:
        """`stores`: one store per zone name."""
        self._zones = zones
        self._stores = stores
        self._counters = ZoneCounters({name: s.counters for name, s in stores.items()})
        self._order = [zone.name for zone in zones.zones]
        self._found: LRUCache[str, str] = LRUCache(maxsize=FOUND_KEPT)
        self._failing: set[str] = set()

    @property
    def counters(self) -> RequestCounters:
        return self._counters

    def zone_counters(self) -> dict[str, CounterSnapshot]:
        return {name: part.snapshot() for name, part in self._counters.parts.items()}

    @property
    def key_prefix(self) -> str:
        prefixes = {zone.prefix for zone in self._zones.zones}
        return prefixes.pop() if len(prefixes) == 1 else ""

    @property
    def page_cached(self) -> bool:
        return False  # zones are buckets

    def describe(self) -> str:
        shown = ", ".join(f"{z.name}=s3://{z.bucket}/{z.prefix}" for z in self._zones.zones)
        return f"zones {shown}"

    async def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage:
        first, inner = _split_token(token, len(self._order))
        failures: list[StorageError] = []
        for number in range(first, len(self._order)):
            name = self._order[number]
            try:
                page = await self._stores[name].list_page(prefix, delimiter, inner)
            except StorageError as exc:
                self._listing_failed(name, exc)
                failures.append(exc)
                inner = None
                continue
            self._answered(name)
            objects = tuple(o for o in page.objects if self._lists(number, o.key))
            return ListPage(objects, page.prefixes, self._next(number, page.next_token))
        if token is None and len(failures) == len(self._order):
            raise failures[-1]  # every zone failed: the listing as a whole did
        return ListPage((), (), None)

    async def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        return await self._route(key, lambda store: store.read_range(key, start, end, etag))

    async def read_suffix(self, key: str, length: int) -> Blob:
        return await self._route(key, lambda store: store.read_suffix(key, length))

    async def read_object(self, key: str) -> Blob:
        return await self._route(key, lambda store: store.read_object(key))

    async def _route(self, key: str, call: Callable[[AsyncStorage], Awaitable[T]]) -> T:
        index = shard_index_of_key(key)
        if index is None:
            return await self._search(key, call)
        zone = self._zones.zone_of(index)
        if zone is None:
            raise ObjectMissing(f"{self.describe()}: shard index {index} of {key!r} is in no zone")
        return await self._in_zone(zone.name, call)

    async def _search(self, key: str, call: Callable[[AsyncStorage], Awaitable[T]]) -> T:
        known = self._found.get(key)
        missing: ObjectMissing | None = None
        for name in [known] if known is not None else self._order:
            try:
                found = await self._in_zone(name, call)
            except ObjectMissing as exc:
                missing = exc
                continue
            self._found[key] = name
            return found
        raise ObjectMissing(f"{self.describe()}: no zone holds {key!r}") from missing

    async def _in_zone(self, name: str, call: Callable[[AsyncStorage], Awaitable[T]]) -> T:
        try:
            return await call(self._stores[name])
        except StorageError as exc:
            raise type(exc)(f"zone {name}: {exc}") from exc

    def _lists(self, number: int, key: str) -> bool:
        """Whether the zone at `number` is where `key` is listed from: the zone of its
        shard index, or the first zone for a key without one (never twice)."""
        index = shard_index_of_key(key)
        if index is None:
            return number == 0
        zone = self._zones.zone_of(index)
        return zone is not None and zone.name == self._order[number]

    def _next(self, number: int, inner: str | None) -> str | None:
        if inner is not None:
            return f"{number}:{inner}"
        return f"{number + 1}:" if number + 1 < len(self._order) else None

    def _listing_failed(self, name: str, exc: StorageError) -> None:
        if name in self._failing:
            return
        self._failing.add(name)
        log.warning(
            "zone %s: listing failed, its shards are left out until it answers: %s", name, exc
        )

    def _answered(self, name: str) -> None:
        if name in self._failing:
            self._failing.discard(name)
            log.warning("zone %s answers listings again", name)


def _split_token(token: str | None, zones: int) -> tuple[int, str | None]:
    if token is None:
        return 0, None
    number, _, inner = token.partition(":")
    if not number.isdigit() or int(number) >= zones:
        raise StorageError(f"not a zones listing token: {token!r}")
    return int(number), inner or None


def zone_settings(zone: Zone, base: S3Settings) -> S3Settings:
    """The S3 settings of one zone: its bucket, prefix, region, endpoint and profile over
    the `s3:` section's (timeouts, retries, TLS and pool size apply to every zone)."""
    own_profile = zone.profile is not None
    return dataclasses.replace(
        base,
        bucket=zone.bucket,
        prefix=zone.prefix,
        region=zone.region or base.region,
        endpoint_url=zone.endpoint_url or base.endpoint_url,
        profile=zone.profile or base.profile,
        # A zone with its own profile takes its credentials from there, not from s3:.
        access_key_id=None if own_profile else base.access_key_id,
        secret_access_key=None if own_profile else base.secret_access_key,
        session_token=None if own_profile else base.session_token,
    )
