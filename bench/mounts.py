"""Mounting a peer from a cold start, reading its daemon's CPU and memory, and unmounting.

The daemon runs in the foreground as our child, so its pid is the process that serves the
mount. Unmounting is `fusermount3 -u`; when that fails (busy, hung), `fusermount3 -uz`
and a kill, so no mount outlives the run whatever a workload did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.peers import Peer

MOUNT_TIMEOUT = 180.0  # ratarmount over S3 downloads every tar before it answers
UNMOUNT_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
DROP_TIMEOUT = 60.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


class MountError(Exception):
    """A peer did not mount, did not answer, or did not go away."""


def drop_caches() -> bool:
    """`sync; echo 3 > /proc/sys/vm/drop_caches`; False when not permitted."""
    subprocess.run(["sync"], check=False, timeout=DROP_TIMEOUT)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
    except OSError:
        return False
    return True


def with_timeout(call: Callable[[], T], timeout: float) -> T:
    """Run `call` in a thread; a call on a hung mount raises MountError instead of hanging."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise MountError(f"no answer in {timeout:.0f}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class ProcStats:
    cpu_seconds: float  # utime + stime
    peak_rss: int  # VmHWM, bytes


def proc_stats(pid: int) -> ProcStats | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
    peak = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return ProcStats(cpu, peak)


class Mount:
    """One mount of one peer at `path`; `start()` returns the seconds until it answered."""

    def __init__(self, peer: Peer, path: Path, log_path: Path, env: dict[str, str]) -> None:
        self.peer = peer
        self.path = path
        self.log_path = log_path
        self.env = {**env, **peer.env}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.peer.root if self.peer.root is not None else self.path

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        if not self.peer.mounted:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(self.path):
            force_unmount(self.path)
        command = [part.replace("{mnt}", str(self.path)) for part in self.peer.command]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.path.parent
            )
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None:
                raise MountError(f"{self.peer.name} exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise MountError(f"{self.peer.name} not mounted after {MOUNT_TIMEOUT:.0f}s")
            time.sleep(0.002)

    def stats(self) -> ProcStats | None:
        return None if self.proc is None else proc_stats(self.proc.pid)

    def stop(self) -> None:
        """Unmount as a user would; fall back to a lazy unmount and a kill."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        clean = _fusermount(["-u"], self.path)
        if clean:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=EXIT_TIMEOUT)
        if proc.poll() is None or os.path.ismount(self.path):
            force_unmount(self.path)
            _kill(proc)

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-800:]
        except OSError:
            return "(no log)"


def _fusermount(flags: list[str], path: Path) -> bool:
    try:
        done = subprocess.run(
            ["fusermount3", *flags, str(path)],
            capture_output=True,
            timeout=UNMOUNT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def force_unmount(path: Path) -> None:
    if not _fusermount(["-uz"], path) and shutil.which("umount"):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
