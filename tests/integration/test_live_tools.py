"""`desfs status` and `desfs warm` against what operators really point them at: a stopped
daemon (a bounded wait and a clear error, never a hang), a relative day path, a directory
that is not a desfs mount, and a port the metrics cannot have."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from desfs.errors import ExitCode
from tests.support.builders import build_deshead1
from tests.support.mounting import Mounted, needs_fuse

pytestmark = needs_fuse()

DAY = "2024-12-03"


def _source(root: Path, shards: int = 5) -> Path:
    (root / DAY).mkdir(parents=True)
    for i in range(shards):
        entries = [(f"f{j}.txt", f"{i}-{j}\n".encode(), None) for j in range(3)]
        (root / DAY / f"s{i}.des").write_bytes(build_deshead1(entries))
    return root


def _desfs(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False,
    )  # fmt: skip


def test_status_and_warm_of_a_stopped_daemon_end_with_a_clear_error(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    with Mounted(str(src), tmp_path / "mnt", tmp_path / "log") as mount:
        assert mount.proc is not None
        os.kill(mount.proc.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            status = _desfs("status", str(mount.path / DAY / "s0"), timeout=90)
            warm = _desfs("warm", str(mount.path / DAY), timeout=150)
        finally:
            os.kill(mount.proc.pid, signal.SIGCONT)
        assert status.returncode == ExitCode.MOUNT_FAILED, status.stderr
        assert "no answer" in status.stderr
        assert warm.returncode == ExitCode.MOUNT_FAILED, warm.stderr
        assert time.monotonic() - began < 150


def test_warm_of_a_relative_day_path_warms_every_shard(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", shards=7)
    with Mounted(str(src), tmp_path / "mnt", tmp_path / "log"):
        done = _desfs("warm", f"mnt/{DAY}", "--data", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "warmed 7 shards, 21 files" in done.stdout, done.stdout


def test_status_of_a_plain_directory_names_that_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    done = _desfs("status", str(plain))
    assert done.returncode == ExitCode.USAGE
    assert f"{plain} is not inside a desfs mount" in done.stderr, done.stderr


def test_metrics_on_a_taken_port_is_a_one_line_usage_error(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    (tmp_path / "mnt").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in ([], ["--foreground"]):
            done = _desfs(
                "mount", str(src), str(tmp_path / "mnt"), "--metrics",
                "--metrics-port", str(port), *extra,
            )  # fmt: skip
            assert done.returncode == ExitCode.USAGE, done.stderr
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], done.stderr
            assert "--metrics-port" in lines[0]
            assert not os.path.ismount(tmp_path / "mnt")
