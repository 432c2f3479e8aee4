"""Wiring a mount: from resolved settings and an opened source to FUSE operations and options."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial

from desfs.errors import UsageError
from desfs.fs.attributes import Ownership
from desfs.fs.filesystem import DesFilesystem
from desfs.fuse.mount import MountOptions
from desfs.fuse.operations import FuseOperations
from desfs.metrics import MetricsExporter, Snapshot
from desfs.settings_loader import Settings
from desfs.sources import Source

log = logging.getLogger(__name__)


def build_operations(
    settings: Settings, source: Source
) -> tuple[FuseOperations, MountOptions, list[Callable[[], Awaitable[None]]]]:
    if source.single is not None:
        raise UsageError(
            f"{settings.source}: mount a directory or s3:// prefix, not a single container"
        )
    if settings.mountpoint is None:
        raise UsageError("no mountpoint given")
    mount = settings.mount
    owner = Ownership(
        uid=mount.uid if mount.uid is not None else os.getuid(),
        gid=mount.gid if mount.gid is not None else os.getgid(),
        umask=mount.umask,
    )
    if mount.attr_ttl != mount.entry_ttl:
        # The filesystem model carries one kernel cache time per node for now.
        log.warning("mount.attr_ttl is not applied on its own yet; attributes use entry_ttl")
    started = time.time()
    archive = source.archive

    def snapshot() -> Snapshot:
        reader = archive.reader.statistics()
        return Snapshot(
            store=archive.storage.counters.snapshot(),
            caches=archive.reader.cache_statistics(),
            prefetch_bytes=reader.prefetch_bytes,
            delivered_bytes=reader.delivered_bytes,
            containers_open=len(archive.loader.opened()),
            inodes=len(fs.inodes),
        )

    def stats() -> dict[str, object]:
        now = snapshot()
        found: dict[str, object] = {
            "source": archive.storage.describe(),
            "uptime_seconds": round(time.time() - started, 1),
            "store": now.store.as_dict(),
            "containers_open": now.containers_open,
            "inodes": now.inodes,
            "read_bytes": now.delivered_bytes,
            "prefetch_bytes": now.prefetch_bytes,
        }
        for name, cache in now.caches.items():
            found[f"cache_{name}"] = {
                "hits": cache.hits,
                "misses": cache.misses,
                "evictions": cache.evictions,
                "bytes": cache.bytes,
            }
        if archive.index_store is not None:
            index = archive.index_store.statistics()
            found["index_store"] = {
                "hits": index.hits,
                "misses": index.misses,
                "bytes": index.bytes_estimate,
            }
        return found

    fs = DesFilesystem(archive, owner, mount.entry_ttl, stats, mount.max_inodes)
    options = MountOptions(
        mountpoint=os.path.abspath(settings.mountpoint),
        fsname=f"desfs:{settings.source}"[:200].replace(",", "_"),
        allow_other=mount.allow_other,
        allow_nonempty=mount.allow_nonempty,
        max_requests=mount.max_requests,
        shutdown_grace=mount.shutdown_grace,
        read_ahead_kb=mount.read_ahead_kb,
    )
    tasks: list[Callable[[], Awaitable[None]]] = []
    if settings.metrics.enabled:
        exporter = MetricsExporter(settings.metrics.address, settings.metrics.port)
        exporter.start()
        tasks.append(partial(exporter.publish_forever, snapshot))
    return FuseOperations(fs, owner.uid, owner.gid), options, tasks
