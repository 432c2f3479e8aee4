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
from collections.abc import Callable
from typing import TextIO

from desfs.errors import DesfsError, ExitCode, MountError, UsageError
from desfs.options import add_source_options, archive_settings, parse_size, s3_settings
from desfs.sources import open_source

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
# mount(8) and fstab options that concern mount(8) itself, not desfs.
_IGNORED = {
    "ro", "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser",
    "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "relatime",
}  # fmt: skip
_VALUED = {
    "uid": "uid", "gid": "gid", "umask": "umask", "endpoint_url": "endpoint_url",
    "region": "region", "profile": "profile", "layout": "layout",
    "addressing_style": "addressing_style", "ca_bundle": "ca_bundle",
    "connect_timeout": "connect_timeout", "read_timeout": "read_timeout",
    "max_attempts": "max_attempts", "max_connections": "max_connections",
    "tail_window": "tail_window", "block_size": "block_size", "cache_size": "cache_size",
    "prefetch_cap": "prefetch_cap", "listing_ttl": "listing_ttl", "entry_ttl": "entry_ttl",
    "log_file": "log_file", "log_level": "log_level", "read_ahead_kb": "read_ahead_kb",
    "index_cache_size": "index_cache_size", "max_inodes": "max_inodes",
}  # fmt: skip
_FLAGS = {
    "allow_other": "allow_other",
    "nonempty": "nonempty",
    "no_sign_request": "no_sign_request",
}


def add_mount_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mount = sub.add_parser("mount", help="mount SOURCE read-only at MOUNTPOINT")
    add_source_options(mount)
    mount.add_argument("mountpoint", metavar="MOUNTPOINT")
    mount.add_argument(
        "--foreground", "-f", action="store_true", help="stay attached, log to stderr"
    )
    mount.add_argument("-o", dest="options", action="append", default=[], help="opt[,opt...]")
    mount.add_argument("--allow-other", action="store_true")
    mount.add_argument("--nonempty", action="store_true", help="allow a non-empty mountpoint")
    mount.add_argument("--uid", type=int)
    mount.add_argument("--gid", type=int)
    mount.add_argument("--umask", type=lambda v: int(v, 8))
    mount.add_argument("--entry-ttl", type=float, help="kernel cache seconds for shard contents")
    mount.add_argument(
        "--max-inodes", type=int, help="entries the kernel may cache before desfs drops the oldest"
    )
    mount.add_argument("--max-requests", type=int, default=64)
    mount.add_argument(
        "--read-ahead-kb", type=int, help="kernel readahead of the mount (root only; 1024)"
    )
    mount.add_argument("--log-file")
    mount.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    mount.set_defaults(handler=run_mount)

    umount = sub.add_parser("umount", help="unmount a desfs mount")
    umount.add_argument("mountpoint", metavar="MOUNTPOINT")
    umount.add_argument("--lazy", "-z", action="store_true", help="detach even if busy")
    umount.set_defaults(handler=run_umount)


def apply_mount_options(args: argparse.Namespace) -> None:
    """Fold `-o a,b=c` into the parsed flags; explicit flags win over `-o`."""
    for group in args.options:
        for item in filter(None, (part.strip() for part in group.split(","))):
            key, has_value, value = item.partition("=")
            key = key.replace("-", "_")
            if key in _IGNORED or key.startswith(("x-", "comment")):
                continue
            if key == "rw":
                raise UsageError("-o rw: desfs mounts are always read-only")
            if key in _FLAGS and not has_value:
                setattr(args, _FLAGS[key], True)
            elif key in _VALUED and has_value:
                _set_valued(args, _VALUED[key], value)
            else:
                raise UsageError(f"-o {item}: unknown mount option")


def _set_valued(args: argparse.Namespace, dest: str, value: str) -> None:
    if getattr(args, dest, None) is not None and dest != "log_level":
        return
    converters: dict[str, Callable[[str], object]] = {
        "uid": int, "gid": int, "umask": lambda v: int(v, 8),
        "connect_timeout": float, "read_timeout": float, "listing_ttl": float,
        "entry_ttl": float, "max_attempts": int, "max_connections": int, "read_ahead_kb": int,
        "tail_window": parse_size, "block_size": parse_size, "cache_size": parse_size,
        "prefetch_cap": parse_size, "index_cache_size": parse_size, "max_inodes": int,
    }  # fmt: skip
    try:
        setattr(args, dest, converters.get(dest, str)(value))
    except ValueError:
        raise UsageError(f"-o {dest}={value}: not a valid value") from None


def run_mount(args: argparse.Namespace) -> int:
    apply_mount_options(args)
    if not args.foreground:
        return _spawn_daemon(args)
    return _serve_foreground(args)


def _serve_foreground(args: argparse.Namespace) -> int:
    from desfs.fuse.mount import check_mountpoint, serve
    from desfs.mount_build import build_operations

    report = _ReadyPipe(args.ready_fd)
    try:
        if args.log_file:
            _log_to_file(args.log_file)
        source = open_source(args.source, archive_settings(args), s3_settings(args))
        ops, options = build_operations(args, source)
        check_mountpoint(options)
        serve(ops, options, report.ready)
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


def _spawn_daemon(args: argparse.Namespace) -> int:
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "desfs", "--log-level", args.log_level or "info"]
    argv += [*_child_arguments(args), "--foreground", "--ready-fd", str(write_end)]
    with open(os.devnull, "rb") as devnull_in, open(os.devnull, "wb") as devnull_out:
        child = subprocess.Popen(
            argv, stdin=devnull_in, stdout=devnull_out, stderr=devnull_out,
            pass_fds=(write_end,), start_new_session=True,
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


def _child_arguments(args: argparse.Namespace) -> list[str]:
    """The original command line of this `mount`, minus the daemon-only parts."""
    argv: list[str] = args.argv
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--log-level":
            skip = True
            continue
        if item.startswith("--log-level="):
            continue
        out.append(item)
    if not args.log_file and os.path.exists("/dev/log"):
        out.append("--log-file=syslog")
    return out


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
    command = ["fusermount3", "-u"] + (["-z"] if args.lazy else []) + [args.mountpoint]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return ExitCode.OK
    message = done.stderr.strip() or f"fusermount3 exited {done.returncode}"
    if "busy" in message.lower():
        message += " (a process still uses the mount; close it, or use --lazy)"
    print(f"desfs: umount {args.mountpoint}: {message}", file=sys.stderr)
    return ExitCode.PROBLEMS


def mount_helper(argv: list[str]) -> int:
    """`mount.desfs SOURCE TARGET [-sfnv] [-o options]`, as mount(8) calls it."""
    positional: list[str] = []
    options: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "-o":
            options.append(next(items, ""))
        elif item.startswith("-o") and len(item) > 2:
            options.append(item[2:])
        elif item.startswith("-") and len(item) > 1:
            continue  # -s, -f (fake), -n (no mtab), -v: nothing for desfs to do
        else:
            positional.append(item)
    if len(positional) != 2:
        print("usage: mount.desfs SOURCE MOUNTPOINT [-o options]", file=sys.stderr)
        return ExitCode.USAGE
    from desfs.cli import main

    return main(["mount", positional[0], positional[1], *(f"-o{o}" for o in options)])
