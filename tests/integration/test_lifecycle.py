"""The mount lifecycle with real mounts: signals, daemon mode, `desfs umount`, refused
mountpoints and options, recovery from a killed daemon, and read-only enforcement.

Every daemon runs in its own process and every tool through `subprocess` with a timeout,
so a hung mount fails a test instead of hanging the run.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from desfs.errors import ExitCode
from tests.support.builders import build_deshead1
from tests.support.mounting import Mounted, needs_fuse

pytestmark = needs_fuse()

DAY = "2024-12-03"
SHARD = "s1"
FILES = {"hello.txt": b"hello desfs\n", "sub/inner.txt": b"inner bytes\n" * 10}
TIMEOUT = 30.0


# -- helpers -------------------------------------------------------------------------------


def make_source(root: Path) -> Path:
    """A one-day Datavision source with one small container."""
    (root / DAY).mkdir(parents=True)
    container = build_deshead1([(name, data, None) for name, data in FILES.items()])
    (root / DAY / f"{SHARD}.des").write_bytes(container)
    return root


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_source(tmp_path / "src")


def desfs(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run the `desfs` command line and capture its output."""
    command = [sys.executable, "-m", "desfs", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=cwd
    )


def mount_count(mnt: Path) -> int:
    """How many mounts sit on `mnt` (field 5 of mountinfo is the mount point)."""
    with open("/proc/self/mountinfo") as info:
        return sum(1 for line in info if line.split()[4] == str(mnt))


def _alive(proc: Path) -> bool:
    """Whether any thread of a /proc entry still runs. A zombie main thread is not enough:
    the other threads may still be exiting and holding /dev/fuse open."""
    try:
        tasks = list((proc / "task").iterdir())
    except OSError:
        return False
    return any(_running(task) for task in tasks)


