"""Indices larger than the index budget: kept in a file, mapped, not in memory.

A container whose parsed index (its index bytes, entry table and tree tables) would not
fit in `cache.index_cache_bytes` is still served, more slowly, without blowing the budget:
its bytes and tables are written to one file in a private spill directory, the file is
mapped read-only and unlinked at once (so it disappears with the mapping, even after a
crash), and the container is rebuilt over views of the mapping. Pages the process has
touched count in its RSS until `trim` hands them back to the page cache, which the engine
does at most once a second; the kernel reads them again from the page cache when needed.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import shutil
import tempfile
import time
import weakref
from array import array
from dataclasses import dataclass
from pathlib import Path

from desfs.errors import UsageError

log = logging.getLogger(__name__)

TRIM_SECONDS = 1.0
_ALIGN = 8


@dataclass(slots=True)
class SpilledTables:
    """Read-only views of one spilled container's bytes and tables."""

    mapping: mmap.mmap  # the index bytes are its first `tail_size` bytes (slices are bytes)
    tail_size: int
    starts: memoryview
    slots: memoryview
    hide: memoryview
    children: memoryview

    def trim(self) -> None:
        # Closed, or refused: only memory accounting suffers.
        with contextlib.suppress(OSError, ValueError):
            self.mapping.madvise(mmap.MADV_DONTNEED)


class SpillArea:
    """Where spilled indices live: `<cache_dir>/spill`, or a private temporary directory."""

    def __init__(self, cache_dir: Path | None) -> None:
        self._parent = cache_dir
        self._directory: Path | None = None
        self._last_trim = 0.0
        self.spilled = 0  # containers spilled so far

    def write(
        self,
        tail: bytes,
        starts: array[int],
        slots: object,
        hide: bytes | bytearray,
        children: array[int],
    ) -> SpilledTables:
        """Blocking (run it in a worker thread): write the tables, map them, unlink."""
        parts: list[memoryview] = [
            memoryview(tail).cast("B"),
            memoryview(starts).cast("B"),
            memoryview(slots).cast("B"),  # type: ignore[arg-type]
            memoryview(hide).cast("B"),
            memoryview(children).cast("B"),
        ]
        fd, path = tempfile.mkstemp(prefix="index-", dir=self._ensure_directory())
        try:
            offsets = []
            with os.fdopen(fd, "wb") as out:
                at = 0
                for part in parts:
                    pad = -at % _ALIGN
                    out.write(bytes(pad))
                    at += pad
                    offsets.append(at)
                    out.write(part)
                    at += len(part)
            with open(path, "rb") as stream:
                mapping = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        finally:
            os.unlink(path)
        view = memoryview(mapping)
        kinds = ("B", starts.typecode, memoryview(slots).format, "B", "q")  # type: ignore[arg-type]
        views = [
            view[at : at + len(part)].cast(kind)  # type: ignore[call-overload]
            for at, part, kind in zip(offsets, parts, kinds, strict=True)
        ]
        self.spilled += 1
        return SpilledTables(mapping, len(tail), *views[1:])

    def due(self) -> bool:
        """Whether mapped pages should be handed back now (at most once a second)."""
        now = time.monotonic()
        if now - self._last_trim < TRIM_SECONDS:
            return False
        self._last_trim = now
        return True

    def _ensure_directory(self) -> Path:
        if self._directory is None:
            if self._parent is not None:
                directory = self._parent / "spill"
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            else:
                directory = Path(tempfile.mkdtemp(prefix="desfs-spill-"))
                # Files are unlinked as soon as mapped; the empty directory goes at exit.
                weakref.finalize(self, shutil.rmtree, directory, True)
            if not directory.is_dir():
                raise UsageError(f"spill directory {directory} is not a directory")
            self._directory = directory
            log.info("indices over the index budget are mapped from files in %s", directory)
        return self._directory
