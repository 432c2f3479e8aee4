"""The mount lifecycle: check the mountpoint, mount, serve, and unmount on every exit path.

One exit path, two triggers: SIGTERM/SIGINT call `pyfuse3.terminate()`, an external
`fusermount3 -u` ends `pyfuse3.main()` by itself; either way `pyfuse3.close(unmount=True)`
runs last. Readiness (systemd READY=1 and the daemonizing parent's pipe) is announced only
after a `stat` of the mountpoint has gone through the kernel to this daemon and back.
"""

from __future__ import annotations

import errno
import faulthandler
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pyfuse3
import trio

from desfs import logs
from desfs.errors import MountError, MountpointError
from desfs.fuse.notify import sd_notify
from desfs.fuse.operations import FuseOperations

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MountOptions:
    mountpoint: str
    fsname: str
    allow_other: bool = False
    allow_nonempty: bool = False
    max_requests: int = 64  # concurrent FUSE handlers (pyfuse3 max_tasks)
    shutdown_grace: float = 10.0  # seconds in-flight requests get after SIGTERM
    read_ahead_kb: int = (
        1024  # bdi readahead of the mount when running as root; 0 keeps the default
    )

    def fuse_options(self) -> set[str]:
        options = {
            f"fsname={self.fsname}",
            "subtype=desfs",
            "ro",
            "default_permissions",
            "noatime",
        }
        if self.allow_other:
            options.add("allow_other")
        return options


def check_mountpoint(options: MountOptions) -> None:
    """Refuse a missing, non-directory, non-empty or already-mounted mountpoint."""
    path = options.mountpoint
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
    if os.listdir(path) and not options.allow_nonempty:
        raise MountpointError(f"mountpoint {path} is not empty")


def _clean_stale(path: str) -> None:
    log.warning("%s is a dead FUSE mount (transport endpoint not connected); unmounting it", path)
    done = subprocess.run(
        ["fusermount3", "-u", "-z", path], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise MountpointError(f"{path} is a dead mount and could not be unmounted: {done.stderr}")


def serve(
    ops: FuseOperations,
    options: MountOptions,
    on_ready: Callable[[], None],
    tasks: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Mount, serve until unmounted or signalled, and always unmount.

    `tasks` run beside the filesystem for as long as it is mounted (metrics publishing).
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        pyfuse3.init(ops, options.mountpoint, options.fuse_options())
    except RuntimeError as exc:
        raise MountError(f"could not mount {options.mountpoint}: {exc}") from None
    try:
        trio.run(_main, ops, options, on_ready, tasks)
    finally:
        pyfuse3.close(unmount=True)
    log.info("unmounted %s", options.mountpoint)


async def _main(
    ops: FuseOperations,
    options: MountOptions,
    on_ready: Callable[[], None],
    tasks: Sequence[Callable[[], Awaitable[None]]],
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope, options.shutdown_grace)
        for task in tasks:
            nursery.start_soon(task)
        nursery.start_soon(_announce_ready, options, on_ready)
        nursery.start_soon(ops.release_entries)
        await pyfuse3.main(max_tasks=options.max_requests)
        nursery.cancel_scope.cancel()


async def _announce_ready(options: MountOptions, on_ready: Callable[[], None]) -> None:
    await trio.to_thread.run_sync(os.stat, options.mountpoint)
    _raise_read_ahead(options)
    log.info("mounted %s at %s", options.fsname, options.mountpoint)
    sd_notify("READY=1")
    on_ready()


async def _stop_on_signal(scope: trio.CancelScope, grace: float) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR2) as signals:
        async for signum in signals:
            if signum == signal.SIGUSR2:
                log.warning("SIGUSR2: log level is now %s", logs.toggle_debug())
                continue
            log.info("%s received, unmounting", signal.Signals(signum).name)
            sd_notify("STOPPING=1")
            pyfuse3.terminate()
            scope.deadline = trio.current_time() + grace
            return


def _raise_read_ahead(options: MountOptions) -> None:
    """Raise the mount's bdi readahead, the one readahead lever pyfuse3 leaves us."""
    if options.read_ahead_kb <= 0 or os.geteuid() != 0:
        return
    device = _mount_device(options.mountpoint)
    if device is None:
        return
    path = f"/sys/class/bdi/{device}/read_ahead_kb"
    try:
        with open(path, "w") as sysfs:
            sysfs.write(str(options.read_ahead_kb))
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
