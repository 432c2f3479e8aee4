"""SIGTERM while a walk over one huge directory keeps the inode releaser busy.

Entry invalidation takes the parent directory's lock in the kernel, which a READDIR of
that directory holds until the daemon answers it. A daemon that stopped answering while
an invalidation waited on that lock left a thread in the kernel for good: the process
stayed a zombie, `find` stayed blocked in readdir, and only aborting the FUSE connection
freed them (docs/CONCURRENCY.md). Each run here walks a 100,000-entry shard with a small
inode limit, sends SIGTERM mid-walk, and requires the daemon to exit within its grace
and `find` to end. On the old shutdown order about one run in three hung.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.bigsource import BigSource, build_source
from tests.support.mounting import needs_fuse

pytestmark = needs_fuse()

GRACE = 2.0
MARGIN = 8.0  # unmounting, closing the session and leaving the interpreter
FUSECTL = Path("/sys/fs/fuse/connections")


@pytest.fixture(scope="module")
def huge_shard(tmp_path_factory: pytest.TempPathFactory) -> BigSource:
    root = tmp_path_factory.mktemp("hang") / "src"
    return build_source(
        root, days=1, containers_per_day=1, files_per_container=100_000, files_per_dir=50_000
    )


def _abort_all_connections() -> None:
    """Free a hung kernel side, so a failing run cannot hang the suite behind it."""
    if not any(FUSECTL.iterdir()):
        subprocess.run(["mount", "-t", "fusectl", "none", str(FUSECTL)], check=False)
    for connection in FUSECTL.iterdir():
        with contextlib.suppress(OSError):
            (connection / "abort").write_text("1")


def _walk_and_stop(source: BigSource, mnt: Path, log: Path, walk_seconds: float) -> str | None:
    """One run; None when everything ended in time, else what hung."""
    mnt.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", "desfs", "mount", str(source.root), str(mnt), "--foreground",
        "--max-inodes", "2000", "--shutdown-grace", str(GRACE),
    ]  # fmt: skip
    with open(log, "wb") as out:
        daemon = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not os.path.ismount(mnt):
        assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    walk = subprocess.Popen(
        ["find", str(mnt)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(walk_seconds)
    daemon.send_signal(signal.SIGTERM)
    problem = None
    try:
        code = daemon.wait(timeout=GRACE + MARGIN)
        if code != 0:
            problem = f"daemon exited {code}"
        walk.wait(timeout=MARGIN)
    except subprocess.TimeoutExpired:
        state = Path(f"/proc/{daemon.pid}/status").read_text().splitlines()[2]
        problem = f"still running {GRACE + MARGIN:.0f} s after SIGTERM ({state})"
        _abort_all_connections()
        daemon.kill()
        walk.kill()
        daemon.wait(timeout=30)
        walk.wait(timeout=30)
    subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, check=False)
    return problem


@pytest.mark.parametrize("run", range(3))
def test_sigterm_mid_walk_exits_within_the_grace(
    huge_shard: BigSource, tmp_path: Path, run: int
) -> None:
    log = tmp_path / "daemon.log"
    problem = _walk_and_stop(huge_shard, tmp_path / "mnt", log, 1.0 + 0.6 * run)
    assert problem is None, f"{problem}\n{log.read_text(errors='replace')[-3000:]}"


@pytest.mark.soak
def test_sigterm_mid_walk_exits_within_the_grace_many_times(
    huge_shard: BigSource, tmp_path: Path
) -> None:
    for run in range(30):
        log = tmp_path / f"daemon{run}.log"
        problem = _walk_and_stop(huge_shard, tmp_path / "mnt", log, 0.5 + 0.25 * (run % 12))
        assert problem is None, f"run {run}: {problem}\n{log.read_text(errors='replace')[-3000:]}"
