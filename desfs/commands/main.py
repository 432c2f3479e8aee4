"""The `desfs` command line: argument parsing, dispatch, and errors turned into exit codes.

Every failure a user can cause ends in one line on stderr and a documented exit code
(README, "Exit codes"); a traceback is shown only for bugs, and only with DESFS_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from desfs import __version__, logs
from desfs.archive.engine import Archive
from desfs.archive.sources import open_archive
from desfs.commands import live, offline, verify
from desfs.commands.helper import helper_parser, mount_words
from desfs.commands.mount import add_mount_commands
from desfs.commands.pack import add_pack_command
from desfs.commands.serve import add_serve_command
from desfs.errors import DesfsError, ExitCode, UsageError
from desfs.settings.flags import add_source_options, load_settings
from desfs.settings.keys import BY_PATH
from desfs.settings.loader import parse_value

log = logging.getLogger("desfs")


COMMANDS = (
    "ls", "cat", "stat", "verify", "pack", "mount", "umount", "serve", "status", "ready", "warm",
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    words = list(argv if argv is not None else sys.argv[1:])
    if _called_by_mount_fuse(words):
        return mount_helper(words)
    parser = build_parser()
    args = parser.parse_args(words)
    args.argv = words
    try:
        _setup_logging(args.log_level, args.command)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except DesfsError as exc:
        print(f"desfs: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:
        if os.environ.get("DESFS_DEBUG"):
            raise
        print(f"desfs: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.INTERNAL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="desfs", description="DES containers as a filesystem")
    parser.add_argument("--version", action="version", version=f"desfs {__version__}")
    _add_log_flags(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_offline(sub)
    add_pack_command(sub)
    add_mount_commands(sub)
    add_serve_command(sub)
    _add_ops(sub)
    shell = sub.add_parser("completion", help="print a bash or zsh completion script")
    shell.add_argument("shell", choices=SHELLS)
    shell.set_defaults(handler=lambda args: _run_completion(parser, args.shell))
    for command in sub.choices.values():
        # Before or after the command word, as people type them.
        _add_log_flags(command, argparse.SUPPRESS)
    return parser


SHELLS = ("bash", "zsh")


def _run_completion(parser: argparse.ArgumentParser, shell: str) -> int:
    import shtab  # only this command needs it

    sys.stdout.write(shtab.complete(parser, shell=shell))
    return ExitCode.OK


def _add_log_flags(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default,
        help="debug, info, warning or error, any case (config: logging.level; default: info "
        "for mount, warning for the other commands)",
    )
    group.add_argument(
        "-d", "--debug", dest="log_level", action="store_const", const="debug",
        default=default, help="the same as --log-level debug",
    )  # fmt: skip


def _add_ops(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="live counters of a mounted desfs")
    status.add_argument("mountpoint", type=Path, metavar="MOUNTPOINT")
    status.add_argument("--json", action="store_true", help="the raw JSON")
    status.add_argument(
        "--pid", action="store_true", help="only the daemon's process id (for kill -USR1/USR2)"
    )
    status.set_defaults(handler=_run_status)

    ready = sub.add_parser(
        "ready",
        help="exit 0 when a mount serves (a readiness probe)",
        description="Exit 0 when MOUNTPOINT answers through the kernel and, with --file, "
        "when the daemon's ready file (mount.ready_file) is fresh. Exit 8 when nothing "
        "is mounted or the file is missing, 7 when the daemon does not answer in time.",
    )
    ready.add_argument("mountpoint", type=Path, metavar="MOUNTPOINT", nargs="?")
    ready.add_argument("--file", type=Path, help="the mount's --ready-file")
    ready.add_argument(
        "--max-age", type=float, default=30.0, metavar="SECONDS",
        help="oldest heartbeat accepted (default: 30; the daemon writes one every 5 s)",
    )  # fmt: skip
    ready.set_defaults(handler=_run_ready)

    warm = sub.add_parser("warm", help="load a day's indices (and data) into a mount's caches")
    warm.add_argument("path", type=Path, metavar="PATH", help="a day or shard directory")
    warm.add_argument("--data", action="store_true", help="also read every file")
    warm.add_argument("--jobs", type=int, default=8, help="shards warmed at once")
    warm.set_defaults(handler=_run_warm)


def _run_status(args: argparse.Namespace) -> int:
    stats = live.read_stats(args.mountpoint)
    if args.pid:
        print(stats.get("pid"))
    elif args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        live.print_status(stats, sys.stdout)
    return ExitCode.OK


def _run_ready(args: argparse.Namespace) -> int:
    live.check_ready(args.mountpoint, args.file, args.max_age)
    print("ready")
    return ExitCode.OK


def _run_warm(args: argparse.Namespace) -> int:
    progress = live.warm(args.path, args.data, args.jobs)
    print(
        f"warmed {progress.shards_done} shards, {progress.files} files, "
        f"{progress.bytes} bytes read, {progress.errors} errors"
    )
    return ExitCode.PROBLEMS if progress.errors else ExitCode.OK


def _add_offline(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ls = sub.add_parser("ls", help="list days, shards or files")
    add_source_options(ls)
    ls.add_argument("paths", nargs="*", default=["/"], metavar="PATH", help="default: /")
    ls.add_argument("--all", "-a", action="store_true", help="show hidden names and why")
    ls.add_argument("--long", "-l", action="store_true", help="show sizes")
    ls.add_argument("--json", action="store_true", help="a JSON list of objects (by PATH)")
    ls.set_defaults(handler=_run_ls)

    cat = sub.add_parser("cat", help="write a file's bytes to stdout")
    add_source_options(cat)
    cat.add_argument("paths", nargs="+", metavar="PATH", help="one or more; bytes concatenated")
    raw = cat.add_mutually_exclusive_group()
    raw.add_argument("--name", help="read by raw entry name inside the shard PATH")
    raw.add_argument("--name-hex", help="read by raw entry name, given as hex bytes")
    cat.set_defaults(handler=_run_cat)

    stat = sub.add_parser("stat", help="JSON description of a file, shard or day")
    add_source_options(stat)
    stat.add_argument("paths", nargs="+", metavar="PATH", help="several give a JSON list")
    stat.set_defaults(handler=_run_stat)

    verify = sub.add_parser("verify", help="parse and decode everything; exit 1 on damage")
    add_source_options(verify, source="?")
    verify.add_argument(
        "--json", action="store_true", help="JSON lines: one per problem, then the summary"
    )
    verify.set_defaults(handler=_run_verify)


def _open(args: argparse.Namespace) -> Archive:
    settings = load_settings(args)
    logs.set_level(settings.log_level(args.command))
    assert settings.source is not None  # load_settings insists on one
    return open_archive(settings.source, settings.archive, settings.s3, settings.zones)


def _run_ls(args: argparse.Namespace) -> int:
    archive = _open(args)
    if args.json:
        found = {path: trio.run(offline.listing, archive, path, args.all) for path in args.paths}
        document: object = found[args.paths[0]] if len(args.paths) == 1 else found
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return ExitCode.OK
    for i, path in enumerate(args.paths):
        if len(args.paths) > 1:
            # Like ls(1): a header per directory when several are listed.
            sys.stdout.write(f"{chr(10) if i else ''}{path}:\n")
        trio.run(offline.ls, archive, path, args.all, args.long, sys.stdout)
    return ExitCode.OK


def _run_cat(args: argparse.Namespace) -> int:
    archive = _open(args)
    raw: bytes | None = None
    if args.name is not None:
        raw = args.name.encode("utf-8", "surrogateescape")
    elif args.name_hex is not None:
        try:
            raw = bytes.fromhex(args.name_hex)
        except ValueError:
            raise UsageError(f"--name-hex: {args.name_hex!r} is not hex") from None
    if raw is not None and len(args.paths) != 1:
        raise UsageError("--name and --name-hex take exactly one shard PATH")
    for path in args.paths:
        trio.run(offline.cat, archive, path, raw, sys.stdout.buffer)
    return ExitCode.OK


def _run_stat(args: argparse.Namespace) -> int:
    archive = _open(args)
    trio.run(offline.stat, archive, args.paths, sys.stdout)
    return ExitCode.OK


def _run_verify(args: argparse.Namespace) -> int:
    archive = _open(args)
    if getattr(args, "log_level", None) is None:
        # verify reports every problem on a BAD line of its own: not twice.
        logging.getLogger("desfs.archive").setLevel(logging.ERROR)
    report = trio.run(verify.verify, archive, sys.stdout, sys.stderr, args.json)
    return ExitCode.PROBLEMS if report.problems else ExitCode.OK


def _setup_logging(flag: str | None, command: str) -> None:
    """Log to stderr at the --log-level flag's level until the settings say otherwise."""
    level = parse_value(BY_PATH["logging.level"], flag, "--log-level", True) if flag else None
    logs.setup(level or ("info" if command == "mount" else "warning"), daemon=command == "mount")


def _called_by_mount_fuse(words: list[str]) -> bool:
    """`desfs SOURCE MOUNTPOINT -o OPTIONS`: how mount.fuse3 runs desfs for a `fuse.desfs`
    fstab line when no mount.fuse.desfs helper is installed."""
    return (
        bool(words)
        and words[0] not in COMMANDS
        and not words[0].startswith("-")
        and any(word.startswith("-o") for word in words)
    )


def mount_helper(argv: list[str]) -> int:
    """Run a mount(8)-style helper call (`mount.desfs` or mount.fuse3's) as `desfs mount`."""
    if "-h" in argv or "--help" in argv:
        helper_parser().print_help()
        return ExitCode.OK
    try:
        words = mount_words(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return ExitCode.USAGE
    return main(words)


def mount_helper_main() -> int:
    return mount_helper(sys.argv[1:])
