"""`desfs status MOUNTPOINT` and `desfs warm PATH`: operator tools that talk to a live mount.

Both go through the mount itself, as any program would: `status` reads the root's
`user.des.stats` xattr; `warm` walks a day (or shard) directory so the daemon loads every
index, and with `--data` reads every file in directory order, so the daemon's coalesced
prefetch fills its caches and the kernel's page cache (kept across opens).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from desfs.errors import NotFound, UsageError

STATS_XATTR = "user.des.stats"
READ_CHUNK = 1024 * 1024


def mount_root(path: Path) -> Path:
    """The desfs mountpoint that holds `path`."""
    current = path.resolve()
    while not os.path.ismount(current):
        if current.parent == current:
            raise UsageError(f"{path} is not inside a mount")
        current = current.parent
    try:
        os.getxattr(current, STATS_XATTR)
    except OSError:
        raise UsageError(f"{current} is not a desfs mount") from None
    return current


def read_stats(mountpoint: Path) -> dict[str, object]:
    root = mount_root(mountpoint)
    found: dict[str, object] = json.loads(os.getxattr(root, STATS_XATTR))
    return found


def print_status(stats: dict[str, object], out: TextIO) -> None:
    store = stats.get("store")
    out.write(f"source:           {stats.get('source')}\n")
    out.write(f"uptime:           {stats.get('uptime_seconds')} s\n")
    if isinstance(store, dict):
        requests = store.get("requests", {})
        parts = ", ".join(f"{k} {v}" for k, v in sorted(requests.items()))
        out.write(f"store requests:   {parts}\n")
        out.write(f"store bytes:      {store.get('bytes')}\n")
        out.write(f"retries, errors:  {store.get('retries')}, {store.get('errors')}\n")
    for key in sorted(stats):
        if key not in ("source", "uptime_seconds", "store"):
            out.write(f"{key + ':':<18}{stats[key]}\n")


@dataclass(slots=True)
class WarmProgress:
    shards: int = 0
    shards_done: int = 0
    files: int = 0
    bytes: int = 0
    errors: int = 0


def warm(path: Path, data: bool, jobs: int, out: TextIO = sys.stderr) -> WarmProgress:
    mount_root(path)
    if not path.is_dir():
        raise NotFound(f"{path} is not a directory")
    shards = sorted(p for p in path.iterdir() if p.is_dir()) if _is_day(path) else [path]
    progress = WarmProgress(shards=len(shards))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for done in pool.map(lambda shard: _warm_shard(shard, data), shards):
            progress.shards_done += 1
            progress.files += done.files
            progress.bytes += done.bytes
            progress.errors += done.errors
            _show(progress, out)
    if out.isatty():
        out.write("\n")
    return progress


def _is_day(path: Path) -> bool:
    return len(path.name) == 10 and path.name[4] == "-" and path.parent == mount_root(path)


def _warm_shard(shard: Path, data: bool) -> WarmProgress:
    found = WarmProgress()
    try:
        for file in _files(shard):
            found.files += 1
            if data:
                found.bytes += _read_all(file)
    except OSError as exc:
        found.errors += 1
        print(f"desfs warm: {shard}: {exc.strerror}", file=sys.stderr)
    return found


def _files(directory: Path) -> Iterator[Path]:
    # Directory order is container order: reading in it lets the daemon coalesce GETs.
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _files(Path(entry.path))
            else:
                yield Path(entry.path)


def _read_all(file: Path) -> int:
    total = 0
    with open(file, "rb", buffering=0) as stream:
        while chunk := stream.read(READ_CHUNK):
            total += len(chunk)
    return total


def _show(progress: WarmProgress, out: TextIO) -> None:
    if not out.isatty():
        return  # a progress bar is for people; logs and pipes get the summary line only
    mib = progress.bytes / (1024 * 1024)
    out.write(
        f"\rwarm: {progress.shards_done}/{progress.shards} shards, "
        f"{progress.files} files, {mib:.1f} MiB, {progress.errors} errors"
    )
    out.flush()
