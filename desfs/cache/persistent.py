"""The persistent index cache: the bytes a container's index was parsed from, kept on disk.

Each record (`desfs.cache.records`) is one file named by a hash of (source, key, etag);
a damaged, truncated or foreign file is removed with one warning and the container is
read from the store again.

Writers fill a temporary file and rename it into place, so concurrent mounts on one host
only ever see complete records. The directory is bounded by a byte budget: a hit refreshes
the file's mtime, and eviction removes the oldest mtimes first. Every method blocks on disk
I/O (async callers use a worker thread) and may run in several threads at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from desfs.cache.records import CachedTail, decode_record, encode_record, record_name
from desfs.errors import FormatError, UsageError

log = logging.getLogger(__name__)

SUFFIX = ".idx"
TEMP_PREFIX = ".tmp-"
# A full directory scan after this many writes: other mounts write to it too.
RESCAN_EVERY = 64
# Eviction goes below the budget by this fraction, so it does not rerun on the next write.
LOW_WATER = 0.9
# A temporary file this old belongs to a writer that died.
STALE_TEMP_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class IndexStoreStats:
    hits: int
    misses: int
    discarded: int  # damaged records removed
    writes: int
    evictions: int
    bytes_estimate: int | None  # None until the first directory scan
    budget: int


@dataclass(frozen=True, slots=True)
class _Record:
    path: str
    mtime_ns: int
    size: int


class IndexStore:
    """Container tails on disk, keyed by (source, key, etag), at most `budget_bytes` in all."""

    def __init__(self, directory: Path, budget_bytes: int, source_id: str) -> None:
        if budget_bytes < 0:
            raise UsageError(f"index store budget must be >= 0 bytes, got {budget_bytes}")
        self.directory = directory.absolute()
        self._budget = budget_bytes
        self._source = source_id
        self._lock = threading.Lock()  # counters and the size estimate
        self._evicting = threading.Lock()  # one scan at a time per store
        self._estimate: int | None = None
        self._since_scan = 0
        self._hits = self._misses = self._discarded = self._writes = self._evictions = 0
        _prepare_directory(self.directory)

    def get(self, key: str, etag: str, size: int) -> CachedTail | None:
        """The record of this object, or None (missing, or damaged and now removed)."""
        path = self._path(key, etag)
        try:
            data, identity = _read(path)
        except FileNotFoundError:
            self._count_miss()
            return None
        except OSError as exc:
            log.warning("index cache: cannot read %s: %s", path, exc)
            self._count_miss()
            return None
        try:
            cached = decode_record(data, self._source, key, etag, size)
        except FormatError as exc:
            self._remove_damaged(path, identity, key, str(exc))
            return None
        now = time.time_ns()
        with contextlib.suppress(OSError):  # evicted meanwhile: the bytes are still good
            os.utime(path, ns=(now, now))
        with self._lock:
            self._hits += 1
        return cached

    def put(
        self, key: str, etag: str, size: int, tail: bytes, tail_start: int, head: bytes | None
    ) -> None:
        """Store the bytes of `[tail_start, size)` (and the head) for this object."""
        if tail_start < 0 or tail_start + len(tail) != size:
            raise FormatError(
                f"index cache: tail of {len(tail)} bytes at {tail_start} does not end at {size}"
            )
        record = encode_record(self._source, key, etag, size, tail, head)
        if len(record) > self._budget:
            log.debug("index cache: %s (%d bytes) exceeds the whole budget", key, len(record))
            return
        self._write(self._path(key, etag), record)
        with self._lock:
            self._writes += 1
            self._since_scan += 1
            if self._estimate is not None:
                self._estimate += len(record)
            due = (
                self._estimate is None
                or self._estimate > self._budget
                or self._since_scan >= RESCAN_EVERY
            )
        if due:
            self.evict()

    def discard(self, key: str, etag: str) -> None:
        """Remove a record its reader found unusable."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key, etag))

    def evict(self) -> None:
        """Scan the directory; remove the least recently used records while over budget."""
        if not self._evicting.acquire(blocking=False):
            return  # another thread of this store is scanning right now
        try:
            records = self._scan()
            total = sum(r.size for r in records)
            removed = 0
            if total > self._budget:
                target = int(self._budget * LOW_WATER)
                for record in sorted(records, key=lambda r: (r.mtime_ns, r.path)):
                    if total <= target:
                        break
                    total -= record.size
                    with contextlib.suppress(FileNotFoundError):  # another mount took it
                        os.unlink(record.path)
                        removed += 1
            with self._lock:
                self._estimate = total
                self._since_scan = 0
                self._evictions += removed
        finally:
            self._evicting.release()

    def statistics(self) -> IndexStoreStats:
        with self._lock:
            return IndexStoreStats(
                self._hits,
                self._misses,
                self._discarded,
                self._writes,
                self._evictions,
                self._estimate,
                self._budget,
            )

    def _path(self, key: str, etag: str) -> str:
        name = hashlib.sha256(record_name(self._source, key, etag)).hexdigest()
        return os.path.join(self.directory, name + SUFFIX)

    def _write(self, path: str, record: bytes) -> None:
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(record)
            now = time.time_ns()  # finer than the kernel's file clock, so LRU order holds
            os.utime(temp, ns=(now, now))
            # No fsync: a record torn by a crash fails its checksum and is refetched.
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _scan(self) -> list[_Record]:
        records: list[_Record] = []
        stale = time.time() - STALE_TEMP_SECONDS
        with os.scandir(self.directory) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                if entry.name.endswith(SUFFIX):
                    records.append(_Record(entry.path, info.st_mtime_ns, info.st_size))
                elif entry.name.startswith(TEMP_PREFIX) and info.st_mtime < stale:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return records

    def _count_miss(self) -> None:
        with self._lock:
            self._misses += 1

    def _remove_damaged(self, path: str, identity: tuple[int, int], key: str, why: str) -> None:
        log.warning("index cache: damaged record for %s discarded (%s): %s", key, path, why)
        with contextlib.suppress(OSError):
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == identity:  # not a fresh record another mount wrote
                os.unlink(path)
        with self._lock:
            self._discarded += 1
            self._misses += 1


def _prepare_directory(directory: Path) -> None:
    """Create the directory private to this user; refuse one that belongs to someone else."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise UsageError(f"cache directory {directory} is not a directory")
        if info.st_uid != os.geteuid():
            raise UsageError(f"cache directory {directory} belongs to uid {info.st_uid}")
        if stat.S_IMODE(info.st_mode) & 0o077:
            directory.chmod(0o700)  # others must not plant records
    except OSError as exc:
        raise UsageError(f"cache directory {directory}: {exc.strerror or exc}") from None


def _read(path: str) -> tuple[bytes, tuple[int, int]]:
    with open(path, "rb") as stream:
        info = os.fstat(stream.fileno())
        data = stream.read()
    return data, (info.st_dev, info.st_ino)