def _running(task: Path) -> bool:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def daemon_pids(mnt: Path) -> list[int]:
    """Running `desfs mount ... MNT --foreground` processes serving `mnt`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if str(mnt).encode() in argv and b"--foreground" in argv and _alive(proc):
            found.append(int(proc.name))
    return found


def wait_only(mnt: Path, expected: list[int]) -> None:
    """Wait until the daemons serving `mnt` are exactly `expected` (a refused one exits)."""
    deadline = time.monotonic() + TIMEOUT
    while (found := daemon_pids(mnt)) != expected:
        assert time.monotonic() < deadline, f"daemons {found}, expected {expected}"
        time.sleep(0.05)


def wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while any(_alive(Path(f"/proc/{pid}")) for pid in pids):
        assert time.monotonic() < deadline, f"daemon {pids} still running after {TIMEOUT}s"
        time.sleep(0.05)


def settle_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def force_unmount(mnt: Path) -> None:
    """Last-resort cleanup: lazily detach whatever is on `mnt` and stop its daemons."""
    for pid in daemon_pids(mnt):
        os.kill(pid, signal.SIGKILL)
    if mount_count(mnt):
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, timeout=10)


@contextmanager
def started(source: Path, mnt: Path, log: Path) -> Iterator[Mounted]:
    """A foreground mount the test ends itself; whatever is left is cleaned up."""
    mount = Mounted(str(source), mnt, log)
    mount.__enter__()
    try:
        yield mount
    finally:
        mount.cleanup()


def assert_serves(mnt: Path) -> None:
    listed = run("ls", str(mnt / DAY / SHARD))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["hello.txt", "sub"]
    assert (mnt / DAY / SHARD / "hello.txt").read_bytes() == FILES["hello.txt"]


def errno_of(call: Callable[[], object]) -> int | None:
    """The errno `call` fails with; None when it succeeds."""
    try:
        call()
    except OSError as exc:
        return exc.errno
    return None


def one_line_error(stderr: str, expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("desfs: ") and expected in lines[0], lines[0]


# -- signals and unmounting ----------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_cleanly(source: Path, tmp_path: Path, signum: signal.Signals) -> None:
    mnt = tmp_path / "mnt"
    with started(source, mnt, tmp_path / "daemon.log") as mount:
        assert mount.proc is not None
        assert_serves(mnt)
        mount.proc.send_signal(signum)
        assert mount.proc.wait(timeout=TIMEOUT) == 0, mount.log()
        assert not os.path.ismount(mnt)
        assert mount_count(mnt) == 0
        assert f"{signum.name} received, unmounting" in mount.log()
        assert f"unmounted {mnt}" in mount.log()


def test_sigterm_with_a_process_inside_the_mount(source: Path, tmp_path: Path) -> None:
    """A shell sitting in the mount does not keep a stopping daemon alive."""
    mnt = tmp_path / "mnt"
    with started(source, mnt, tmp_path / "daemon.log") as mount:
        assert mount.proc is not None
        sleeper = subprocess.Popen(["sleep", "60"], cwd=mnt / DAY)
        try:
            mount.proc.send_signal(signal.SIGTERM)
            assert mount.proc.wait(timeout=TIMEOUT) == 0, mount.log()
            assert mount_count(mnt) == 0
        finally:
            sleeper.kill()
            sleeper.wait(timeout=TIMEOUT)


def test_daemon_mode_is_ready_on_return_and_umount_stops_it(source: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "daemon.log"
    try:
        done = desfs("--log-level", "info", "mount", str(source), str(mnt), f"--log-file={log}")
        assert done.returncode == 0, done.stderr
        # No waiting: the mount must answer the moment `desfs mount` has returned.
        assert os.path.ismount(mnt)
        assert run("ls", str(mnt)).stdout.split() == [DAY]
        assert_serves(mnt)
        pids = daemon_pids(mnt)
        assert len(pids) == 1, pids
        assert os.getsid(pids[0]) == pids[0]  # detached into its own session

        done = desfs("umount", str(mnt))
        assert done.returncode == 0, done.stderr
        assert not os.path.ismount(mnt)
        wait_gone(pids)
        assert f"unmounted {mnt}" in log.read_text()
    finally:
        force_unmount(mnt)


def test_umount_of_a_busy_mount_fails_and_lazy_works(source: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    with started(source, mnt, tmp_path / "daemon.log") as mount:
        assert mount.proc is not None
        sleeper = subprocess.Popen(["sleep", "60"], cwd=mnt / DAY)
        try:
            done = desfs("umount", str(mnt))
            assert done.returncode == 1
            one_line_error(done.stderr, "busy")
            assert "--lazy" in done.stderr
            assert os.path.ismount(mnt)
            assert_serves(mnt)

            done = desfs("umount", "--lazy", str(mnt))
            assert done.returncode == 0, done.stderr
            assert not os.path.ismount(mnt)
            assert mount_count(mnt) == 0
        finally:
            sleeper.kill()
            sleeper.wait(timeout=TIMEOUT)
        # The detached mount ends when its last user is gone, and the daemon with it.
        assert mount.proc.wait(timeout=TIMEOUT) == 0, mount.log()


def test_umount_of_something_not_mounted_says_so(tmp_path: Path) -> None:
    done = desfs("umount", str(tmp_path))
    assert done.returncode == ExitCode.NOT_MOUNTED == 8
    one_line_error(done.stderr, f"umount {tmp_path}: not mounted")


# -- a killed daemon -------------------------------------------------------------------------


def test_kill_9_leaves_enotconn_and_a_new_mount_recovers(source: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "daemon.log"
    try:
        assert desfs("mount", str(source), str(mnt), f"--log-file={log}").returncode == 0
        assert_serves(mnt)
        pids = daemon_pids(mnt)
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        wait_gone(pids)

        # A crash never looks like a valid empty directory. (A plain stat of the root
        # itself may still be answered from the kernel's attribute cache until the
        # listing TTL passes; anything that reaches the daemon fails.)
        # While the kernel tears the connection down it may answer ECONNABORTED first.
        settle_until(lambda: errno_of(lambda: os.listdir(mnt)) == errno.ENOTCONN)
        assert errno_of(lambda: os.listdir(mnt)) == errno.ENOTCONN
        assert errno_of(lambda: os.statvfs(mnt)) == errno.ENOTCONN
        assert errno_of(lambda: os.stat(mnt / "never-looked-up")) == errno.ENOTCONN
        assert "Transport endpoint is not connected" in run("ls", str(mnt)).stderr

        log2 = tmp_path / "daemon2.log"
        done = desfs("mount", str(source), str(mnt), f"--log-file={log2}")
        assert done.returncode == 0, done.stderr + log2.read_text()
        assert "dead FUSE mount" in log2.read_text()
        assert mount_count(mnt) == 1
        assert_serves(mnt)

        pids = daemon_pids(mnt)
        assert desfs("umount", str(mnt)).returncode == 0
        wait_gone(pids)
        assert mount_count(mnt) == 0
    finally:
        force_unmount(mnt)


# -- refused mountpoints and options ---------------------------------------------------------

MODES = {"daemon": (), "foreground": ("--foreground",)}


def _missing(mnt: Path) -> None:
    pass


def _nonempty(mnt: Path) -> None:
    mnt.mkdir()
    (mnt / "somebody-elses-file").write_text("x")


def _file(mnt: Path) -> None:
    mnt.write_text("not a directory")


MOUNTPOINTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (_missing, "does not exist"),
    "nonempty": (_nonempty, "is not empty"),
    "file": (_file, "is not a directory"),
}


def attempt_mount(source: Path, mnt: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A `desfs mount` that is expected to fail; anything it mounted is torn down."""
    try:
        return desfs("mount", str(source), str(mnt), *extra)
    finally:
        mounted = mount_count(mnt)
        force_unmount(mnt)
        assert mounted == 0, "a refused mount left something mounted"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", MOUNTPOINTS)
