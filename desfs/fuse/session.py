"""The mount lifecycle: check the mountpoint, mount, serve, and unmount on every exit path.

One exit path, two triggers: SIGTERM/SIGINT call `pyfuse3.terminate()`, an external
`fusermount3 -u` ends `pyfuse3.main()` by itself; either way `pyfuse3.close(unmount=True)`
runs last. Readiness (systemd READY=1 and the daemonizing parent's pipe) is announced only
after a `stat` of the mountpoint has gone through the kernel to this daemon and back.

The mountpoint may also be `/dev/fd/N`: a /dev/fuse descriptor another process (a
Kubernetes CSI driver) opened and mounted, then handed over. libfuse serves it as is, so
desfs needs no privilege and no fusermount3; it never unmounts it (its mounter does) and
cannot stat a mount it does not know the path of, so it is ready once the session is.
"""

from __future__ import annotations

import errno
import faulthandler
import logging
import os
import re
import signal
import stat
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import trio

from desfs import logs
from desfs.errors import MountError, MountpointError
from desfs.fuse.notify import sd_notify
from desfs.fuse.operations import FuseOperations
from desfs.settings.sections import MountSettings

log = logging.getLogger(__name__)

# Once every request is answered at once, an invalidation ends within milliseconds.
RELEASER_STOP_SECONDS = 5.0
HEARTBEAT_SECONDS = 5.0  # the ready file's mtime is at most this old while the loop runs
_FD_MOUNTPOINT = re.compile(r"/dev/fd/([0-9]+)", re.ASCII)
_FUSE_DEVICE = os.makedev(10, 229)  # /dev/fuse


@dataclass(frozen=True, slots=True)
class MountTarget:
    """Where to mount, under which name, with which mount settings."""

    mountpoint: str
    fsname: str
    settings: MountSettings

    def fuse_options(self) -> set[str]:
        options = {
            f"fsname={self.fsname}",
            "subtype=desfs",
            "ro",
            "default_permissions",
            "noatime",
        }
        if self.settings.allow_other:
            options.add("allow_other")
        return options


def passed_fd(mountpoint: str) -> int | None:
    """N for a `/dev/fd/N` mountpoint (a descriptor handed over), else None."""
    found = _FD_MOUNTPOINT.fullmatch(mountpoint)
    return int(found.group(1)) if found is not None else None


def check_mountpoint(target: MountTarget) -> None:
    """Refuse a missing, non-directory, non-empty or already-mounted mountpoint, or a
    `/dev/fd/N` that is not an open /dev/fuse descriptor."""
    path = target.mountpoint
    fd = passed_fd(path)
    if fd is not None:
        _check_passed_fd(fd)
        return
    try:
        os.stat(path)  # stat(2) never triggers an automount
        if _top_mount_type(path) == "autofs":
            # A systemd .automount trigger: mounting over it is the point, and looking
            # inside would wait for this very mount.
            return
        if os.path.ismount(path):
            # The kernel may answer the stat of a dead FUSE mount's root from its
            # attribute cache; statfs always asks the filesystem, so it sees ENOTCONN.
            os.statvfs(path)
    except FileNotFoundError:
        raise MountpointError(f"mountpoint {path} does not exist") from None
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise MountpointError(f"mountpoint {path}: {exc.strerror}") from None
        _clean_stale(path)
    if os.path.ismount(path):
        raise MountpointError(f"{path} is already a mountpoint; unmount it first")
    if not os.path.isdir(path):
        raise MountpointError(f"mountpoint {path} is not a directory")
    if os.listdir(path) and not target.settings.allow_nonempty:
        raise MountpointError(f"mountpoint {path} is not empty")


def _check_passed_fd(fd: int) -> None:
    try:
        info = os.fstat(fd)
    except OSError:
        raise MountpointError(f"/dev/fd/{fd}: no such open descriptor") from None
    if not stat.S_ISCHR(info.st_mode) or info.st_rdev != _FUSE_DEVICE:
        raise MountpointError(f"/dev/fd/{fd} is not a /dev/fuse descriptor")


