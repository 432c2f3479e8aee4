"""Wiring a mount: from parsed flags and an opened source to FUSE operations and options."""

from __future__ import annotations

import argparse
import os
import time

from desfs.errors import UsageError
from desfs.fs.attributes import Ownership
from desfs.fs.filesystem import DEFAULT_INODE_LIMIT, DesFilesystem
from desfs.fuse.mount import MountOptions
from desfs.fuse.operations import FuseOperations
from desfs.sources import Source

DEFAULT_ENTRY_TTL = 86400.0  # shard contents never change


def build_operations(
    args: argparse.Namespace, source: Source
) -> tuple[FuseOperations, MountOptions]:
    if source.single is not None:
        raise UsageError(
            f"{args.source}: mount a directory or s3:// prefix, not a single container"
        )
    owner = Ownership(
        uid=args.uid if args.uid is not None else os.getuid(),
        gid=args.gid if args.gid is not None else os.getgid(),
        umask=args.umask if args.umask is not None else 0o022,
    )
    started = time.time()
    archive = source.archive

    def stats() -> dict[str, object]:
        reader = archive.reader.statistics()
        return {
            "source": archive.storage.describe(),
            "uptime_seconds": round(time.time() - started, 1),
            "store": archive.storage.counters.snapshot().as_dict(),
            "containers_open": len(archive.loader.opened()),
            "inodes": len(fs.inodes),
            "payload_cache_hits": reader.payload_hits,
            "payload_cache_misses": reader.payload_misses,
            "prefetch_bytes": reader.prefetch_bytes,
        }

    entry_ttl = args.entry_ttl if args.entry_ttl is not None else DEFAULT_ENTRY_TTL
    limit = args.max_inodes if args.max_inodes is not None else DEFAULT_INODE_LIMIT
    if limit < 1:
        raise UsageError(f"--max-inodes must be at least 1, not {limit}")
    fs = DesFilesystem(archive, owner, entry_ttl, stats, limit)
    options = MountOptions(
        mountpoint=os.path.abspath(args.mountpoint),
        fsname=f"desfs:{args.source}"[:200].replace(",", "_"),
        allow_other=bool(args.allow_other),
        allow_nonempty=bool(args.nonempty),
        max_requests=args.max_requests,
        read_ahead_kb=args.read_ahead_kb if args.read_ahead_kb is not None else 1024,
    )
    return FuseOperations(fs, owner.uid, owner.gid), options
