"""The Storage backend over a local directory, behaving like an S3 bucket.

Keys are `/`-separated paths relative to the root. A key that could name something
outside the root (absolute, `.`/`..`/empty components, NUL, or a symlink whose target
leaves the root) does not exist as far as this backend is concerned: reads raise
ObjectMissing and nothing outside the root is ever opened. Every operation is counted
as the request S3 would have needed for it, so request budgets can be checked against a
local source too.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from desfs.errors import ObjectChanged, ObjectMissing, StorageError, UsageError
from desfs.storage.base import Blob, ListPage
from desfs.storage.counters import RequestCounters, RequestKind
from desfs.storage.local_list import list_dir_page, local_etag

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 1000
# O_NONBLOCK: opening a FIFO planted in the tree must not block a worker thread forever.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class LocalStorage:
    """A read-only, S3-like view of one directory."""

    def __init__(
        self,
        root: Path,
        counters: RequestCounters | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise UsageError(f"page size must be at least 1, got {page_size}")
        real = Path(os.path.realpath(root))
        if not real.is_dir():
            raise UsageError(f"local source {root} is not a directory")
        self.root = real
        self.counters = counters if counters is not None else RequestCounters()
        self.page_size = page_size

    @property
    def page_cached(self) -> bool:
        return True

    def describe(self) -> str:
        return f"local:{self.root}"

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    @property
    def key_prefix(self) -> str:
        return ""

    def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage:
        return self._counted(
            RequestKind.LIST,
            lambda: list_dir_page(self.root, prefix, delimiter, token, self.page_size),
            lambda page: 0,
        )

    def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        if start < 0 or end <= start:
            raise UsageError(f"refusing empty or negative range [{start}, {end}) of {key!r}")
        self._check_key(key)
        return self._counted(
            RequestKind.GET_RANGE, lambda: self._pread_range(key, start, end, etag), len
        )

    def read_suffix(self, key: str, length: int) -> Blob:
        if length <= 0:
            raise UsageError(f"refusing suffix read of {length} bytes of {key!r}")
        self._check_key(key)
        return self._counted(RequestKind.GET_RANGE, lambda: self._read_blob(key, length), _blob_len)

    def read_object(self, key: str) -> Blob:
        self._check_key(key)
        return self._counted(RequestKind.GET, lambda: self._read_blob(key, None), _blob_len)

    def _counted(self, kind: RequestKind, call: Callable[[], T], size: Callable[[T], int]) -> T:
        began = time.monotonic()
        try:
            result = call()
        except StorageError:
            self.counters.record(kind, 0, time.monotonic() - began)
            self.counters.record_error()
            raise
        self.counters.record(kind, size(result), time.monotonic() - began)
        return result

    def _pread_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        fd = self._open(key)
        try:
            st = os.fstat(fd)
            current = local_etag(st)
            if etag is not None and etag != current:
                raise ObjectChanged(
                    f"{self.describe()}: {key!r} changed (ETag {current}, expected {etag})"
                )
            if start >= st.st_size:
                raise StorageError(
                    f"{self.describe()}: range [{start}, {end}) starts past the end "
                    f"of {key!r} ({st.st_size} bytes)"
                )
            # Never allocate for bytes the file does not have.
            return _pread_exact(fd, min(end, st.st_size) - start, start)
        finally:
            os.close(fd)

    def _read_blob(self, key: str, suffix: int | None) -> Blob:
        fd = self._open(key)
        try:
            st = os.fstat(fd)
            size = st.st_size
            start = 0 if suffix is None else max(0, size - suffix)
            data = _pread_exact(fd, size - start, start)
            return Blob(data, size, local_etag(st), st.st_mtime_ns / 1e9)
        finally:
            os.close(fd)

    def _open(self, key: str) -> int:
        path = self._resolve(key)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectMissing(f"{self.describe()}: no object {key!r}") from exc
        except OSError as exc:
            raise StorageError(f"{self.describe()}: cannot open {key!r}: {exc.strerror}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ObjectMissing(f"{self.describe()}: {key!r} is not a regular file")
        return fd

    def _check_key(self, key: str) -> None:
        """Keys no file can have are missing before any request is made (and counted)."""
        if not is_plain_key(key):
            raise ObjectMissing(f"{self.describe()}: {key!r} is not a key this store can hold")

    def _resolve(self, key: str) -> str:
        """The real path of `key`, guaranteed to lie inside the root."""
        self._check_key(key)
        real = os.path.realpath(os.path.join(self.root, key))
        if os.path.commonpath([real, self.root]) != str(self.root) or real == str(self.root):
            raise ObjectMissing(f"{self.describe()}: {key!r} leads outside the source")
        return real


def is_plain_key(key: str) -> bool:
    """True for a relative `/`-separated path with no empty, `.` or `..` component."""
    if not key or "\0" in key or key.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in key.split("/"))


def _blob_len(blob: Blob) -> int:
    return len(blob.data)


def _pread_exact(fd: int, count: int, offset: int) -> bytes:
    """Up to `count` bytes at `offset`; short only if the file shrank under us."""
    chunks: list[bytes] = []
    while count > 0:
        chunk = os.pread(fd, count, offset)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)
