"""`desfs status`, `desfs ready` and `desfs warm`: operator tools that talk to a live mount.

Both go through the mount itself, as any program would: `status` reads the root's
`user.des.stats` xattr; `warm` walks a day (or shard) directory so the daemon loads every
index, and with `--data` reads every file in directory order, so the daemon's coalesced
prefetch fills its caches and the kernel's page cache (kept across opens).

A stopped or wedged daemon makes every call into its mount wait. So each call runs in a
daemon thread with a deadline: past it, the tool says the mount does not answer and
exits (code 7) instead of hanging with it.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TextIO, TypeVar

from desfs.errors import ExitCode, MountError, NotFound, UsageError

STATS_XATTR = "user.des.stats"
READ_CHUNK = 1024 * 1024
ANSWER_SECONDS = 10.0  # how long one call into the mount may take before we give up
T = TypeVar("T")


class NoAnswer(MountError):
    """The mount's daemon did not answer in time (stopped, or wedged)."""


class NotMounted(MountError):
    """Nothing serves there."""

    exit_code = ExitCode.NOT_MOUNTED


def bounded(call: Callable[[], T], what: str, seconds: float = ANSWER_SECONDS) -> T:
    """`call()`, or NoAnswer after `seconds`; the thread stays blocked in the kernel, but
    as a daemon thread it does not keep the process alive."""
    box: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            box.put((True, call()))
        except BaseException as exc:
            box.put((False, exc))

    threading.Thread(target=run, daemon=True).start()
    try:
        ok, value = box.get(timeout=seconds)
    except queue.Empty:
        raise NoAnswer(
            f"{what}: no answer within {seconds:g} s; is its daemon stopped (SIGSTOP) "
            "or stuck? (`desfs status` of the mount, the daemon's log)"
        ) from None
    if ok:
        return value  # type: ignore[return-value]
    assert isinstance(value, BaseException)
    raise value


def mount_root(path: Path) -> Path:
    """The desfs mountpoint that holds `path` (absolute)."""
    given = path
    current = Path(os.path.abspath(path))
    while not bounded(partial(os.path.ismount, current), f"{current}"):
        if current.parent == current:
            raise UsageError(f"{given} is not inside a desfs mount")
        current = current.parent
    try:
        bounded(lambda: os.getxattr(current, STATS_XATTR), f"the mount at {current}")
    except OSError:
        raise UsageError(
            f"{given} is not inside a desfs mount ({current} is another filesystem)"
        ) from None
    return current


def check_ready(mountpoint: Path | None, ready_file: Path | None, max_age: float) -> None:
    """Return when the mount answers (a round trip through the kernel to its daemon) and
    the ready file is fresh; raise otherwise (exit 8: not there, exit 7: no answer)."""
    if mountpoint is None and ready_file is None:
        raise UsageError("ready: name a MOUNTPOINT, a --file, or both")
    if ready_file is not None:
        try:
            age = time.time() - ready_file.stat().st_mtime
        except FileNotFoundError:
            raise NotMounted(f"{ready_file} does not exist: the mount is not serving") from None
        if age > max_age:
            raise NoAnswer(
                f"{ready_file} was last touched {age:.0f} s ago (over {max_age:g} s): the "
                "daemon is stopped or stuck"
            )
    if mountpoint is not None:
        path = Path(os.path.abspath(mountpoint))
        if not bounded(partial(os.path.ismount, path), str(path)):
            raise NotMounted(f"{path}: not mounted")
        try:
            bounded(lambda: os.getxattr(path, STATS_XATTR), f"the mount at {path}")
        except OSError as exc:
            raise NotMounted(f"{path}: not a desfs mount that answers ({exc.strerror})") from None


def read_stats(mountpoint: Path) -> dict[str, object]:
    root = mount_root(mountpoint)
    raw = bounded(lambda: os.getxattr(root, STATS_XATTR), f"the mount at {root}")
    found: dict[str, object] = json.loads(raw)
    return found