def _clean_stale(path: str) -> None:
    log.warning("%s is a dead FUSE mount (transport endpoint not connected); unmounting it", path)
    done = subprocess.run(
        ["fusermount3", "-u", "-z", path], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise MountpointError(f"{path} is a dead mount and could not be unmounted: {done.stderr}")


def serve(
    ops: FuseOperations,
    target: MountTarget,
    on_ready: Callable[[], None],
    tasks: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Mount, serve until unmounted or signalled, and always unmount.

    `tasks` run beside the filesystem for as long as it is mounted (metrics publishing).
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        pyfuse3.init(ops, target.mountpoint, target.fuse_options())
    except RuntimeError as exc:
        raise MountError(f"could not mount {target.mountpoint}: {exc}") from None
    try:
        trio.run(_main, ops, target, on_ready, tasks)
    finally:
        pyfuse3.close(unmount=True)
    log.info("unmounted %s", target.mountpoint)


async def _main(
    ops: FuseOperations,
    target: MountTarget,
    on_ready: Callable[[], None],
    tasks: Sequence[Callable[[], Awaitable[None]]],
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, ops, target, nursery.cancel_scope)
        for task in tasks:
            nursery.start_soon(task)
        nursery.start_soon(_announce_ready, target, on_ready)
        nursery.start_soon(ops.releaser.run)
        await pyfuse3.main(max_tasks=target.settings.max_requests)
        # Unmounted from outside, or stopped by a signal: no invalidation may still be in
        # the kernel when the session is closed (docs/CONCURRENCY.md).
        with trio.move_on_after(RELEASER_STOP_SECONDS):
            await ops.releaser.stop()
        nursery.cancel_scope.cancel()


async def _announce_ready(target: MountTarget, on_ready: Callable[[], None]) -> None:
    if passed_fd(target.mountpoint) is None:
        await trio.to_thread.run_sync(os.stat, target.mountpoint)
        _raise_read_ahead(target)
        log.info("mounted %s at %s", target.fsname, target.mountpoint)
    else:
        log.info("serving %s on %s (mounted by its opener)", target.fsname, target.mountpoint)
    sd_notify("READY=1")
    on_ready()
    ready_file = target.settings.ready_file
    if ready_file is not None:
        await _heartbeat(ready_file)


async def _heartbeat(path: Path) -> None:
    """Keep `path` fresh while this loop runs, and remove it when the mount stops: a
    probe that finds it missing or old knows the daemon is gone or stuck."""
    warned = False
    try:
        while True:
            try:
                await trio.to_thread.run_sync(_touch, path)
            except OSError as exc:
                if not warned:
                    log.warning("ready file %s: %s", path, exc.strerror or exc)
                warned = True
            await trio.sleep(HEARTBEAT_SECONDS)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_remove, path)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # its directory went away or changed hands: only a warning
        log.warning("ready file %s not removed: %s", path, exc.strerror or exc)


def _touch(path: Path) -> None:
    """Write, then rename into place, so a probe never reads a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"{os.getpid()}\n")
    os.replace(temporary, path)


async def _stop_on_signal(
    ops: FuseOperations, target: MountTarget, session: trio.CancelScope
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR2) as signals:
        async for signum in signals:
            if signum == signal.SIGUSR2:
                log.warning("SIGUSR2: log level is now %s", logs.toggle_debug())
                continue
            log.info("%s received, unmounting", signal.Signals(signum).name)
            sd_notify("STOPPING=1")
            await shut_down(ops, target)
            # Every handler has been told to answer; one that cannot is cut off.
            session.deadline = trio.current_time() + RELEASER_STOP_SECONDS
            return


async def shut_down(ops: FuseOperations, target: MountTarget) -> None:
    """Stop in the one order that cannot leave a thread waiting in the kernel.

    1. Stop entry invalidation while every request is still read and answered, since an
       invalidation may wait for a directory lock that only an answer releases.
    2. Stop reading requests; those in flight get the rest of `shutdown_grace`.
    3. Make whatever is still in flight answer EIO, so pyfuse3.main() returns.
    """
    deadline = trio.current_time() + target.settings.shutdown_grace
    with trio.move_on_at(deadline):
        await ops.releaser.stop()
    if ops.releaser.busy:
        # A slow request (a stalled store) holds the lock: answer everything now.
        log.warning("stopping: %d requests in flight answer EIO", len(ops.requests))
        ops.requests.fail_all()
        with trio.move_on_after(RELEASER_STOP_SECONDS):
            await ops.releaser.stop()
        if ops.releaser.busy:
            _abort_connection(target.mountpoint)
    pyfuse3.terminate()
    with trio.move_on_at(deadline):
        await ops.requests.idle()
    if len(ops.requests):
        log.warning("stopping: %d requests still in flight answer EIO", len(ops.requests))
    ops.requests.fail_all()


def _abort_connection(mountpoint: str) -> None:
    """The last resort when an invalidation stays stuck: abort the FUSE connection, which
    ends every request in the kernel (root only)."""
    device = _mount_device(mountpoint)  # never stat(2) our own mount from the trio thread
    if device is None:
        log.error("an entry invalidation is stuck in the kernel; %s is not mounted", mountpoint)
        return
    connections = "/sys/fs/fuse/connections"
    if not os.listdir(connections) and os.geteuid() == 0:
        # fusectl is not mounted everywhere (systemd mounts it; containers may not).
        subprocess.run(["mount", "-t", "fusectl", "none", connections], check=False)
    path = f"{connections}/{device.partition(':')[2]}/abort"
    try:
        with open(path, "w") as abort:
            abort.write("1")
        log.error("an entry invalidation stayed stuck in the kernel; aborted %s", path)
    except OSError as exc:
        log.error("an entry invalidation is stuck in the kernel and abort failed: %s", exc)


def _raise_read_ahead(target: MountTarget) -> None:
    """Raise the mount's bdi readahead, the one readahead lever pyfuse3 leaves us."""
    if target.settings.read_ahead_kb <= 0 or os.geteuid() != 0:
        return
    device = _mount_device(target.mountpoint)
    if device is None:
        return
    path = f"/sys/class/bdi/{device}/read_ahead_kb"
    try:
        with open(path, "w") as sysfs:
            sysfs.write(str(target.settings.read_ahead_kb))
    except OSError as exc:
        log.info("could not set %s: %s", path, exc)


def _top_mount_type(mountpoint: str) -> str | None:
    """The filesystem type of the topmost mount at `mountpoint`, if one is there."""
    target = os.path.realpath(mountpoint)
    found = None
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields, _, rest = line.partition(" - ")
            if len(fields.split()) > 4 and fields.split()[4] == target:
                found = rest.split()[0]
    return found


def _mount_device(mountpoint: str) -> str | None:
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            if len(fields) > 4 and fields[4] == target:
                return fields[2]
    return None