def test_bad_mountpoint_is_refused(source: Path, tmp_path: Path, case: str, mode: str) -> None:
    prepare, message = MOUNTPOINTS[case]
    mnt = tmp_path / "mnt"
    prepare(mnt)
    done = attempt_mount(source, mnt, *MODES[mode])
    assert done.returncode == 6, done.stderr  # ExitCode.MOUNTPOINT
    one_line_error(done.stderr, message)
    assert str(mnt) in done.stderr
    wait_only(mnt, [])


@pytest.mark.parametrize("mode", MODES)
def test_mounting_over_a_live_mount_is_refused(source: Path, tmp_path: Path, mode: str) -> None:
    mnt = tmp_path / "mnt"
    with Mounted(str(source), mnt, tmp_path / "daemon.log") as mount:
        done = desfs("mount", str(source), str(mnt), *MODES[mode])
        assert done.returncode == 6, done.stderr
        one_line_error(done.stderr, "already a mountpoint")
        assert mount_count(mnt) == 1
        assert mount.proc is not None
        wait_only(mnt, [mount.proc.pid])
        assert_serves(mnt)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("option", "message"),
    [("bogus", "unknown mount option"), ("uid=abc", "not a valid")],
)
def test_bad_option_is_refused(
    source: Path, tmp_path: Path, option: str, message: str, mode: str
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = attempt_mount(source, mnt, "-o", f"ro,{option}", *MODES[mode])
    assert done.returncode == 2, done.stderr  # ExitCode.USAGE
    one_line_error(done.stderr, message)
    wait_only(mnt, [])


@pytest.mark.parametrize("spelling", [["-o", "rw"], ["-o", "read_only"], ["--read-only"], ["-r"]])
def test_read_only_spellings_and_rw_mount_read_only(
    source: Path, tmp_path: Path, spelling: list[str]
) -> None:
    """One rule for `desfs mount` and fstab (where mount(8) adds rw itself): accepted, and
    the mount is read-only all the same."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = desfs("mount", str(source), str(mnt), *spelling)
    assert done.returncode == 0, done.stderr
    try:
        assert os.statvfs(mnt).f_flag & os.ST_RDONLY
        write = run("sh", "-c", f"echo x > {mnt / DAY / SHARD / 'new.txt'}")
        assert write.returncode != 0 and "Read-only file system" in write.stderr
    finally:
        assert desfs("umount", str(mnt)).returncode == 0


# -- read-only: every write syscall ----------------------------------------------------------


@pytest.fixture(scope="module")
def ro_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("ro")
    source = make_source(base / "src")
    with Mounted(str(source), base / "mnt", base / "daemon.log") as mount:
        yield mount.path


Op = Callable[[Path, Path, Path], object]  # (mountpoint, a file, a directory) -> anything

# The mount is MS_RDONLY ("ro" is among its FUSE mount options), so the kernel's VFS
# refuses every one of these with EROFS (mnt_want_write(), or sb_rdonly() inside
# inode_permission() for opens for writing) before any request reaches desfs; it does so
# ahead of any permission check, so EROFS holds for root and for other users alike.
# desfs's own write handlers answer EROFS too, as a second line of defence.
WRITES: dict[str, Op] = {
    "open_wronly": lambda m, f, d: os.open(f, os.O_WRONLY),
    "open_rdwr": lambda m, f, d: os.open(f, os.O_RDWR),
    "open_trunc": lambda m, f, d: os.open(f, os.O_RDONLY | os.O_TRUNC),
    "open_creat_new": lambda m, f, d: os.open(d / "new", os.O_WRONLY | os.O_CREAT, 0o644),
    "open_creat_in_root": lambda m, f, d: os.open(m / "new", os.O_RDONLY | os.O_CREAT, 0o644),
    "truncate": lambda m, f, d: os.truncate(f, 0),
    "mkdir": lambda m, f, d: os.mkdir(d / "newdir"),
    "mkdir_day": lambda m, f, d: os.mkdir(m / "2030-01-01"),
    "rmdir": lambda m, f, d: os.rmdir(d),
    "unlink": lambda m, f, d: os.unlink(f),
    "rename": lambda m, f, d: os.rename(f, d / "renamed"),
    "rename_dir": lambda m, f, d: os.rename(d, d.parent / "renamed"),
    "symlink": lambda m, f, d: os.symlink("hello.txt", d / "link"),
    "link": lambda m, f, d: os.link(f, d / "hardlink"),
    "chmod": lambda m, f, d: os.chmod(f, 0o666),
    "chmod_dir": lambda m, f, d: os.chmod(d, 0o777),
    "chown": lambda m, f, d: os.chown(f, os.getuid(), os.getgid()),
    "utime": lambda m, f, d: os.utime(f, (0, 0)),
    "utime_now": lambda m, f, d: os.utime(f),
    "setxattr": lambda m, f, d: os.setxattr(f, "user.test", b"1"),
    "setxattr_dir": lambda m, f, d: os.setxattr(d, "user.test", b"1"),
    "removexattr": lambda m, f, d: os.removexattr(f, "user.des.container"),
    "mknod_fifo": lambda m, f, d: os.mknod(d / "fifo", stat.S_IFIFO | 0o600),
    "mknod_regular": lambda m, f, d: os.mknod(d / "plain", stat.S_IFREG | 0o600),
}


@pytest.mark.parametrize("name", WRITES)
def test_write_syscalls_give_erofs(ro_mount: Path, name: str) -> None:
    shard = ro_mount / DAY / SHARD
    target = shard / "hello.txt"
    assert errno_of(lambda: WRITES[name](ro_mount, target, shard / "sub")) == errno.EROFS
    # Nothing changed.
    assert target.read_bytes() == FILES["hello.txt"]
    assert sorted(os.listdir(shard)) == ["hello.txt", "sub"]
    assert os.listdir(shard / "sub") == ["inner.txt"]


def test_mount_is_read_only_everywhere(ro_mount: Path) -> None:
    assert os.statvfs(ro_mount).f_flag & os.ST_RDONLY
    with open("/proc/self/mountinfo") as info:
        options = next(line.split()[5] for line in info if line.split()[4] == str(ro_mount))
    assert "ro" in options.split(",")
    # Opening for reading with O_CREAT on an existing file is no write: it must work.
    fd = os.open(ro_mount / DAY / SHARD / "hello.txt", os.O_RDONLY | os.O_CREAT)
    try:
        assert os.read(fd, 100) == FILES["hello.txt"]
    finally:
        os.close(fd)
    shell = run("sh", "-c", f"echo x > {ro_mount / DAY / SHARD / 'hello.txt'}")
    assert shell.returncode != 0 and "Read-only file system" in shell.stderr
    copy = run("cp", "/etc/hostname", str(ro_mount / DAY / SHARD))
    assert copy.returncode != 0 and "Read-only file system" in copy.stderr


def test_sigusr2_switches_debug_logging_on_and_off(tmp_path: Path) -> None:
    with Mounted("@sample", tmp_path / "mnt", tmp_path / "log") as mount:
        assert mount.proc is not None
        mount.proc.send_signal(signal.SIGUSR2)
        _wait_for_log(mount, "log level is now DEBUG")
        os.listdir(mount.path / "2024-12-03")
        _wait_for_log(mount, "DEBUG desfs.archive.catalog")
        mount.proc.send_signal(signal.SIGUSR2)
        _wait_for_log(mount, "log level is now INFO")


def _wait_for_log(mount: Mounted, text: str) -> None:
    for _ in range(100):
        if text in mount.log():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never logged:\n{mount.log()}")
