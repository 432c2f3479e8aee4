"""`desfs mount`, `desfs umount` and the `mount.desfs` helper: building and running the daemon.

Without --foreground, `desfs mount` starts itself again in the foreground as a detached
child and returns only when that child reports, through a pipe, that the mount answers
(exit 0) or that it failed (the child's exit code and message).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import select
import subprocess
import sys
import time
from typing import TextIO

import trio

from desfs import logs
from desfs.archive.sources import open_archive
from desfs.errors import DesfsError, ExitCode, MountError
from desfs.settings.flags import add_mount_flags, add_source_options, load_settings
from desfs.settings.loader import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0


def add_mount_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mount = sub.add_parser(
        "mount",
        help="mount SOURCE read-only at MOUNTPOINT",
        description="Mount SOURCE read-only at MOUNTPOINT. With --config, either may come "
        "from the file instead: `desfs mount --config FILE [[SOURCE] MOUNTPOINT]`.",
    )
    add_source_options(mount, source="?", tuning=True)
    mount.add_argument("mountpoint", metavar="MOUNTPOINT", nargs="?")
    mount.add_argument(
        "--foreground", "-f", action="store_true", help="stay attached, log to stderr"
    )
    mount.add_argument(
        "-o", dest="options", action="append", default=[],
        help="opt[,opt...]: any flag below as name or name=value (listing_ttl=30), "
        "config=FILE, debug; mount(8)'s own options (ro, rw, _netdev, nofail, ...) are accepted",
    )  # fmt: skip
    mount.add_argument(
        "--read-only", "-r", action="store_true",
        help="accepted as other FUSE tools have it; desfs mounts are always read-only",
    )  # fmt: skip
    add_mount_flags(mount)
    mount.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    mount.set_defaults(handler=run_mount)

    umount = sub.add_parser("umount", help="unmount a desfs mount")
    umount.add_argument("mountpoint", metavar="MOUNTPOINT")
    umount.add_argument("--lazy", "-z", action="store_true", help="detach even if busy")
    umount.set_defaults(handler=run_umount)


def run_mount(args: argparse.Namespace) -> int:
    # Every setting is checked here, before a daemon exists: a bad one mounts nothing.
    settings = load_settings(args, need=("source", "mountpoint"))
    if not args.foreground:
        return _spawn_daemon(args, settings)
    return _serve_foreground(args, settings)


def _serve_foreground(args: argparse.Namespace, settings: Settings) -> int:
    from desfs.commands.wiring import build_operations
    from desfs.fuse.session import check_mountpoint, serve

    report = _ReadyPipe(args.ready_fd)
    try:
        logs.set_level(settings.log_level("mount"))
        if settings.logging.file:
            _log_to_file(settings.logging.file)
        assert settings.source is not None  # load_settings insists on one
        archive = open_archive(settings.source, settings.archive, settings.s3, settings.zones)
        ops, target, tasks = build_operations(settings, archive)
        check_mountpoint(target)
        # The one question the mount needs anyway: a missing bucket, a dead endpoint or
        # refused credentials fail here, with the store's reason, instead of after "ok".
        trio.run(archive.days)
        serve(ops, target, report.ready, tasks)
    except DesfsError as exc:
        report.failed(exc.exit_code, str(exc))
        raise
    return ExitCode.OK


class _ReadyPipe:
    """The child's end of the readiness pipe (absent in a plain foreground run)."""

    def __init__(self, fd: int | None) -> None:
        self._stream: TextIO | None = os.fdopen(fd, "w") if fd is not None else None

    def ready(self) -> None:
        self._send("READY")

    def failed(self, code: int, message: str) -> None:
        self._send(f"ERROR {code} {message}")

    def _send(self, line: str) -> None:
        if self._stream is not None:
            self._stream.write(line.replace("\n", " ") + "\n")
            self._stream.close()
            self._stream = None


def _spawn_daemon(args: argparse.Namespace, settings: Settings) -> int:
    from desfs.fuse.session import passed_fd

    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "desfs", "--log-level", settings.log_level("mount"), "mount"]
    argv += ["--foreground", "--ready-fd", str(write_end)]
    if settings.logging.file is None and os.path.exists("/dev/log"):
        argv.append("--log-file=syslog")
    argv += _mount_arguments(args.argv)
    handed = passed_fd(settings.mountpoint or "")  # a /dev/fd/N mountpoint goes along
    kept = (write_end,) if handed is None else (write_end, handed)
    with open(os.devnull, "rb") as devnull_in, open(os.devnull, "wb") as devnull_out:
        child = subprocess.Popen(
            argv, stdin=devnull_in, stdout=devnull_out, stderr=devnull_out,
            pass_fds=kept, start_new_session=True,
        )  # fmt: skip
    os.close(write_end)
    line = _wait_line(read_end, child)
    if line == "READY":
        return ExitCode.OK
    if line.startswith("ERROR "):
        _, code, message = line.split(" ", 2)
        print(f"desfs: {message}", file=sys.stderr)
        return int(code)
    raise MountError(f"the mount daemon exited ({child.poll()}) without reporting; see its log")


def _mount_arguments(argv: list[str]) -> list[str]:
    """What followed `mount` on the original command line; the child parses it again, so
    it resolves the same settings (only global options such as --log-level precede it)."""
    return argv[argv.index("mount") + 1 :]


def _wait_line(fd: int, child: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    data = b""
    with os.fdopen(fd, "rb", buffering=0) as stream:
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                child.terminate()
                raise MountError(f"the mount did not answer within {READY_TIMEOUT:.0f} s")
            ready, _, _ = select.select([stream], [], [], min(remaining, 1.0))
            if ready:
                chunk = stream.read(4096)
                if not chunk:
                    break
                data += chunk
    return data.decode(errors="replace").strip()


def _log_to_file(target: str) -> None:
    root = logging.getLogger()
    handler: logging.Handler
    if target == "syslog":
        handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.setFormatter(
            logging.Formatter("desfs[%(process)d]: %(levelname)s %(name)s: %(message)s")
        )
    else:
        handler = logging.FileHandler(target)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


def run_umount(args: argparse.Namespace) -> int:
    if not is_mountpoint(args.mountpoint):
        print(f"desfs: umount {args.mountpoint}: not mounted", file=sys.stderr)
        return ExitCode.NOT_MOUNTED
    command = ["fusermount3", "-u"] + (["-z"] if args.lazy else []) + [args.mountpoint]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return ExitCode.OK
    message = done.stderr.strip() or f"fusermount3 exited {done.returncode}"
    if "busy" in message.lower():
        message += " (a process still uses the mount; close it, or use --lazy)"
    print(f"desfs: umount {args.mountpoint}: {message}", file=sys.stderr)
    return ExitCode.PROBLEMS


def is_mountpoint(path: str) -> bool:
    """Whether something is mounted at `path`, from /proc/self/mountinfo: a stat of a dead
    or stopped FUSE mount would fail or wait, the kernel's table does neither."""
    target = os.path.abspath(path)
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == target:
                return True
    return False


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
