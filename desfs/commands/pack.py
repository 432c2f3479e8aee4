"""`desfs pack`: write a directory of files as one day of DES containers."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from desfs.errors import ExitCode, UsageError
from desfs.format.model import Codec, Format
from desfs.pack.options import (
    DATAVISION_DEFAULT_BIG_FILE,
    DES_DEFAULT_BIG_FILE,
    DES_DEFAULT_BITS,
    DES_DEFAULT_MAX_CONTAINER,
    PackOptions,
)
from desfs.pack.plan import load_metadata, pack_directory
from desfs.settings.flags import parse_size
from desfs.settings.kinds import show_size

FORMATS = {"datavision": Format.DESHEAD1, "des": Format.DES2}
CODECS = {"none": Codec.NONE, "zstd": Codec.ZSTD, "lz4": Codec.LZ4}


def add_pack_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pack = sub.add_parser(
        "pack",
        help="write a directory of files as DES containers",
        description="Write the regular files under DIR as one day of containers in the "
        "upstream's daily layout under OUT, byte-compatible with the upstream readers. "
        "Symbolic links are not followed and empty directories have no place in a "
        "container: both are reported. File modes are not kept (the mount shows 0444); "
        "--keep-mtime keeps modification times in the metadata.",
    )
    pack.add_argument("input", metavar="DIR", type=Path, help="directory of files to pack")
    pack.add_argument("output", metavar="OUT", type=Path, help="root of the daily layout")
    pack.add_argument(
        "--format", choices=sorted(FORMATS), default="des",
        help="des: DES2, YYYYMMDD_<HEX>_<NNNN>.des (default); datavision: DESHEAD1, "
        "YYYY-MM-DD/<hex>.des",
    )  # fmt: skip
    pack.add_argument(
        "--codec", choices=sorted(CODECS), default="none", help="DES only (default: none)"
    )
    pack.add_argument("--level", type=int, help="compression level (default: zstd 3, lz4 0)")
    pack.add_argument("--smart-skip", action="store_true", help="leave .jpg, .gz, ... uncompressed")
    pack.add_argument("--metadata", type=Path, help='JSON file {"name": {...}, ...}')
    pack.add_argument(
        "--max-container-size", type=parse_size, metavar="SIZE",
        help=f"DES only: start a new _NNNN part past this many input bytes "
        f"(default: {DES_DEFAULT_MAX_CONTAINER:,} bytes; KiB, MiB, GiB accepted)",
    )  # fmt: skip
    pack.add_argument(
        "--big-file-threshold", type=parse_size, metavar="SIZE",
        help=f"files this large go to _bigFiles/ (default: {show_size(DES_DEFAULT_BIG_FILE)} "
        f"for des, {show_size(DATAVISION_DEFAULT_BIG_FILE)} for datavision)",
    )  # fmt: skip
    pack.add_argument(
        "--shard-bits", type=int, metavar="N",
        help=f"Datavision shard_bits (1..32) or DES n_bits (4..16) (default: "
        f"{DES_DEFAULT_BITS})",
    )  # fmt: skip
    pack.add_argument("--day", type=_day, default=None, help="YYYY-MM-DD (default: today)")
    pack.add_argument("--empty-shards", action="store_true", help="also write empty shards")
    pack.add_argument(
        "--keep-mtime", action="store_true",
        help='store each file\'s modification time in its metadata ("mtime"), which the '
        "mount shows",
    )  # fmt: skip
    pack.add_argument(
        "--overwrite", action="store_true", help="replace containers OUT already holds"
    )
    pack.set_defaults(handler=run_pack)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def run_pack(args: argparse.Namespace) -> int:
    if not args.input.is_dir():
        raise UsageError(f"{args.input}: not a directory")
    options = PackOptions(
        format=FORMATS[args.format],
        day=args.day or date.today(),
        codec=CODECS[args.codec],
        level=args.level,
        smart_skip=args.smart_skip,
        metadata=load_metadata(args.metadata) if args.metadata else {},
        max_container_size=args.max_container_size,
        big_file_threshold=args.big_file_threshold,
        shard_bits=args.shard_bits,
        empty_shards=args.empty_shards,
        overwrite=args.overwrite,
        keep_mtime=args.keep_mtime,
    )
    progress = _show_progress if sys.stderr.isatty() else None
    report = pack_directory(args.input, args.output, options, progress)
    if progress is not None:
        sys.stderr.write("\n")
    _report_left_out(report.skipped, "not regular files (links are not followed)")
    _report_left_out(report.empty_dirs, "empty directories (a container holds files only)")
    entries = sum(c.entries for c in report.containers)
    print(
        f"{len(report.containers)} containers, {entries} entries, "
        f"{len(report.big_files)} big files written under {args.output}",
        file=sys.stderr,
    )
    return ExitCode.OK


def _show_progress(done: int, total: int) -> None:
    if done == total or done % 256 == 0:
        sys.stderr.write(f"\rpack: {done}/{total} files")
        sys.stderr.flush()


def _report_left_out(names: tuple[str, ...], what: str) -> None:
    if names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        print(f"desfs pack: left out {len(names)} {what}: {shown}", file=sys.stderr)