def print_status(stats: dict[str, object], out: TextIO) -> None:
    """The counters for people: aligned lines, sizes in KiB/MiB/GiB (`--json`: all of them)."""
    rows = [
        ("source", str(stats.get("source"))),
        ("daemon", f"pid {stats.get('pid')}, up {stats.get('uptime_seconds')} s"),
    ]
    store = stats.get("store")
    if isinstance(store, dict):
        requests = store.get("requests") or {}
        total = sum(requests.values()) if isinstance(requests, dict) else 0
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(requests.items()) if n)
        rows.append(("store requests", f"{total} ({kinds})" if kinds else "0"))
        rows.append(("store received", _size(store.get("bytes"))))
        rows.append(("retries, errors", f"{store.get('retries')}, {store.get('errors')}"))
    rows.append(("delivered to readers", _size(stats.get("read_bytes"))))
    rows.append(
        ("fetched ahead", f"{_size(stats.get('prefetched_bytes'))} (neighbours, readahead)")
    )
    rows.append(("containers open", str(stats.get("containers_open"))))
    rows.append(("inodes", str(stats.get("inodes"))))
    rows.append(("stale listings", str(stats.get("stale_listings", 0))))
    for key in sorted(stats):
        value = stats[key]
        if key.startswith("cache_") and isinstance(value, dict):
            rows.append((f"cache {key[6:]}", _cache_line(value)))
    index = stats.get("index_store")
    if isinstance(index, dict):
        rows.append(("index store", f"{index.get('hits')} hits, {index.get('misses')} misses, "
                     f"{_size(index.get('bytes'))} on disk"))  # fmt: skip
    zones = stats.get("zones")
    if isinstance(zones, dict):
        for name, zone in sorted(zones.items()):
            if isinstance(zone, dict) and isinstance(zone.get("requests"), dict):
                count = sum(zone["requests"].values())
                rows.append((f"zone {name}", f"{count} requests, {zone.get('errors')} errors, "
                             f"{_size(zone.get('bytes'))} received"))  # fmt: skip
    shared = stats.get("shared_cache")
    if isinstance(shared, dict):
        rows.append(("shared cache", f"{shared.get('hits')} hits, {shared.get('misses')} "
                     f"misses, {shared.get('errors')} errors, "
                     f"{shared.get('mean_latency_ms')} ms per round trip"))  # fmt: skip
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        out.write(f"{name + ':':<{width}}{value}\n")


def _cache_line(cache: dict[str, object]) -> str:
    return (
        f"{cache.get('hits')} hits, {cache.get('misses')} misses, "
        f"{cache.get('evictions')} evicted, {_size(cache.get('bytes'))} held"
    )


def _size(value: object) -> str:
    if not isinstance(value, int):
        return "unknown"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


@dataclass(slots=True)
class WarmProgress:
    shards: int = 0
    shards_done: int = 0
    files: int = 0
    bytes: int = 0
    errors: int = 0


def warm(path: Path, data: bool, jobs: int, out: TextIO = sys.stderr) -> WarmProgress:
    path = Path(os.path.abspath(path))
    root = mount_root(path)
    if not bounded(path.is_dir, f"{path}"):
        raise NotFound(f"{path} is not a directory")
    is_day = path.parent == root and _looks_like_day(path.name)
    shards = bounded(lambda: sorted(p for p in path.iterdir() if p.is_dir()), f"{path}")
    shards = shards if is_day else [path]
    progress = WarmProgress(shards=len(shards))
    work: queue.Queue[Path] = queue.Queue()
    for shard in shards:
        work.put(shard)
    done: queue.Queue[WarmProgress] = queue.Queue()
    for _ in range(max(1, min(jobs, len(shards)))):
        threading.Thread(target=_worker, args=(work, done, data), daemon=True).start()
    while progress.shards_done < len(shards):
        try:
            # A shard that makes no progress for this long means a daemon that stopped.
            one = done.get(timeout=ANSWER_SECONDS * 6)
        except queue.Empty:
            raise NoAnswer(f"warm {path}: the mount at {root} stopped answering") from None
        progress.shards_done += 1
        progress.files += one.files
        progress.bytes += one.bytes
        progress.errors += one.errors
        _show(progress, out)
    if out.isatty():
        out.write("\n")
    return progress


def _looks_like_day(name: str) -> bool:
    return len(name) == 10 and name[4] == "-" and name[7] == "-"


def _worker(work: queue.Queue[Path], done: queue.Queue[WarmProgress], data: bool) -> None:
    while True:
        try:
            shard = work.get_nowait()
        except queue.Empty:
            return
        done.put(_warm_shard(shard, data))


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
