"""Watching a mount: Prometheus metrics that agree with the server, `desfs status`, and
`desfs warm` filling the caches so the batch job after it costs no request."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.moto_server import MotoServer, free_port, upload_tree
from tests.support.mounting import Mounted, needs_fuse
from tests.support.s3proxy import S3Proxy

pytestmark = [needs_fuse(), pytest.mark.s3]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory, s3_client: Any) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("observe")
    rng = random.Random(12)
    files = {f"doc-{i:03d}.txt": rng.randbytes(rng.randint(100, 20_000)) for i in range(200)}
    for name, data in files.items():
        (root / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / name).write_bytes(data)
    pack_directory(
        root / "src", root / "out", PackOptions(Format.DESHEAD1, date(2024, 12, 5), shard_bits=2)
    )
    s3_client.create_bucket(Bucket="observe")
    upload_tree(s3_client, "observe", root / "out", "")
    return files


@pytest.fixture
def mounted(
    tmp_path: Path, moto_server: MotoServer, bucket: dict[str, bytes]
) -> Iterator[tuple[Mounted, S3Proxy, int]]:
    proxy = S3Proxy(moto_server.port).start()
    port = free_port()
    env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
    args = ["--metrics", "--metrics-port", str(port)]
    try:
        with Mounted("s3://observe", tmp_path / "mnt", tmp_path / "log", args, env) as mount:
            yield mount, proxy, port
    finally:
        proxy.stop()


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r'desfs_store_requests_total\{kind="(\w+)"\} ([0-9.e+]+)', line)
        if match:
            found[match[1]] = float(match[2])
    return found


def _read_everything(mnt: Path) -> int:
    count = 0
    for path in sorted(mnt.rglob("*")):
        if path.is_file():
            path.read_bytes()
            count += 1
    return count


def test_metrics_match_the_server_side_count(
    mounted: tuple[Mounted, S3Proxy, int], bucket: dict[str, bytes]
) -> None:
    mount, proxy, port = mounted
    assert _read_everything(mount.path) == len(bucket)
    server = proxy.counts()
    deadline_reads = 0
    while True:  # metrics are published about once a second
        scraped = _scrape(port)
        if sum(scraped.values()) == sum(server.values()) or deadline_reads > 50:
            break
        deadline_reads += 1
        subprocess.run(["sleep", "0.1"], check=True)
    assert scraped.get("list", 0) == server.get("list", 0)
    assert scraped.get("get_range", 0) == server.get("get_range", 0)
    assert scraped.get("get", 0) == server.get("get", 0)
    assert scraped.get("head", 0) == server.get("head", 0) == 0


def test_status_and_warm(mounted: tuple[Mounted, S3Proxy, int], bucket: dict[str, bytes]) -> None:
    mount, proxy, _ = mounted
    day = mount.path / "2024-12-05"
    warmed = subprocess.run(
        [sys.executable, "-m", "desfs", "warm", str(day), "--data"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert warmed.returncode == 0, warmed.stderr
    assert f"{len(bucket)} files" in warmed.stdout
    proxy.reset_counts()
    assert _read_everything(mount.path) == len(bucket)
    assert proxy.requests == [], "a warmed day is read without a single request"
    status = subprocess.run(
        [sys.executable, "-m", "desfs", "status", str(mount.path), "--json"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    stats = json.loads(status.stdout)
    # The second pass came from the page cache (keep_cache): the daemon saw one pass.
    assert stats["read_bytes"] == sum(len(v) for v in bucket.values())
    assert stats["store"]["requests"]["get_range"] >= 4
    human = subprocess.run(
        [sys.executable, "-m", "desfs", "status", str(mount.path)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert "store requests:" in human and "get_range" in human
    # People get aligned lines with sizes, not Python dicts.
    assert "{" not in human and "'" not in human, human
    value_columns = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in human.splitlines()}
    assert len(value_columns) == 1, human
    assert "cache payloads:" in human and "held" in human
