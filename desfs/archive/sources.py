"""Opening a SOURCE argument: a local directory, `s3://bucket/prefix`, or one container file."""

from __future__ import annotations

import os
from pathlib import Path

from desfs.archive.catalog import ContainerRef
from desfs.archive.engine import Archive
from desfs.errors import UsageError
from desfs.namespace.layout import ContainerName, Layout, day_from_dir
from desfs.settings.sections import ArchiveSettings, S3Settings
from desfs.settings.zones import ZONES_SOURCE, Zones, looks_like_zones_file, read_zones_file
from desfs.storage.aio import AsyncStorage
from desfs.storage.base import Storage
from desfs.storage.local import LocalStorage
from desfs.storage.local_list import local_etag
from desfs.storage.open import open_storage
from desfs.storage.zoned import ZonedStore, zone_settings

LOCAL_CONCURRENCY = 8
SAMPLE = "@sample"  # the small archive bundled with desfs (README demo)


def sample_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "sample"


def open_archive(
    source: str, settings: ArchiveSettings, s3: S3Settings, zones: Zones | None = None
) -> Archive:
    """`zones`: the config's DES zones, used when `source` is @zones."""
    if source == SAMPLE:
        source = str(sample_dir())
    if source == ZONES_SOURCE:
        if zones is None:
            raise UsageError(f"source {ZONES_SOURCE}: the config has no 'zones:' key")
        return Archive(_zoned(zones, s3), settings)
    path = Path(source)
    if not source.startswith("s3://") and path.is_file():
        if looks_like_zones_file(path):
            return Archive(_zoned(read_zones_file(path), s3), settings)
        return _single_file(path, settings)
    storage: Storage = open_storage(source, s3)
    if source.startswith("s3://"):
        return Archive(AsyncStorage(storage, s3.max_connections, s3.request_deadline), settings)
    return Archive(AsyncStorage(storage, LOCAL_CONCURRENCY), settings)


def _zoned(zones: Zones, s3: S3Settings) -> ZonedStore:
    stores = {}
    for zone in zones.zones:
        own = zone_settings(zone, s3)
        storage = open_storage(f"s3://{own.bucket}/{own.prefix}", own)
        stores[zone.name] = AsyncStorage(storage, s3.max_connections, s3.request_deadline)
    return ZonedStore(zones, stores)


def _single_file(path: Path, settings: ArchiveSettings) -> Archive:
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: not readable")
    folder = path.resolve().parent
    if day_from_dir(folder.name) is not None:
        # In a day folder (YYYY-MM-DD/ or YYYYMMDD/): keys, external ones included, are
        # relative to the layout root above it, as the writer recorded them.
        root, key = folder.parent, f"{folder.name}/{path.name}"
    else:
        root, key = folder, path.name
    storage = LocalStorage(root)
    info = os.stat(path)
    name = ContainerName(key=key, day="", shard=path.stem, layout=Layout.DATAVISION)
    ref = ContainerRef(name, info.st_size, local_etag(info), info.st_mtime_ns)
    return Archive(AsyncStorage(storage, LOCAL_CONCURRENCY), settings, ref)
