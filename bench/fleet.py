"""The fleet row: k mounts of one S3 source walking the same day cold, with and without the
shared index cache on Redis.

    python -m bench.fleet [--mounts 4] [--shards-bits 8] [--files 12000] [--latency 20]

One day of DES2 containers (2**bits shards) sits in moto behind the counting proxy (at
`--latency` ms per request). Each mount is a `desfs mount` daemon standing for one host;
each walker (a child process per mount) goes through the day's shards in order and reads
the first byte of the first file of each, timing every shard from the start of the walk.
Three arrangements, each from a cold start (new daemons, an empty Redis, page cache
dropped when root):

- `alone`: no shared cache, all k mounts walk at once;
- `shared, together`: the shared cache, all k at once (concurrent first opens may all go
  to the store: that is the worst case for it);
- `shared, after one`: the shared cache, one mount walks first, then the other k-1 at once
  (the usual fleet: a host that got there first).

Reported: store GETs (LISTs apart), and the median and worst time to the first byte of a
shard, with ratios against `alone` from the same run. Results go to
`bench/out/fleet.json` and `bench/out/fleet.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bench.mounts import drop_caches
from bench.s3env import Store, running_store
from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.moto_server import upload_tree
from tests.support.mounting import Mounted
from tests.support.redis_server import RedisServer
from tests.support.trees import random_files

BUCKET = "desfs-fleet"
DAY = date(2025, 6, 1)
WALK_TIMEOUT = 600.0
OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True, slots=True)
class Row:
    arrangement: str
    mounts: int  # mounts whose walk is measured
    gets: int  # store GETs (object bytes) during the measured walks
    lists: int
    ttfb_median_ms: float  # time to the first byte of a shard, from the walk's start
    ttfb_worst_ms: float
    wall_s: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--mounts", type=int, default=4)
    parser.add_argument("--shard-bits", type=int, default=8)
    parser.add_argument("--files", type=int, default=12000)
    parser.add_argument("--latency", type=float, default=20.0, help="ms per store request")
    parser.add_argument("--walk", help=argparse.SUPPRESS)  # a walker child: the day's path
    args = parser.parse_args(argv)
    if args.walk:
        print(json.dumps(_walk(Path(args.walk))))
        return 0
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="desfs-fleet-") as scratch:
        rows = _run(Path(scratch), args)
    _report(rows, args)
    return 0


def _run(scratch: Path, args: argparse.Namespace) -> list[Row]:
    packed = _pack(scratch, args.files, args.shard_bits)
    with running_store() as store:
        client = store.server.client()
        client.create_bucket(Bucket=BUCKET)
        upload_tree(client, BUCKET, packed, "")
        store.proxy.latency = args.latency / 1000
        redis = RedisServer(scratch / "redis").start()
        try:
            k = args.mounts
            return [
                _arrangement(store, scratch, "alone", None, [k]),
                _arrangement(store, scratch, "shared, together", redis, [k]),
                _arrangement(store, scratch, "shared, after one", redis, [1, k - 1]),
            ]
        finally:
            redis.kill()


def _scan_name(i: int) -> str:
    return f"batch{i % 20:02d}/scan-{i:06d}.bin"


def _pack(scratch: Path, count: int, bits: int) -> Path:
    src = scratch / "src"
    random_files(
        src, count, 20250601, lambda i: f"batch{i % 20:02d}/scan-{i:06d}.bin", (200, 12000)
    )
    out = scratch / "packed"
    pack_directory(src, out, PackOptions(Format.DES2, DAY, shard_bits=bits))
    return out


def _arrangement(
    store: Store, scratch: Path, name: str, redis: RedisServer | None, waves: list[int]
) -> Row:
    if redis is not None:
        redis.restart()  # an empty shared cache
    drop_caches()
    extra = [] if redis is None else ["--shared-cache", redis.url]
    total = sum(waves)
    mounts = [
        Mounted(
            f"s3://{BUCKET}", scratch / f"{name}-{i}".replace(" ", "").replace(",", ""),
            scratch / f"{name}-{i}.log".replace(" ", "").replace(",", ""), extra, store.env(),
        )
        for i in range(total)
    ]  # fmt: skip
    for mount in mounts:
        mount.__enter__()
    try:
        measured: list[dict[str, Any]] = []
        started_at = 0
        for number, size in enumerate(waves):
            store.proxy.reset_counts()
            began = time.monotonic()
            results = _walk_all(mounts[started_at : started_at + size])
            wall = time.monotonic() - began
            counts = store.proxy.counts()
            started_at += size
            if number == len(waves) - 1:
                measured = results
                gets = counts.get("get", 0) + counts.get("get_range", 0)
                lists = counts.get("list", 0)
        ttfb = [t for result in measured for t in result["ttfb_ms"]]
        return Row(
            name, len(measured), gets, lists, round(statistics.median(ttfb), 1),
            round(max(ttfb), 1), round(wall, 2),
        )  # fmt: skip
    finally:
        for mount in mounts:
            mount.cleanup()


def _walk_all(mounts: list[Mounted]) -> list[dict[str, Any]]:
    day = DAY.isoformat()
    here = Path(__file__).resolve().parent.parent
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", "--walk", str(mount.path / day)],
            stdout=subprocess.PIPE,
            cwd=here,
        )
        for mount in mounts
    ]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=WALK_TIMEOUT)
        if child.returncode != 0:
            raise RuntimeError(f"a walker failed ({child.returncode})")
        results.append(json.loads(out))
    return results


def _walk(day: Path) -> dict[str, Any]:
    """The first byte of the first file of every shard, in shard order, as a batch job
    that looks at each shard once would."""
    began = time.monotonic()
    ttfb = []
    for shard in sorted(os.listdir(day)):
        first = _first_file(day / shard)
        with open(first, "rb") as handle:
            handle.read(1)
        ttfb.append(1000 * (time.monotonic() - began))
    return {"ttfb_ms": ttfb}


def _first_file(directory: Path) -> Path:
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_file():
            return Path(entry.path)
        if entry.is_dir():
            return _first_file(Path(entry.path))
    raise FileNotFoundError(f"no file under {directory}")


def _report(rows: list[Row], args: argparse.Namespace) -> None:
    base = rows[0]
    lines = [
        f"k = {args.mounts} mounts, one day of {2**args.shard_bits} DES2 containers "
        f"({args.files} files), {args.latency:g} ms per store request.",
        "",
        "| arrangement | mounts measured | store GETs | LISTs | first byte of a shard, "
        "median | worst | GETs vs alone | median vs alone |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        per_mount = row.gets / row.mounts
        base_per_mount = base.gets / base.mounts
        lines.append(
            f"| {row.arrangement} | {row.mounts} | {row.gets} | {row.lists} | "
            f"{row.ttfb_median_ms:.0f} ms | {row.ttfb_worst_ms:.0f} ms | "
            f"{per_mount / base_per_mount:.2f} per mount | "
            f"{row.ttfb_median_ms / base.ttfb_median_ms:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    (OUT / "fleet.md").write_text(text)
    (OUT / "fleet.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
