"""Opening a SOURCE argument: a local directory, `s3://bucket/prefix`, or one container file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from desfs.config import ArchiveSettings
from desfs.errors import UsageError
from desfs.fs.archive import Archive
from desfs.fs.catalog import ContainerRef
from desfs.namespace.layout import ContainerName, Layout
from desfs.storage.aio import AsyncStorage
from desfs.storage.base import Storage
from desfs.storage.local import LocalStorage
from desfs.storage.open import open_storage
from desfs.storage.s3_settings import S3Settings

LOCAL_CONCURRENCY = 8
SAMPLE = "@sample"  # the small archive bundled with desfs (README demo)


@dataclass(frozen=True, slots=True)
class Source:
    """An opened source; `single` is set when SOURCE named one container file."""

    archive: Archive
    single: ContainerRef | None = None


def sample_dir() -> Path:
    return Path(__file__).resolve().parent / "sample"


def open_source(source: str, settings: ArchiveSettings, s3: S3Settings) -> Source:
    if source == SAMPLE:
        source = str(sample_dir())
    path = Path(source)
    if not source.startswith("s3://") and path.is_file():
        return _single_file(path, settings)
    storage: Storage = open_storage(source, s3)
    limit = s3.max_connections if source.startswith("s3://") else LOCAL_CONCURRENCY
    return Source(Archive(AsyncStorage(storage, limit), settings))


def _single_file(path: Path, settings: ArchiveSettings) -> Source:
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: not readable")
    storage = LocalStorage(path.resolve().parent)
    info = os.stat(path)
    key = path.name
    name = ContainerName(key=key, day="", shard=path.stem, layout=Layout.DATAVISION)
    ref = ContainerRef(name, info.st_size, f"{info.st_size}-{info.st_mtime_ns}", info.st_mtime)
    return Source(Archive(AsyncStorage(storage, LOCAL_CONCURRENCY), settings), ref)
