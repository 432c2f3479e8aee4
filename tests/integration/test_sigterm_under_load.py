"""SIGTERM while several readers stream large files: the daemon unmounts and exits 0
within its shutdown grace (plus a margin), the mountpoint is left unmounted, and every
reader ends (with an error or its bytes), never hangs, and never gets wrong bytes.

Two cases: a local source, where the requests in flight finish quickly, and an S3 source
whose store stops answering just before the signal, so requests are stuck in flight and
only the grace deadline ends them.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import readers
from tests.support.builders import build_deshead1
from tests.support.moto_server import MotoServer, upload_tree
from tests.support.mounting import Mounted, needs_fuse
from tests.support.s3proxy import S3Proxy

pytestmark = needs_fuse()

MiB = 1024 * 1024
DAY = "2024-12-03"
BUCKET = "sigterm"
FILES = 4
FILE_SIZE = 24 * MiB
READERS_PER_FILE = 2
GRACE = 3.0  # --shutdown-grace; the default is 10 s
# Unmounting, closing the session and leaving the interpreter after the grace.
MARGIN = 10.0
READER_TIMEOUT = 60.0


@dataclass(frozen=True)
class Source:
    root: Path
    files: list[readers.Row]  # (path under the mount, sha256, size)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("sigterm") / "src"
    rng = random.Random(15)
    rows: list[readers.Row] = []
    for shard in range(2):
        files = [(f"big-{shard}-{i}.bin", rng.randbytes(FILE_SIZE)) for i in range(FILES // 2)]
        (root / DAY).mkdir(parents=True, exist_ok=True)
        body = build_deshead1([(name, data, None) for name, data in files])
        (root / DAY / f"s{shard}.des").write_bytes(body)
        for name, data in files:
            rows.append((f"{DAY}/s{shard}/{name}", hashlib.sha256(data).hexdigest(), len(data)))
    return Source(root, rows)


def _mount_count(mnt: Path) -> int:
    with open("/proc/self/mountinfo") as info:
        return sum(1 for line in info if line.split()[4] == str(mnt))


@contextmanager
def _started(mount: Mounted) -> Iterator[Mounted]:
    """A mount the test stops itself (by signal); whatever is left is cleaned up."""
    mount.__enter__()
    try:
        yield mount
    finally:
        mount.cleanup()


def _streams(source: Source, mnt: Path, tmp_path: Path) -> list[subprocess.Popen[str]]:
    """Readers streaming every large file over and over, each one mid-file on return."""
    rows = [(str(mnt / path), digest, size) for path, digest, size in source.files]
    manifest = readers.write_manifest(tmp_path / "manifest.json", rows)
    streams = [
        readers.start(manifest, "--mode=stream", f"--path={path}", "--passes=1000")
        for path, _, _ in rows
        for _ in range(READERS_PER_FILE)
    ]
    for proc in streams:
        readers.wait_progress(proc, READER_TIMEOUT)
    return streams


def _terminate(mount: Mounted, streams: list[subprocess.Popen[str]]) -> None:
    assert mount.proc is not None
    mount.proc.send_signal(signal.SIGTERM)
    try:
        code = mount.proc.wait(timeout=GRACE + MARGIN)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"daemon still running {GRACE + MARGIN}s after SIGTERM") from None
    assert code == 0, mount.log()
    assert not os.path.ismount(mount.path)
    assert _mount_count(mount.path) == 0
    for proc in streams:
        report = readers.result(proc, READER_TIMEOUT)
        assert report["bad"] == [], f"wrong bytes reported as success: {report['bad']}"
    log = mount.log()
    assert "SIGTERM received, unmounting" in log and f"unmounted {mount.path}" in log, log
    assert "Traceback" not in log, log


def test_sigterm_during_heavy_reads_local(source: Source, tmp_path: Path) -> None:
    args = [f"--shutdown-grace={GRACE}"]
    mount = Mounted(str(source.root), tmp_path / "mnt", tmp_path / "daemon.log", args)
    with _started(mount):
        _terminate(mount, _streams(source, mount.path, tmp_path))


def _stalled(proxy: S3Proxy, after: int) -> bool:
    return any(r.status == 0 for r in proxy.requests[after:])


@pytest.mark.s3
def test_sigterm_with_requests_stuck_in_flight(
    source: Source, moto_server: MotoServer, s3_client: Any, tmp_path: Path
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    upload_tree(s3_client, BUCKET, source.root)
    with S3Proxy(moto_server.port) as proxy:
        env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        # The default timeouts: a stalled GET holds its request for many seconds.
        args = [f"--shutdown-grace={GRACE}"]
        mount = Mounted(f"s3://{BUCKET}", tmp_path / "mnt", tmp_path / "daemon.log", args, env)
        with _started(mount):
            streams = _streams(source, mount.path, tmp_path)
            seen = len(proxy.requests)
            proxy.stall_next(1000, seconds=120.0)  # from now on the store never answers
            deadline = time.monotonic() + READER_TIMEOUT
            while not _stalled(proxy, seen):
                assert time.monotonic() < deadline, "no request reached the stalled store"
                time.sleep(0.05)
            _terminate(mount, streams)
