"""Real mounts for tests: the daemon in a subprocess, readiness by `ismount`, clean unmount.

`Mounted` starts `python -m desfs mount ... --foreground` with its log in a file, waits
until the mountpoint is a mount while checking that the daemon is alive, and on exit
unmounts with a plain (not lazy) `fusermount3 -u` and requires the daemon to exit 0. If
anything goes wrong it falls back to a lazy unmount and kill, and shows the daemon log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

MOUNT_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0


def fuse_skip_reason() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        return f"cannot open /dev/fuse: {exc}"
    return None


def needs_fuse() -> pytest.MarkDecorator:
    reason = fuse_skip_reason()
    if reason is not None:
        return pytest.mark.skip(reason=reason)
    return pytest.mark.fuse


class Mounted:
    def __init__(
        self,
        source: str,
        mountpoint: Path,
        log_path: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.source = source
        self.path = mountpoint
        self.log_path = log_path
        self._args = list(args)
        self._env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Mounted:
        self.path.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "desfs", "--log-level", "info", "mount",
            self.source, str(self.path), "--foreground", *self._args,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )
        try:
            self._wait_mounted()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _wait_mounted(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not mounted after {MOUNT_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.05)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.cleanup()
            return
        self.unmount()

    def unmount(self) -> None:
        """Unmount as a user would, and require a clean exit of the daemon."""
        assert self.proc is not None
        done = subprocess.run(
            ["fusermount3", "-u", str(self.path)], capture_output=True, text=True, check=False
        )
        try:
            assert done.returncode == 0, f"fusermount3 -u failed: {done.stderr}\n{self.log()}"
            code = self.proc.wait(timeout=EXIT_TIMEOUT)
            assert code == 0, f"daemon exited {code}:\n{self.log()}"
            assert not os.path.ismount(self.path)
        except BaseException:
            self.cleanup()
            raise

    def cleanup(self) -> None:
        subprocess.run(
            ["fusermount3", "-u", "-z", str(self.path)], capture_output=True, check=False
        )
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no daemon log)"

    def run(
        self, *command: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run an ordinary tool with a timeout, so a hung mount fails the test, not CI."""
        return subprocess.run(command, capture_output=True, timeout=timeout, check=check)


def root_stats(mountpoint: Path) -> dict[str, Any]:
    """The daemon's live counters, read as any tool would: the root's user.des.stats."""
    raw = subprocess.run(
        ["getfattr", "--only-values", "-n", "user.des.stats", str(mountpoint)],
        capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    found: dict[str, Any] = json.loads(raw)
    return found
