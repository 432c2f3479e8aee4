"""`desfs pack`: write a directory of files as one day of DES containers."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from desfs.errors import ExitCode, UsageError
from desfs.format.model import Codec, Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import load_metadata, pack_directory
from desfs.settings.flags import parse_size

FORMATS = {"datavision": Format.DESHEAD1, "des": Format.DES2}
CODECS = {"none": Codec.NONE, "zstd": Codec.ZSTD, "lz4": Codec.LZ4}


def add_pack_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pack = sub.add_parser("pack", help="write a directory of files as DES containers")
    pack.add_argument("input", metavar="DIR", type=Path, help="directory of files to pack")
    pack.add_argument("output", metavar="OUT", type=Path, help="root of the daily layout")
    pack.add_argument("--format", choices=sorted(FORMATS), default="des")
    pack.add_argument("--codec", choices=sorted(CODECS), default="none", help="DES only")
    pack.add_argument("--level", type=int, help="compression level")
    pack.add_argument("--smart-skip", action="store_true", help="leave .jpg, .gz, ... uncompressed")
    pack.add_argument("--metadata", type=Path, help='JSON file {"name": {...}, ...}')
    pack.add_argument("--max-container-size", type=parse_size, help="DES split size")
    pack.add_argument("--big-file-threshold", type=parse_size)
    pack.add_argument("--shard-bits", type=int, help="Datavision shard_bits or DES n_bits")
    pack.add_argument("--day", type=_day, default=None, help="YYYY-MM-DD (default: today)")
    pack.add_argument("--empty-shards", action="store_true", help="also write empty shards")
    pack.add_argument("--overwrite", action="store_true")
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
    )
    report = pack_directory(args.input, args.output, options)
    entries = sum(c.entries for c in report.containers)
    print(
        f"{len(report.containers)} containers, {entries} entries, "
        f"{len(report.big_files)} big files written under {args.output}",
        file=sys.stderr,
    )
    return ExitCode.OK
