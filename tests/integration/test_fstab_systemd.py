"""fstab and systemd: `mount.desfs` called exactly as mount(8) calls it, the real mount(8)
with `desfs` and `fuse.desfs` fstab lines in a private mount namespace, readiness and stopping
over a real NOTIFY_SOCKET, and `systemd-analyze verify` on the shipped units."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from desfs.archive.sources import sample_dir
from tests.support.mounting import needs_fuse

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SAMPLE = str(sample_dir())
DAYS = ["2024-12-03", "2024-12-04"]
TIMEOUT = 30.0


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "archive.yaml"
    settings = {"mount": {"umask": "027"}, "logging": {"file": str(tmp_path / "daemon.log")}}
    config.write_text(yaml.safe_dump(settings))
    config.chmod(0o600)
    return config


def daemon_log(tmp_path: Path) -> str:
    path = tmp_path / "daemon.log"
    return path.read_text(errors="replace") if path.exists() else "(no daemon log)"


def daemons_of(mnt: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(mnt).encode() in words and any(b"desfs" in word for word in words):
            found.append(int(entry.name))
    return found


def wait_no_daemon(mnt: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while daemons_of(mnt):
        assert time.monotonic() < deadline, f"a daemon still serves {mnt}"
        time.sleep(0.05)


def mount_entry(mnt: Path) -> tuple[str, set[str]]:
    """(filesystem type, mount and super options) of the mount at `mnt`."""
    with open("/proc/self/mountinfo") as info:
        for line in info:
            left, _, right = line.partition(" - ")
            if left.split()[4] == str(mnt):
                fstype, _, supers = right.split()
                return fstype, set(left.split()[5].split(",")) | set(supers.split(","))
    raise AssertionError(f"{mnt} is not mounted")


@contextmanager
def unmounted_after(mnt: Path) -> Iterator[None]:
    try:
        yield
    finally:
        done = subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, check=False)
        wait_no_daemon(mnt)


def other_users_allowed() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        return "user_allow_other" in Path("/etc/fuse.conf").read_text().split()
    except OSError:
        return False


# -- mount(8)'s calling convention ------------------------------------------------------------

# How each entry point is called, per util-linux (helpers) and libfuse (mount.fuse3).
STYLES = {
    # `mount -t desfs SOURCE DIR -o OPTS`, or a `desfs` fstab line -> /sbin/mount.desfs
    "mount.desfs": ("mount.desfs", ["-o", "{opts}"]),
    # a `fuse.desfs` line, verbose, no mtab, via a helper not named after the type
    "mount.desfs-with-type": ("mount.desfs", ["-n", "-v", "-o", "{opts}", "-t", "fuse.desfs"]),
    # a `fuse.desfs` line through mount.fuse3: it runs `desfs SOURCE DIR -o OPTS,dev,suid`
    "desfs-by-mount.fuse3": ("desfs", ["-o", "{opts},dev,suid"]),
}


@needs_fuse()
@pytest.mark.parametrize("style", STYLES)
def test_the_helper_mounts_when_called_as_mount8_calls_it(tmp_path: Path, style: str) -> None:
    program, tail = STYLES[style]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    config = write_config(tmp_path)
    shared = ",allow_other" if other_users_allowed() else ""
    opts = f"rw,config={config},_netdev{shared},uid=4321,gid=5432"
    argv = [str(BIN / program), SAMPLE, str(mnt), *(w.replace("{opts}", opts) for w in tail)]
    with unmounted_after(mnt):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{done.stderr}\n{daemon_log(tmp_path)}"
        fstype, options = mount_entry(mnt)
        assert fstype == "fuse.desfs"
        assert "ro" in options
        assert ("allow_other" in options) == bool(shared)
        root = os.stat(mnt)
        assert (root.st_uid, root.st_gid) == (4321, 5432)
        assert stat.S_IMODE(root.st_mode) == 0o550  # umask 027 from the config file
        assert sorted(os.listdir(mnt)) == DAYS


@needs_fuse()
def test_the_helper_refuses_without_mounting(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    config = tmp_path / "bad.yaml"
    config.write_text("mount:\n  uid: -1\n")
    done = subprocess.run(
        [str(BIN / "mount.desfs"), SAMPLE, str(mnt), "-o", f"rw,config={config}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "mount.uid: -1 is out of range" in done.stderr
    assert not os.path.ismount(mnt)
    assert daemons_of(mnt) == []


# -- the real mount(8) and fstab, in a private mount namespace --------------------------------


def namespace_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "mount(8) with a helper and a private mount namespace need root"
    for tool in ("unshare", "mount", "umount", "findmnt"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = ["unshare", "-m", "--propagation", "private", "true"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        return "cannot create a mount namespace here"
    return None


# Inside the namespace only, an overlay adds desfs's entry points to a system directory:
# mount(8) looks for helpers in /sbin alone, mount.fuse3 runs `desfs` from a fixed PATH.
SCRIPT = """
set -eu
mount -t overlay overlay -o "lowerdir=$LINKS:$SYSDIR" "$SYSDIR" || exit 99
trap 'for m in $MOUNTS; do umount -l "$m" 2>/dev/null || true; done' EXIT
for m in $MOUNTS; do
    mount -T "$FSTAB" "$m"
    entry=$(findmnt -n -o FSTYPE,OPTIONS --mountpoint "$m")
    echo "$m|$entry|$(stat -c %u:%g:%a "$m")|$(ls "$m" | tr "\n" " ")"
