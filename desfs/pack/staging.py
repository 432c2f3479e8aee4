"""File-system side of `desfs pack`: scanning the source tree and staging output files.

Every output file is written under a temporary name next to its final name, fsynced,
and renamed into place only by `Staging.commit()` once every file of the run is
complete; `Staging.abort()` removes whatever was staged. A crash therefore never
leaves a `.des` (or a `_bigFiles/` object) that looks finished but is not.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from desfs.errors import (
    AccessDenied,
    DesfsError,
    NotADirectory,
    NotFound,
    ObjectChanged,
    StorageError,
    UsageError,
)
from desfs.format.writer import copy_exact


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One regular file to pack: its entry name ("/"-separated relative path) and size."""

    name: str
    path: Path
    size: int
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class SourceTree:
    files: tuple[SourceFile, ...]  # sorted by name
    skipped: tuple[str, ...]  # names that are not regular files (links, devices, FIFOs)
    empty_dirs: tuple[str, ...] = ()  # directories with nothing in them: a container has none


def scan_source(root: Path) -> SourceTree:
    """Every regular file under `root`, without following symbolic links."""
    if not root.exists():
        raise NotFound(f"source directory {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectory(f"source {str(root)!r} is not a directory")
    files: list[SourceFile] = []
    skipped: list[str] = []
    empty: list[str] = []
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as listing:
            items = list(listing)
            if not items and prefix:
                empty.append(prefix.rstrip("/"))
            for item in items:
                name = _entry_name(prefix + item.name)
                if item.is_dir(follow_symlinks=False):
                    pending.append((Path(item.path), name + "/"))
                elif item.is_file(follow_symlinks=False):
                    info = item.stat(follow_symlinks=False)
                    files.append(SourceFile(name, Path(item.path), info.st_size, info.st_mtime_ns))
                else:
                    skipped.append(name)
    files.sort(key=lambda f: f.name)
    return SourceTree(tuple(files), tuple(sorted(skipped)), tuple(sorted(empty)))


def _entry_name(relative: str) -> str:
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError as exc:
        shown = os.fsencode(relative)
        raise UsageError(f"source file name {shown!r} is not valid UTF-8") from exc
    return relative


@contextmanager
def open_source(source: SourceFile) -> Iterator[BinaryIO]:
    """Open a planned source file, refusing anything that is no longer a regular file."""
    # O_NONBLOCK: a FIFO swapped in after the scan must not block the open.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(source.path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ObjectChanged(f"source {source.name!r} is no longer a regular file")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def as_desfs_error(exc: OSError) -> DesfsError:
    """The desfs error for an OS failure while packing, naming the file involved."""
    where = f"{exc.filename}: " if exc.filename else ""
    message = f"{where}{exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{message} (did a source file vanish while packing?)")
    if isinstance(exc, PermissionError):
        return AccessDenied(message)
    if exc.errno == errno.ELOOP:
        return ObjectChanged(f"{message} (a source file became a symbolic link)")
    return StorageError(message)


class Staging:
    """Output files of one pack run, kept under temporary names until `commit()`."""

    def __init__(self) -> None:
        self._temporary: set[Path] = set()
        self._pending: list[tuple[Path, Path]] = []
        self._finals: set[Path] = set()
        self._serial = 0

    @contextmanager
    def file(self, final: Path) -> Iterator[BinaryIO]:
        """An open temporary file that becomes `final` at commit, if the block succeeds."""
        temporary = self._temporary_path(final.parent, final.name)
        with self._open(temporary) as handle:
            yield handle
        self._stage(temporary, final)

    def copy_content_addressed(self, source: SourceFile, directory: Path) -> tuple[str, bool]:
        """Stage `source` as `directory/<sha256>`; returns the hash and whether it is new."""
        self._serial += 1
        temporary = self._temporary_path(directory, f"object-{self._serial}")
        digest = hashlib.sha256()
        with self._open(temporary) as handle, open_source(source) as reader:

            def sink(chunk: bytes) -> None:
                digest.update(chunk)
                handle.write(chunk)

            copy_exact(reader, source.size, sink)
        sha256 = digest.hexdigest()
        final = directory / sha256
        if final in self._finals:
            self._discard(temporary)
            return sha256, False
        self._stage(temporary, final)
        return sha256, True

    def commit(self) -> None:
        """Rename every staged file into place, in staging order, then sync directories."""
        for temporary, final in self._pending:
            os.replace(temporary, final)
            self._temporary.discard(temporary)
        for directory in sorted({final.parent for _, final in self._pending}):
            _fsync_directory(directory)
        self._pending.clear()
        self._finals.clear()

    def abort(self) -> None:
        """Remove every temporary file still on disk; never raises for a missing one."""
        for temporary in self._temporary:
            with suppress(FileNotFoundError):
                temporary.unlink()
        self._temporary.clear()
        self._pending.clear()
        self._finals.clear()

    def _stage(self, temporary: Path, final: Path) -> None:
        self._pending.append((temporary, final))
        self._finals.add(final)

    def _temporary_path(self, directory: Path, name: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{name}.tmp-{os.getpid()}"
        self._temporary.add(temporary)
        return temporary

    @contextmanager
    def _open(self, temporary: Path) -> Iterator[BinaryIO]:
        with open(temporary, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def _discard(self, temporary: Path) -> None:
        temporary.unlink()
        self._temporary.discard(temporary)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
