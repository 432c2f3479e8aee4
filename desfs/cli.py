"""The `desfs` command line: argument parsing, dispatch, and errors turned into exit codes.

Every failure a user can cause ends in one line on stderr and a documented exit code
(README, "Exit codes"); a traceback is shown only for bugs, and only with DESFS_DEBUG=1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

import trio

from desfs import __version__, offline
from desfs.errors import DesfsError, ExitCode, UsageError
from desfs.options import add_source_options, archive_settings, s3_settings
from desfs.sources import Source, open_source

log = logging.getLogger("desfs")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    _setup_logging(args.log_level or ("info" if args.command == "mount" else "warning"))
    try:
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
    parser.add_argument(
        "--log-level", help="debug, info, warning, error (default: info for mount, else warning)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_offline(sub)
    _add_pack(sub)
    from desfs.daemon import add_mount_commands

    add_mount_commands(sub)
    return parser


def _add_offline(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ls = sub.add_parser("ls", help="list days, shards or files")
    add_source_options(ls)
    ls.add_argument("paths", nargs="*", default=["/"], metavar="PATH", help="default: /")
    ls.add_argument("--all", "-a", action="store_true", help="show hidden names and why")
    ls.add_argument("--long", "-l", action="store_true", help="show sizes")
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
    add_source_options(verify)
    verify.set_defaults(handler=_run_verify)


def _add_pack(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from desfs.pack_cli import add_pack_command

    add_pack_command(sub)


def _open(args: argparse.Namespace) -> Source:
    return open_source(args.source, archive_settings(args), s3_settings(args))


def _run_ls(args: argparse.Namespace) -> int:
    source = _open(args)
    for i, path in enumerate(args.paths):
        if len(args.paths) > 1:
            # Like ls(1): a header per directory when several are listed.
            sys.stdout.write(f"{chr(10) if i else ''}{path}:\n")
        trio.run(offline.ls, source, path, args.all, args.long, sys.stdout)
    return ExitCode.OK


def _run_cat(args: argparse.Namespace) -> int:
    source = _open(args)
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
        trio.run(offline.cat, source, path, raw, sys.stdout.buffer)
    return ExitCode.OK


def _run_stat(args: argparse.Namespace) -> int:
    source = _open(args)
    trio.run(offline.stat, source, args.paths, sys.stdout)
    return ExitCode.OK


def _run_verify(args: argparse.Namespace) -> int:
    source = _open(args)
    report = trio.run(offline.verify, source, sys.stdout, sys.stderr)
    return ExitCode.PROBLEMS if report.problems else ExitCode.OK


def _setup_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise SystemExit(f"desfs: --log-level: {level!r} is not debug, info, warning or error")
    logging.basicConfig(
        level=numeric,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("botocore").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("urllib3").setLevel(max(numeric, logging.WARNING))


def mount_helper_main() -> int:
    from desfs.daemon import mount_helper

    return mount_helper(sys.argv[1:])
