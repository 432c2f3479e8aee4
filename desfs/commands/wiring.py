"""Wiring a mount: from resolved settings and an opened archive to FUSE operations."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial

from desfs.archive.engine import Archive
from desfs.commands.metrics import MetricsExporter, Snapshot
from desfs.errors import UsageError
from desfs.fs.attributes import Ownership
from desfs.fs.filesystem import DesFilesystem
from desfs.fuse.operations import FuseOperations
from desfs.fuse.session import MountTarget
from desfs.settings.loader import Settings

log = logging.getLogger(__name__)

Task = Callable[[], Awaitable[None]]


def build_operations(
    settings: Settings, archive: Archive
) -> tuple[FuseOperations, MountTarget, list[Task]]:
    if archive.single is not None:
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

    def snapshot() -> Snapshot:
        return Snapshot(archive.statistics(), fs.inode_count())

    def stats() -> dict[str, object]:
        return status_document(snapshot(), time.time() - started)

    fs = DesFilesystem(archive, owner, mount.entry_ttl, stats, mount.max_inodes)
    target = MountTarget(
        mountpoint=os.path.abspath(settings.mountpoint),
        fsname=f"desfs:{settings.source}"[:200].replace(",", "_"),
        settings=mount,
    )
    tasks: list[Task] = []
    if settings.metrics.enabled:
        exporter = MetricsExporter(settings.metrics.address, settings.metrics.port)
        exporter.start()
        tasks.append(partial(exporter.publish_forever, snapshot))
    return FuseOperations(fs, owner.uid, owner.gid), target, tasks


def status_document(now: Snapshot, uptime: float) -> dict[str, object]:
    """What `user.des.stats` on the root (and so `desfs status`) reports."""
    engine = now.engine
    found: dict[str, object] = {
        "source": engine.source,
        "pid": os.getpid(),
        "uptime_seconds": round(uptime, 1),
        "store": engine.store.as_dict(),
        "containers_open": engine.containers_open,
        "inodes": now.inodes,
        "read_bytes": engine.delivered_bytes,
        "prefetched_bytes": engine.prefetched_bytes,
        "stale_listings": engine.stale_listings,
    }
    for name, cache in engine.caches.items():
        found[f"cache_{name}"] = {
            "hits": cache.hits,
            "misses": cache.misses,
            "evictions": cache.evictions,
            "bytes": cache.bytes,
        }
    if engine.index_store is not None:
        index = engine.index_store
        found["index_store"] = {
            "hits": index.hits,
            "misses": index.misses,
            "bytes": index.bytes_estimate,
        }
    if engine.zones:
        found["zones"] = {name: shot.as_dict() for name, shot in engine.zones.items()}
    if engine.shared is not None:
        shared = engine.shared
        found["shared_cache"] = {
            "hits": shared.hits,
            "misses": shared.misses,
            "errors": shared.errors,
            "round_trips": shared.round_trips,
            "mean_latency_ms": round(1000 * shared.latency_seconds / max(1, shared.round_trips), 2),
        }
    return found
