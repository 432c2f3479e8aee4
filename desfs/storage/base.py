"""The storage interface every backend implements, and the values it returns.

Backends are synchronous and trio-free; `desfs.storage.aio.AsyncStorage` is the single
place where their blocking calls cross into worker threads. Keys are always relative to
the source root (the local directory, or the bucket plus prefix), use `/` as separator,
and never start with `/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from desfs.storage.counters import RequestCounters


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # S3 ETag without quotes; local: "<size>-<mtime_ns>"
    mtime_ns: int  # nanoseconds since the epoch, exact


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a delimited listing. `next_token` is None on the last page."""

    objects: tuple[ObjectInfo, ...]
    prefixes: tuple[str, ...]  # common prefixes, each ending with the delimiter
    next_token: str | None


@dataclass(frozen=True, slots=True)
class Blob:
    """Bytes read from an object, with the object's identity at the time of the read."""

    data: bytes
    size: int  # the whole object's size, not len(data)
    etag: str
    mtime: float


class Storage(Protocol):
    """A read-only view of one source root."""

    counters: RequestCounters

    @property
    def key_prefix(self) -> str:
        """Where the source root sits in its bucket ("" or ending with "/"; "" locally).
        Writers record some keys bucket-relative; this turns them source-relative."""
        ...

    @property
    def page_cached(self) -> bool:
        """Whether reads are served from this host's page cache (a local disk): a block
        cache in front of them would only copy what the kernel already keeps."""
        ...

    def describe(self) -> str:
        """A human description for logs and errors; never contains a secret."""
        ...

    def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage:
        """One page of keys under `prefix`, grouped at `delimiter` ("" for no grouping)."""
        ...

    def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        """Bytes `[start, end)`; `end > start` always. Raises ObjectChanged when `etag`
        is given and no longer matches. A short object gives a short answer only when
        `end` is past its end."""
        ...

    def read_suffix(self, key: str, length: int) -> Blob:
        """The last `length` bytes (the whole object when it is smaller), with its size
        and ETag, in one request."""
        ...

    def read_object(self, key: str) -> Blob:
        """The whole object (for small objects: sidecars, external payloads)."""
        ...
