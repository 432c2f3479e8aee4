"""Load through real mounts: sixteen readers at once over thousands of files, on a local
source and on S3 (moto), with every byte checked and the daemon's memory bounded; and
readers stopped (SIGSTOP, later SIGCONT) or killed (SIGKILL) in the middle of a read.

Each reader is a process of its own (`tests.support.readers`) that reads whole files and
compares their sha256 with the source's. The daemon runs with small budgets, and its
peak resident set (VmHWM) must stay under

    BOUND = block cache + index cache + prefetch budget + READERS x prefetch cap
            + decoder windows + FIXED

Two terms are not budgets of desfs's own: a reader walking a shard in order may have one
widened GET (up to the prefetch cap) in flight. The live decoders of large compressed
entries (`desfs.archive.decoded`) keep their windows within `cache.decoder_bytes` (64 MiB),
or one decoder alone when its window is larger. FIXED (128 MiB) covers the rest:
the interpreter with its imports (35 MiB idle on a local source, 60 MiB with boto3 on
S3), connection buffers, and what glibc's per-thread malloc arenas keep of the worker
threads' freed memory (MALLOC_ARENA_MAX=2 lowers the S3 peak by 10-50 MiB). Measured
here: peaks of 150-160 MiB locally and 165-205 MiB over S3; with an unbounded block
cache, 315 and 365 MiB. The soak variants also require the peak to stay flat over their second half.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from desfs.archive.decoded import decoder_cost
from desfs.format.model import Codec, Entry
from desfs.settings.sections import CacheSettings
from tests.support import readers
from tests.support.builders import build_des2, build_deshead1
from tests.support.moto_server import MotoServer, upload_tree
from tests.support.mounting import Mounted, needs_fuse
from tests.support.s3proxy import S3Proxy

pytestmark = needs_fuse()

KiB = 1024
MiB = 1024 * KiB
BUCKET = "load"
DATAVISION_DAY = "2024-12-03"  # YYYY-MM-DD/<shard>.des, DESHEAD1, stored
FLAT_DAY = "2024-12-04"  # YYYYMMDD_<HEX>_0000.des, DES2, zstd
SHARDS = 4
FILES_PER_SHARD = 600
BIG_PER_SHARD = 2
BIG_SIZE = 8 * MiB

READERS = 16
SECONDS = 15.0
SOAK_SECONDS = 300.0
BLOCK_CACHE = 16 * MiB
INDEX_CACHE = 8 * MiB
PREFETCH_BUDGET = 16 * MiB
PREFETCH_CAP = 1 * MiB
FIXED = 128 * MiB
DECODERS = max(
    CacheSettings().decoder_bytes, decoder_cost(Entry(b"", 0, BIG_SIZE, 0, 0, Codec.ZSTD))
)
BOUND = BLOCK_CACHE + INDEX_CACHE + PREFETCH_BUDGET + READERS * PREFETCH_CAP + DECODERS + FIXED
FLAT_SLACK = 32 * MiB  # growth of the peak allowed over a soak's second half
BUDGETS = [
    f"--cache-size={BLOCK_CACHE}",
    f"--index-cache-size={INDEX_CACHE}",
    f"--prefetch-budget={PREFETCH_BUDGET}",
    f"--prefetch-cap={PREFETCH_CAP}",
]
READER_TIMEOUT = 120.0  # beyond its own run time: a reader this late is hung
READ_SYSCALL = {"x86_64": 0, "aarch64": 63}.get(platform.machine())


# -- the source ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    root: Path  # the local source directory, also uploaded to the bucket
    files: list[readers.Row]  # (path under the mount, sha256, size), in container order
    big: list[str]  # the large files' paths under the mount, uncompressed ones first


def _payload(rng: random.Random, size: int) -> bytes:
    # Half random, half repeated: zstd has something to do, and no two files are equal.
    half = rng.randbytes(size // 2)
    return half + half[: size - len(half)]


def _shard(rng: random.Random, tag: str) -> list[tuple[str, bytes]]:
    files = [
        (f"d{i // 100}/{tag}-{i:04d}.bin", _payload(rng, rng.randint(1, 16 * KiB)))
        for i in range(FILES_PER_SHARD)
    ]
    files += [(f"big/{tag}-{i}.bin", _payload(rng, BIG_SIZE)) for i in range(BIG_PER_SHARD)]
    return files


def _build(root: Path) -> Source:
    """Per day, SHARDS containers of FILES_PER_SHARD small files and BIG_PER_SHARD large."""
    rng = random.Random(16)
    listed: list[readers.Row] = []
    big: list[str] = []
    for day, codec in ((DATAVISION_DAY, Codec.NONE), (FLAT_DAY, Codec.ZSTD)):
        for number in range(SHARDS):
            files = _shard(rng, f"{day}-{number}")
            entries = [(name, data, None) for name, data in files]
            if codec is Codec.NONE:
                shard, key = f"s{number}", f"{day}/s{number}.des"
                body = build_deshead1(entries)
            else:
                shard = f"{number:02X}_0000"
                key = f"{day.replace('-', '')}_{shard}.des"
                body = build_des2(entries, codec)
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_bytes(body)
            for name, data in files:
                digest = hashlib.sha256(data).hexdigest()
                listed.append((f"{day}/{shard}/{name}", digest, len(data)))
            big += [f"{day}/{shard}/{name}" for name, _ in files[FILES_PER_SHARD:]]
    return Source(root, listed, big)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    return _build(tmp_path_factory.mktemp("load") / "src")


@pytest.fixture(scope="module")
def bucket(source: Source, s3_client: Any) -> str:
    s3_client.create_bucket(Bucket=BUCKET)
    upload_tree(s3_client, BUCKET, source.root)
    return f"s3://{BUCKET}"


def _manifest(source: Source, mnt: Path, where: Path) -> Path:
    rows = [(str(mnt / path), digest, size) for path, digest, size in source.files]
    return readers.write_manifest(where, rows)


def _crowd(manifest: Path, seconds: float, count: int, seed: int) -> list[subprocess.Popen[str]]:
    """`count` readers for `seconds`: half read at random, half walk shards in order."""
    modes = ("random", "walk")
    return [
        readers.start(manifest, f"--mode={modes[i % 2]}", f"--seconds={seconds}", f"--seed={i}")
        for i in range(seed, seed + count)
    ]


def _vm(mount: Mounted, field: str) -> int:
    """A VmXXX line of the daemon's /proc status, in bytes."""
    assert mount.proc is not None
    for line in Path(f"/proc/{mount.proc.pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * KiB
    raise AssertionError(f"no {field} in /proc/{mount.proc.pid}/status")


def _healthy(mount: Mounted) -> None:
    assert mount.proc is not None and mount.proc.poll() is None, mount.log()
    assert "Traceback" not in mount.log(), mount.log()


# -- sixteen readers ----------------------------------------------------------------------


def _load(mount: Mounted, source: Source, tmp_path: Path, seconds: float) -> None:
    manifest = _manifest(source, mount.path, tmp_path / "manifest.json")
    crowd = _crowd(manifest, seconds, READERS, seed=100)
    halfway: int | None = None
    if seconds > SECONDS:
        time.sleep(seconds / 2)
        halfway = _vm(mount, "VmHWM")
    reports = [readers.result(proc, seconds + READER_TIMEOUT) for proc in crowd]
    for report in reports:
        readers.assert_clean(report)
    peak = _vm(mount, "VmHWM")
    assert peak <= BOUND, f"daemon peak RSS {peak / MiB:.1f} MiB, bound {BOUND / MiB:.0f} MiB"
    if halfway is not None:
        assert peak - halfway <= FLAT_SLACK, f"peak grew {halfway / MiB:.0f} -> {peak / MiB:.0f}"
    _healthy(mount)


DURATIONS = [
    pytest.param(SECONDS, id="short"),
    pytest.param(
        SOAK_SECONDS,
        id="soak",
        marks=[pytest.mark.soak, pytest.mark.timeout(SOAK_SECONDS + 2 * READER_TIMEOUT)],
    ),
]


@pytest.mark.parametrize("seconds", DURATIONS)
def test_sixteen_readers_local(source: Source, tmp_path: Path, seconds: float) -> None:
    mnt, log = tmp_path / "mnt", tmp_path / "daemon.log"
    with Mounted(str(source.root), mnt, log, BUDGETS) as mount:
        _load(mount, source, tmp_path, seconds)


@pytest.mark.s3
@pytest.mark.parametrize("seconds", DURATIONS)
def test_sixteen_readers_s3(
    source: Source, bucket: str, moto_server: MotoServer, tmp_path: Path, seconds: float
) -> None:
    mnt, log = tmp_path / "mnt", tmp_path / "daemon.log"
    with Mounted(bucket, mnt, log, BUDGETS, moto_server.env()) as mount:
        _load(mount, source, tmp_path, seconds)


# -- readers stopped and killed -----------------------------------------------------------


def _signal_inside_read(proc: subprocess.Popen[str], signum: signal.Signals) -> None:
    """Send `signum` while the reader sits in read(2) on the mount, when that can be seen
    (/proc/PID/syscall); otherwise right after its progress line."""
    if READ_SYSCALL is not None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and proc.poll() is None:
            call = Path(f"/proc/{proc.pid}/syscall").read_text().split()[0]
            if call == str(READ_SYSCALL):
                break
    os.kill(proc.pid, signum)


def _stopped(proc: subprocess.Popen[str]) -> bool:
    state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state in ("T", "D")  # D: inside a FUSE request; it stops once answered


@pytest.mark.s3
def test_stopped_and_killed_readers(
    source: Source, bucket: str, moto_server: MotoServer, tmp_path: Path
) -> None:
    """Readers stopped or killed mid-read leave the daemon serving everyone else, and
    every byte read afterwards is right."""
    with S3Proxy(moto_server.port) as proxy:
        proxy.latency = 0.05  # every GET takes a while: readers spend it inside read(2)
        env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        # Small readahead windows: a large file is many GETs, so a reader is mid-file for long.
        args = [*BUDGETS, "--readahead-min=256KiB", "--readahead-max=512KiB"]
        with Mounted(bucket, tmp_path / "mnt", tmp_path / "daemon.log", args, env) as mount:
            manifest = _manifest(source, mount.path, tmp_path / "manifest.json")
            big = [str(mount.path / path) for path in source.big]
            crowd = _crowd(manifest, 12.0, 10, seed=200)
            streams = [readers.start(manifest, "--mode=stream", f"--path={p}") for p in big[:4]]
            for proc in streams:
                readers.wait_progress(proc, READER_TIMEOUT)
            held, killed = streams[0], [*streams[1:], crowd[0], crowd[1]]
            _signal_inside_read(held, signal.SIGSTOP)
            for proc in killed:
                _signal_inside_read(proc, signal.SIGKILL)
            for proc in killed:
                # A killed reader inside a FUSE request exits once the daemon answers.
                assert proc.wait(timeout=READER_TIMEOUT) == -signal.SIGKILL
            assert _stopped(held)
            # While one reader is stopped mid-file, its file and everything else read right.
            again = readers.start(manifest, "--mode=stream", f"--path={big[0]}")
            readers.assert_clean(readers.result(again, READER_TIMEOUT))
            os.kill(held.pid, signal.SIGCONT)
            readers.assert_clean(readers.result(held, READER_TIMEOUT))
            for proc in crowd[2:]:
                readers.assert_clean(readers.result(proc, READER_TIMEOUT))
            # The files the killed readers were in the middle of read right afterwards.
            after = [readers.start(manifest, "--mode=stream", f"--path={p}") for p in big]
            for proc in after:
                readers.assert_clean(readers.result(proc, READER_TIMEOUT))
            _healthy(mount)
