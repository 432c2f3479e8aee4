"""The shared index cache: index records on Redis (or Valkey), for a fleet of hosts.

A level behind the in-memory and on-disk index caches. A host that opens a container
publishes the bytes its index was parsed from (the same checksummed record the disk cache
keeps, `cache.records`); every other host then opens that container with one Redis round
trip and no store request. Records are keyed by source, container key and ETag, so
nothing ever needs invalidating: a replaced container has another ETag. Two hosts that
open a container at the same moment may both read the store and both publish; the
records are the same bytes.

Redis never costs correctness and never costs much time: every call waits at most
`cache.shared_timeout`; a failure (down, slow, full, restarted, refused) logs one warning
per outage, is counted, and sends the open to the store; after one, Redis is left alone for
`BACKOFF_SECONDS`. A damaged record, or one for another object, is refused by the record
check and never used. Every method blocks (callers use a worker thread).

The password, if Redis wants one, is `cache.shared_password`: a secret, so never a flag,
and in the URL it is refused; it comes from DESFS_CACHE_SHARED_PASSWORD or a config file
of mode 0600.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from desfs.cache.records import CachedTail, decode_record, encode_record, record_name
from desfs.errors import FormatError

log = logging.getLogger(__name__)

PREFIX = b"desfs:index:1:"
BACKOFF_SECONDS = 5.0
REFUSAL_QUIET_SECONDS = 60.0  # a Redis that refuses writes (full) is named once a minute


@dataclass(frozen=True, slots=True)
class SharedStats:
    hits: int
    misses: int
    errors: int  # calls that failed or were refused (damaged records included)
    latency_seconds: float  # all round trips together
    round_trips: int


class SharedIndexCache:
    def __init__(
        self, url: str, source: str, timeout: float, record_max: int, password: str | None
    ) -> None:
        # redis costs ~60 ms to import: only a mount with a shared cache pays it.
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._refusal: type[Exception] = redis.ResponseError  # Redis answered: no
        self._failure: type[Exception] = redis.RedisError
        self._client = redis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # the store is the retry; the client's own would wait
            health_check_interval=0,
        )
        self._where = url.split("@")[-1]  # never a credential in a log line
        self._source = source
        self._record_max = record_max
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._outage = False
        self._refusal_quiet_until = 0.0
        self._hits = self._misses = self._errors = self._trips = 0
        self._latency = 0.0

    def get(self, key: str, etag: str, size: int) -> CachedTail | None:
        found = self._call(lambda: self._fetch(self._key(key, etag)))
        if not isinstance(found, tuple):
            self._count(hit=False)
            return None
        length, data = found
        if length == 0:
            self._count(hit=False)
            return None
        if length > self._record_max:
            # Never read a value bigger than any record desfs writes: whoever put it there,
            # it must not size this host's memory.
            log.warning("shared index cache: %d-byte value for %s ignored", length, key)
            self._count(hit=False, error=True)
            return None
        try:
            record = decode_record(data, self._source, key, etag, size)
        except FormatError as exc:
            log.warning("shared index cache: damaged record for %s ignored: %s", key, exc)
            self._count(hit=False, error=True)
            return None
        self._count(hit=True)
        return record

    def put(
        self, key: str, etag: str, size: int, tail: bytes, tail_start: int, head: bytes | None
    ) -> None:
        """Publish the bytes `[tail_start, size)` (and the head) of this object."""
        if tail_start + len(tail) != size:
            return
        record = encode_record(self._source, key, etag, size, tail, head)
        if len(record) > self._record_max:
            return
        self._call(lambda: self._client.set(self._key(key, etag), record))

    def _fetch(self, name: bytes) -> tuple[int, bytes]:
        """The value's length and at most `record_max` bytes of it, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        pipe.strlen(name)
        pipe.getrange(name, 0, self._record_max - 1)
        length, data = pipe.execute()
        return int(length), bytes(data)

    def statistics(self) -> SharedStats:
        with self._lock:
            return SharedStats(self._hits, self._misses, self._errors, self._latency, self._trips)

    def _key(self, key: str, etag: str) -> bytes:
        return PREFIX + hashlib.sha256(record_name(self._source, key, etag)).hexdigest().encode()

    def _call(self, call: Callable[[], object]) -> object:
        if time.monotonic() < self._down_until:
            return None
        began = time.monotonic()
        try:
            result = call()
        except self._refusal as exc:
            # Redis answered, with a refusal (full under maxmemory noeviction, a command
            # renamed away): count it and warn, but keep asking.
            self._refused(exc)
            return None
        except (self._failure, OSError) as exc:
            self._failed(exc)
            return None
        with self._lock:
            self._trips += 1
            self._latency += time.monotonic() - began
            if self._outage:
                self._outage = False
                log.warning("shared index cache %s answers again", self._where)
        return result

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._errors += 1
            self._down_until = time.monotonic() + BACKOFF_SECONDS
            first = not self._outage
            self._outage = True
        if first:
            log.warning(
                "shared index cache %s: %s: %s; opening from the store, asking again in %.0f s",
                self._where,
                type(exc).__name__,
                exc,
                BACKOFF_SECONDS,
            )

    def _refused(self, exc: Exception) -> None:
        with self._lock:
            self._errors += 1
            now = time.monotonic()
            due = now >= self._refusal_quiet_until
            if due:
                self._refusal_quiet_until = now + REFUSAL_QUIET_SECONDS
        if due:
            log.warning("shared index cache %s refused a call: %s", self._where, exc)

    def _count(self, hit: bool, error: bool = False) -> None:
        with self._lock:
            if hit:
                self._hits += 1
            else:
                self._misses += 1
            if error:
                self._errors += 1
