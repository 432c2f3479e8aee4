"""`desfs serve` beside the mount, on the bench's own dataset, in one run.

    python -m bench.serve [--mode quick|full] [--latency 20] [--clients 16]

For each source (the packed DES2 directory, and the same containers on Ceph RGW behind the
counting proxy at `--latency` ms), cold (new processes; page cache dropped when root):

- small files: the W4 files (random, across the tree), read by `--clients` threads, each
  over one keep-alive HTTP connection from `desfs serve` or with open/read from the mount;
- a large file: the W5 file, read whole, streamed from `desfs serve` or read in 1 MiB
  reads from the mount.

Every body is checked against its sha256. Reported: requests (files) per second, MiB/s and
store GETs, and serve / mount ratios from the same run. Results go to
`bench/out/serve.json` and `bench/out/serve.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.artifacts import build, s3_prefix, upload, write_outputs
from bench.config import BUCKET, MODES
from bench.dataset import BenchFile
from bench.mounts import drop_caches
from bench.peers import Peer
from bench.s3env import Store, running_store
from bench.workloads import make_plan
from tests.support.moto_server import free_port
from tests.support.mounting import Mounted

CHUNK = 1 << 20
START_TIMEOUT = 60.0
NAMING = Peer("desfs-des2", "desfs", "local", naming="des2")  # only for its paths


@dataclass(frozen=True, slots=True)
class Row:
    source: str
    workload: str
    front: str  # serve | mount
    seconds: float
    files: int
    bytes: int
    gets: int  # store GETs (S3 only; 0 locally)

    @property
    def per_second(self) -> float:
        return self.files / self.seconds

    @property
    def mib_per_second(self) -> float:
        return self.bytes / self.seconds / (1 << 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--latency", type=float, default=20.0, help="ms per store request")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    config = MODES[args.mode]
    dataset = build(config, False, lambda message: print(message, file=sys.stderr))
    plan = make_plan(config, dataset)
    rows: list[Row] = []
    with running_store() as store, tempfile.TemporaryDirectory(prefix="desfs-serve-") as tmp:
        upload(dataset, store.server.client(), lambda message: None)
        sources = {
            "local": (str(dataset.root / "des2"), {}),
            f"S3 at {args.latency:g} ms": (f"s3://{BUCKET}/{s3_prefix('des2')}", store.env()),
        }
        for label, (source, env) in sources.items():
            store.proxy.latency = 0.0 if label == "local" else args.latency / 1000
            for front in ("serve", "mount"):
                rows.append(_run(store, Path(tmp), label, front, source, env, "small",
                                 lambda r: _small(r, plan.w4, args.clients)))  # fmt: skip
                rows.append(_run(store, Path(tmp), label, front, source, env, "large",
                                 lambda r: _large(r, plan.w5)))  # fmt: skip
    _report(rows, args)
    return 0


Reader = Callable[[str], bytes]  # a path relative to the root -> its bytes


def _run(
    store: Store, tmp: Path, label: str, front: str, source: str, env: dict[str, str],
    workload: str, body: Callable[[Reader], tuple[int, int]],
) -> Row:  # fmt: skip
    drop_caches()
    store.proxy.reset_counts()
    opener = _serving if front == "serve" else _mounted
    with opener(tmp, source, env) as read:
        store.proxy.reset_counts()
        began = time.monotonic()
        files, size = body(read)
        seconds = time.monotonic() - began
    counts = store.proxy.counts()
    gets = counts.get("get", 0) + counts.get("get_range", 0)
    print(f"{label} {front} {workload}: {seconds:.2f} s, {files} files", file=sys.stderr)
    return Row(label, workload, front, round(seconds, 3), files, size, gets)


class _serving:
    """`desfs serve` in the foreground; the reader fetches over HTTP (one connection per
    thread, kept alive)."""

    def __init__(self, tmp: Path, source: str, env: dict[str, str]) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "desfs", "serve", source,
                   "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        self.log = open(tmp / "serve.log", "ab")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        self.local = threading.local()

    def __enter__(self) -> Reader:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("desfs serve did not start") from None
                time.sleep(0.05)
        return self.read

    def read(self, path: str) -> bytes:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=120
            )
        connection.request("GET", "/" + path)
        reply = connection.getresponse()
        chunks = []
        while chunk := reply.read(CHUNK):
            chunks.append(chunk)
        if reply.status != 200:
            raise RuntimeError(f"GET /{path}: {reply.status}")
        return b"".join(chunks)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class _mounted:
    def __init__(self, tmp: Path, source: str, env: dict[str, str]) -> None:
        self.mount = Mounted(source, tmp / "mnt", tmp / "mount.log", [], env)

    def __enter__(self) -> Reader:
        self.mount.__enter__()
        root = self.mount.path

        def read(path: str) -> bytes:
            chunks = []
            with open(root / path, "rb", buffering=0) as handle:
                while chunk := handle.read(CHUNK):
                    chunks.append(chunk)
            return b"".join(chunks)

        return read

    def __exit__(self, *exc: object) -> None:
        self.mount.unmount()


def _small(read: Reader, files: tuple[BenchFile, ...], clients: int) -> tuple[int, int]:
    groups = [files[i::clients] for i in range(clients)]
    failures: list[str] = []
    sizes: list[int] = []

    def work(group: tuple[BenchFile, ...]) -> None:
        total = 0
        for item in group:
            data = read(NAMING.path(item))
            if hashlib.sha256(data).hexdigest() != item.sha256:
                failures.append(item.name)
            total += len(data)
        sizes.append(total)

    threads = [threading.Thread(target=work, args=(g,)) for g in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures or len(sizes) != clients:
        raise RuntimeError(f"wrong bytes or a failed reader: {failures[:5]}")
    return len(files), sum(sizes)


def _large(read: Reader, item: BenchFile) -> tuple[int, int]:
    data = read(NAMING.path(item))
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise RuntimeError(f"wrong bytes for {item.name}")
    return 1, len(data)


def _report(rows: list[Row], args: argparse.Namespace) -> None:
    lines = [
        f"{args.mode} dataset, {args.clients} clients for small files, cold, one run.",
        "",
        "| source | workload | desfs serve | mount | serve / mount | store GETs (serve, mount) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    by_key = {(r.source, r.workload, r.front): r for r in rows}
    for source, workload in dict.fromkeys((r.source, r.workload) for r in rows):
        serve, mount = by_key[(source, workload, "serve")], by_key[(source, workload, "mount")]
        if workload == "small":
            shown = (f"{serve.per_second:.0f} files/s", f"{mount.per_second:.0f} files/s")
            ratio = serve.per_second / mount.per_second
        else:
            shown = (f"{serve.mib_per_second:.0f} MiB/s", f"{mount.mib_per_second:.0f} MiB/s")
            ratio = serve.mib_per_second / mount.mib_per_second
        lines.append(
            f"| {source} | {workload} ({serve.files} files, {serve.bytes / 2**20:.1f} MiB) "
            f"| {shown[0]} | {shown[1]} | {ratio:.2f} | {serve.gets}, {mount.gets} |"
        )
    write_outputs("serve", "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    raise SystemExit(main())