done
for m in $MOUNTS; do umount "$m"; done
"""


def run_mount8(tmp_path: Path, links: dict[str, str], sysdir: str, lines: list[str]) -> str:
    folder = tmp_path / f"links-{len(os.listdir(tmp_path))}"
    folder.mkdir()
    for name, target in links.items():
        (folder / name).symlink_to(BIN / target)
    fstab = tmp_path / "fstab"
    fstab.write_text("".join(f"{line}\n" for line in lines))
    mounts = " ".join(line.split()[1] for line in lines)
    env = {**os.environ, "LINKS": str(folder), "SYSDIR": sysdir, "FSTAB": str(fstab)}
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", SCRIPT],
        capture_output=True, text=True, timeout=90, check=False,
        env={**env, "MOUNTS": mounts},
    )  # fmt: skip
    if done.returncode == 99:
        pytest.skip(f"no overlay filesystem here: {done.stderr.strip()}")
    for line in lines:
        wait_no_daemon(Path(line.split()[1]))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon_log(tmp_path)}"
    return done.stdout


@needs_fuse()
@pytest.mark.skipif(namespace_skip_reason() is not None, reason=str(namespace_skip_reason()))
def test_fstab_lines_of_both_types_mount_with_mount8(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    typed, fuse_typed, via_fuse3 = (tmp_path / name for name in ("a", "b", "c"))
    for mnt in (typed, fuse_typed, via_fuse3):
        mnt.mkdir()
    helpers = {"mount.desfs": "mount.desfs", "mount.fuse.desfs": "mount.desfs"}
    out = run_mount8(
        tmp_path,
        helpers,
        "/usr/sbin",
        [
            f"{SAMPLE} {typed} desfs config={config},_netdev,uid=1234,gid=2345,noauto 0 0",
            f"{SAMPLE} {fuse_typed} fuse.desfs config={config},_netdev,allow_other,nofail 0 0",
        ],
    )
    # Without a mount.fuse.desfs link, mount(8) hands a fuse.desfs line to mount.fuse3.
    out += run_mount8(
        tmp_path,
        {"desfs": "desfs"},
        "/usr/local/bin",
        [f"{SAMPLE} {via_fuse3} fuse.desfs config={config},_netdev,x-systemd.automount 0 0"],
    )
    seen = {Path(line.split("|")[0]): line.split("|")[1:] for line in out.splitlines()}
    assert set(seen) == {typed, fuse_typed, via_fuse3}, out
    for mnt, (mount, owner, listing) in seen.items():
        fstype, options = mount.split()
        assert fstype == "fuse.desfs", mount
        assert "ro" in options.split(","), mount
        assert ("allow_other" in options) == (mnt == fuse_typed), mount
        uid_gid = "1234:2345" if mnt == typed else "0:0"
        assert owner == f"{uid_gid}:550", owner
        assert listing.split() == DAYS
        assert not os.path.ismount(mnt)


# -- sd_notify --------------------------------------------------------------------------------


@contextmanager
def notify_socket(tmp_path: Path, abstract: bool) -> Iterator[tuple[socket.socket, str]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"desfs-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify.sock")
            sock.bind(address)
        sock.settimeout(0.05)
        yield sock, address


def receive(sock: socket.socket, proc: subprocess.Popen[bytes], log: Path) -> bytes:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            return sock.recv(4096)
        except TimeoutError:
            code = proc.poll()
            assert code is None or code == 0, f"daemon exited {code}:\n{log.read_text()}"
    raise AssertionError(f"no notification within {TIMEOUT}s:\n{log.read_text()}")


@needs_fuse()
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_only_once_the_mount_answers_and_stopping_on_sigterm(
    tmp_path: Path, abstract: bool
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir(mode=0o755)
    log = tmp_path / "daemon.log"
    with notify_socket(tmp_path, abstract) as (sock, address), open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "desfs", "mount", SAMPLE, str(mnt), "--foreground"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "NOTIFY_SOCKET": address},
        )  # fmt: skip
        try:
            assert receive(sock, proc, log) == b"READY=1"
            # Sent after the mount answered: the directory is desfs's root (0555), not the
            # empty 0755 directory underneath, and it lists the archive.
            assert os.path.ismount(mnt)
            assert stat.S_IMODE(os.stat(mnt).st_mode) == 0o555
            assert sorted(os.listdir(mnt)) == DAYS
            proc.send_signal(signal.SIGTERM)
            assert receive(sock, proc, log) == b"STOPPING=1"
            assert proc.wait(timeout=TIMEOUT) == 0, log.read_text()
            assert not os.path.ismount(mnt)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=TIMEOUT)
                # A dead mount of the killed daemon, if it got that far.
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


# -- the shipped units ------------------------------------------------------------------------


def test_shipped_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    shipped = sorted((REPO / "systemd").iterdir())
    assert {p.name for p in shipped} >= {
        "desfs@.service", "desfs-serve@.service", "mnt-archive.mount", "mnt-archive.automount",
    }  # fmt: skip
    template = (REPO / "systemd" / "desfs@.service").read_text()
    command = "/usr/local/bin/desfs mount --foreground --config /etc/desfs/%i.yaml"
    assert f"ExecStart={command}" in template.splitlines()
    assert "Type=notify" in template.splitlines()
    for unit in shipped:
        text = unit.read_text()
        # verify insists that ExecStart's program exists; point it at this checkout's.
        (tmp_path / unit.name).write_text(text.replace("/usr/local/bin/desfs", str(BIN / "desfs")))
    (tmp_path / "desfs@archive.service").symlink_to(tmp_path / "desfs@.service")
    (tmp_path / "desfs-serve@archive.service").symlink_to(tmp_path / "desfs-serve@.service")
    units = [
        "desfs@archive.service", "desfs-serve@archive.service",
        "mnt-archive.mount", "mnt-archive.automount",
    ]  # fmt: skip
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / u) for u in units)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # verify only warns about unknown keys and bad values; any word about our units fails.
    ours = [line for line in done.stderr.splitlines() if str(tmp_path) in line or "desfs" in line]
    assert ours == [], done.stderr
