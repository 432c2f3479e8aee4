"""The other stores beside DES, on the bench's own small files, in one run.

    python -m bench.stores [--mode quick|full] [--latency 20]

The dataset's small files are written four ways: the DES2 containers of the main
benchmark, datas3t2 (a dataset per day, a datarange per shard), one s4db store (keys are
the files' paths, 1,000 records per data file) and one ConduitFlatFileDB data directory
(the files as BLOBs, data files of 64 MiB, frames of 256 KiB). desfs mounts each from the
local directory and from Ceph RGW behind the counting proxy at `--latency` ms, cold (new
mount; page cache dropped when root), and runs:

- open: `find` over the whole mount (every index the store has, opened);
- W3: every small file of one shard, in order (Conduit: each BLOB by its DataLocation);
- W4: the benchmark's random small files across the tree, one reader.

Every file is checked against its sha256. Reported: seconds, files/s, store requests, and
each store / DES2 from the same run. Results go to `bench/out/stores.json` and `.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.artifacts import build, write_outputs
from bench.config import MODES, MiB
from bench.dataset import BenchFile, Dataset
from bench.mounts import drop_caches
from bench.peers import Peer
from bench.s3env import Store, running_store
from bench.tools import install_apt
from bench.workloads import W3_SHARD, make_plan
from tests.support.moto_server import upload_tree
from tests.support.mounting import Mounted
from tests.support.store_writers import write_conduit, write_datarange, write_s4db

BUCKET = "desfs-bench-stores"
STORES = ("des2", "datas3t2", "s4db", "conduit")
DES2 = Peer("desfs-des2", "desfs", "local", naming="des2")  # only for its paths
CONDUIT_FILE = 64 * MiB


@dataclass(frozen=True, slots=True)
class Where:
    """Where a bench file is in one store's mount: a path, and for a Conduit BLOB the
    byte range of that file which holds it."""

    path: str
    start: int = 0
    end: int = -1  # -1: the whole file


Layout = dict[str, Where]  # BenchFile.path -> where


@dataclass(frozen=True, slots=True)
class Row:
    source: str
    store: str
    workload: str
    seconds: float
    files: int
    requests: int  # every store request (S3 only; 0 locally)

    @property
    def per_second(self) -> float:
        return self.files / self.seconds


def write_stores(dataset: Dataset, root: Path) -> dict[str, Layout]:
    """The small files in every store's layout; DES2 is the main benchmark's packing."""
    small = dataset.small
    layouts: dict[str, Layout] = {"des2": {f.path: Where(DES2.path(f)) for f in small}}
    datas3t2: Layout = {}
    first = 0
    for day, shard in sorted({(f.day, f.shard) for f in small}):
        files = dataset.shard_files(day, shard)
        items = [(f.name.rpartition(".")[2], (dataset.tree / f.path).read_bytes()) for f in files]
        shown = write_datarange(root / "datas3t2", day, first, items)
        for f, path in zip(files, shown, strict=True):
            datas3t2[f.path] = Where(path)
        first += len(files)
    layouts["datas3t2"] = datas3t2
    # Keys put in name order, as a writer copying a tree would: W3 reads them so.
    ordered = sorted(small, key=lambda f: f.path)
    write_s4db(root / "s4db", {f.path: (dataset.tree / f.path).read_bytes() for f in ordered})
    layouts["s4db"] = {f.path: Where(f.path) for f in small}
    layouts["conduit"] = _write_conduit(dataset, root / "conduit")
    return layouts


def _write_conduit(dataset: Dataset, root: Path) -> Layout:
    layout: Layout = {}
    batch: list[BenchFile] = []
    number = 0

    def flush() -> None:
        nonlocal number
        blobs = [(dataset.tree / f.path).read_bytes() for f in batch]
        name = f"data_{number:08d}.dat.zst"
        for f, (start, end) in zip(batch, write_conduit(root, number, blobs), strict=True):
            layout[f.path] = Where(name, start, end)
        number += 1
        batch.clear()

    size = 0
    for item in sorted(dataset.small, key=lambda f: f.path):
        batch.append(item)
        size += item.size
        if size >= CONDUIT_FILE:
            flush()
            size = 0
    if batch:
        flush()
    return layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stores", description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--latency", type=float, default=20.0, help="ms per store request")
    args = parser.parse_args(argv)
    config = MODES[args.mode]
    install_apt(lambda message: print(message, file=sys.stderr))  # the dataset's squashfs
    dataset = build(config, False, lambda message: print(message, file=sys.stderr))
    plan = make_plan(config, dataset)
    workloads = {"open": (), "W3": plan.w3, "W4": plan.w4}
    rows: list[Row] = []
    with running_store() as store, tempfile.TemporaryDirectory(prefix="desfs-stores-") as tmp:
        written = Path(tmp) / "stores"
        layouts = write_stores(dataset, written)
        client = store.server.client()
        client.create_bucket(Bucket=BUCKET)
        sources: dict[str, dict[str, tuple[str, dict[str, str]]]] = {"local": {}, "s3": {}}
        for name in STORES:
            local = dataset.root / "des2" if name == "des2" else written / name
            upload_tree(client, BUCKET, local, f"{name}/")
            sources["local"][name] = (str(local), {})
            sources["s3"][name] = (f"s3://{BUCKET}/{name}", store.env())
        for label, by_store in sources.items():
            shown = "local" if label == "local" else f"S3 at {args.latency:g} ms"
            store.proxy.latency = 0.0 if label == "local" else args.latency / 1000
            for name, (source, env) in by_store.items():
                for workload, files in workloads.items():
                    body = partial(_read, files=files, layout=layouts[name])
                    rows.append(_run(store, Path(tmp), shown, name, source, env, workload, body))
    _report(rows, args)
    return 0


def _run(
    store: Store, tmp: Path, label: str, name: str, source: str, env: dict[str, str],
    workload: str, body: Callable[[Path], int],
) -> Row:  # fmt: skip
    drop_caches()
    with Mounted(source, tmp / "mnt", tmp / f"{name}.log", [], env) as mount:
        if workload != "open":
            _find(mount.path)  # the indices are open: W3 and W4 time the reads alone
        store.proxy.reset_counts()
        began = time.monotonic()
        files = _find(mount.path) if workload == "open" else body(mount.path)
        seconds = time.monotonic() - began
        requests = sum(store.proxy.counts().values())
    print(f"{label} {name} {workload}: {seconds:.2f} s, {files} files", file=sys.stderr)
    return Row(label, name, workload, round(seconds, 3), files, requests)


def _find(mnt: Path) -> int:
    listed = subprocess.run(
        ["find", str(mnt), "-type", "f"], capture_output=True, check=True, timeout=600
    ).stdout
    return listed.count(b"\n")


def _read(mnt: Path, files: tuple[BenchFile, ...], layout: Layout) -> int:
    for item in files:
        where = layout[item.path]
        fd = os.open(mnt / where.path, os.O_RDONLY)
        try:
            if where.end < 0:
                data = _whole(fd)
            else:
                data = os.pread(fd, where.end - where.start, where.start)
        finally:
            os.close(fd)
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise RuntimeError(f"wrong bytes for {item.path} in {where}")
    return len(files)


def _whole(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _report(rows: list[Row], args: argparse.Namespace) -> None:
    lines = [
        f"{args.mode} dataset, small files, cold, one reader, one run. `open` is a `find` "
        f"over the whole mount; W3 is the shard {W3_SHARD[0]}/{W3_SHARD[1]} in order; W4 "
        "the benchmark's random files. Ratio: the store's speed / DES2's (`open`: DES2's "
        "seconds / the store's; W3, W4: files/s).",
        "",
        "| source | workload | store | seconds | files/s (`open`: files listed) | requests "
        "| vs DES2 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    base = {(r.source, r.workload): r for r in rows if r.store == "des2"}
    for row in rows:
        des2 = base[(row.source, row.workload)]
        # `open` lists different numbers of files (a Conduit file is a data file): by time.
        opening = row.workload == "open"
        ratio = des2.seconds / row.seconds if opening else row.per_second / des2.per_second
        rate = f"{row.files} files" if opening else f"{row.per_second:.0f}"
        lines.append(
            f"| {row.source} | {row.workload} | {row.store} | {row.seconds:.2f} "
            f"| {rate} | {row.requests} | {ratio:.2f} |"
        )
    write_outputs("stores", "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    raise SystemExit(main())
