"""A /dev/fuse descriptor opened and mounted by another process, then handed to desfs as
`/dev/fd/N` (what Kubernetes CSI drivers do): the test plays the driver as root (opens
/dev/fuse, mount(2) with fd=N), and the daemon serves it with no mount of its own and no
fusermount3, as root and, where the interpreter allows it, as the user nobody. Readiness
comes from `desfs ready` on the mountpoint and on the daemon's heartbeat file."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desfs.archive.sources import sample_dir
from tests.support.mounting import needs_fuse

pytestmark = [
    needs_fuse(),
    pytest.mark.skipif(os.geteuid() != 0, reason="playing the CSI driver needs root"),
]

NOBODY = 65534
MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4
SAMPLE_FILE = "2024-12-03/0/invoices/INV-3-0000.txt"


def _mount_fuse_fd(target: Path) -> int:
    """What the driver does: open /dev/fuse and mount it at `target` with fd=N."""
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    data = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV
    if libc.mount(b"desfs-fd", str(target).encode(), b"fuse.desfs", flags, data) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"mount(2) of {target}: {os.strerror(err)}")
    return fd


def _ready(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", "ready", *words], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


@pytest.fixture
def handed(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A mounted FUSE descriptor; `_serve` closes the test's copy once the daemon has it,
    as a driver does, so the connection ends with the daemon."""
    target = tmp_path / "mnt"
    target.mkdir()
    fd = _mount_fuse_fd(target)
    try:
        yield target, fd
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            os.close(fd)


AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _nobody_can_run_desfs() -> bool:
    """Whether this interpreter and checkout are usable by nobody (a Python under /root,
    as pyenv installs it, is not)."""
    probe = [*AS_NOBODY, sys.executable, "-c", "import desfs.commands.main"]
    return subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0


def _serve(fd: int, run: Path, log: Path, user: list[str]) -> subprocess.Popen[bytes]:
    command = [
        *user, sys.executable, "-m", "desfs", "--log-level", "info", "mount",
        str(sample_dir()), f"/dev/fd/{fd}", "--foreground", "--ready-file", str(run / "ready"),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, pass_fds=(fd,))
    os.close(fd)
    return proc


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory any user can write, under one every user can reach (pytest's own
    base directory is root's alone)."""
    run = Path(tempfile.mkdtemp(prefix="desfs-run-", dir="/tmp"))
    run.chmod(0o777)
    try:
        yield run
    finally:
        shutil.rmtree(run, ignore_errors=True)


def test_an_unreachable_ready_file_is_a_usage_error(tmp_path: Path) -> None:
    """A ready file under a directory the daemon's user cannot reach: exit 2 naming it,
    not an internal error at start or at exit."""
    if not _nobody_can_run_desfs():
        pytest.skip(f"{sys.executable} is not usable by nobody (a Python under /root)")
    hidden = tmp_path / "private" / "ready"  # pytest's base directory is root's alone
    done = subprocess.run(
        [*AS_NOBODY, sys.executable, "-m", "desfs", "mount", str(sample_dir()),
         str(tmp_path), "--foreground", "--ready-file", str(hidden)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert str(hidden) in done.stderr and "Permission denied" in done.stderr


def _uids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(n) for n in line.split()[1:]]
    raise AssertionError("no Uid line")


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_a_handed_descriptor_is_served(
    handed: tuple[Path, int], tmp_path: Path, run_dir: Path, user: str
) -> None:
    if user == "nobody" and not _nobody_can_run_desfs():
        pytest.skip(f"{sys.executable} is not usable by nobody (a Python under /root)")
    target, fd = handed
    run = run_dir
    log = tmp_path / "daemon.log"
    proc = _serve(fd, run, log, AS_NOBODY if user == "nobody" else [])
    try:
        _wait_for(run / "ready", proc, log)
        assert (run / "ready").read_text().strip() == str(proc.pid)
        if user == "nobody":
            assert _uids(proc.pid) == [NOBODY] * 4, "the daemon kept a privileged uid"
        assert _ready(str(target)).returncode == 0
        assert _ready("--file", str(run / "ready")).returncode == 0
        listed = subprocess.run(["ls", str(target)], capture_output=True, text=True, timeout=30)
        assert listed.stdout.split() == ["2024-12-03", "2024-12-04"]
        offline = subprocess.run(
            [sys.executable, "-m", "desfs", "cat", str(sample_dir()), SAMPLE_FILE],
            capture_output=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert (target / SAMPLE_FILE).read_bytes() == offline != b""
        meta = subprocess.run(
            ["getfattr", "-d", "-m", "user.des", str(target / SAMPLE_FILE)],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert "user.des." in meta.stdout
        assert "/dev/fd/" in log.read_text() and "mounted by its opener" in log.read_text()
        # The driver unmounts; the daemon sees its session end and exits cleanly.
        subprocess.run(["umount", str(target)], check=True, timeout=30)
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert not (run / "ready").exists(), "the ready file outlived the mount"
        gone = _ready("--file", str(run / "ready"))
        assert gone.returncode == 8 and "does not exist" in gone.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_leaves_the_unmount_to_the_driver(
    handed: tuple[Path, int], tmp_path: Path, run_dir: Path
) -> None:
    target, fd = handed
    run = run_dir
    log = tmp_path / "daemon.log"
    proc = _serve(fd, run, log, [])
    try:
        _wait_for(run / "ready", proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
        mounts = Path("/proc/self/mountinfo").read_text()
        assert f" {target} " in mounts, "desfs unmounted what it did not mount"
        dead = _ready(str(target))  # the connection ended with the daemon: ENOTCONN
        assert dead.returncode == 8, dead.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stale_heartbeat_is_not_ready(tmp_path: Path) -> None:
    beat = tmp_path / "ready"
    beat.write_text("1\n")
    old = time.time() - 120
    os.utime(beat, (old, old))
    stale = _ready("--file", str(beat), "--max-age", "30")
    assert stale.returncode == 7 and "stopped or stuck" in stale.stderr
    assert _ready("--file", str(beat), "--max-age", "300").returncode == 0


@pytest.mark.parametrize("mountpoint", ["/dev/fd/99", "/dev/fd/0"])
def test_a_descriptor_that_is_not_dev_fuse_is_refused(mountpoint: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "desfs", "mount", str(sample_dir()), mountpoint, "--foreground"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert mountpoint in done.stderr
