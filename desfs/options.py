"""Command-line flags shared by every command that opens a SOURCE, and their parsing."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from desfs.config import ArchiveSettings, CacheSettings, LayoutSettings
from desfs.errors import UsageError
from desfs.storage.s3_settings import S3Settings, parse_s3_url

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """ "65536", "64k", "64KiB", "8M", "1GiB" -> bytes."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise UsageError(f"{text!r} is not a size (examples: 65536, 64KiB, 8MiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_source_options(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        parser.add_argument(
            "source", metavar="SOURCE", help="directory, s3://bucket/prefix or .des file"
        )
    s3 = parser.add_argument_group("S3 (defaults from the standard AWS environment)")
    s3.add_argument("--endpoint-url")
    s3.add_argument("--region")
    s3.add_argument("--profile")
    s3.add_argument("--no-sign-request", action="store_true", help="anonymous access")
    s3.add_argument("--addressing-style", choices=("auto", "path", "virtual"))
    s3.add_argument("--no-verify-ssl", action="store_true")
    s3.add_argument("--ca-bundle", type=Path)
    s3.add_argument("--connect-timeout", type=float)
    s3.add_argument("--read-timeout", type=float)
    s3.add_argument("--max-attempts", type=int)
    s3.add_argument("--max-connections", type=int)
    cache = parser.add_argument_group("layout and caches")
    cache.add_argument("--layout", choices=("auto", "datavision", "des-flat", "des-nested"))
    cache.add_argument("--tail-window", type=_size, help="suffix GET size at open (64KiB)")
    cache.add_argument("--block-size", type=_size)
    cache.add_argument("--cache-size", type=_size, help="block and payload cache budget")
    cache.add_argument("--index-cache-size", type=_size, help="parsed container index budget")
    cache.add_argument("--prefetch-cap", type=_size, help="one GET over neighbouring files")
    cache.add_argument("--readahead-min", type=_size, help="first readahead window")
    cache.add_argument("--readahead-max", type=_size, help="readahead doubles up to this")
    cache.add_argument("--listing-ttl", type=float, help="seconds")


def s3_settings(args: argparse.Namespace, base: S3Settings | None = None) -> S3Settings:
    settings = base or S3Settings()
    source = getattr(args, "source", None) or ""
    if source.startswith("s3://"):
        bucket, prefix = parse_s3_url(source)
        settings = replace(settings, bucket=bucket, prefix=prefix)
    changes: dict[str, object] = {}
    for flag, key in (
        ("endpoint_url", "endpoint_url"),
        ("region", "region"),
        ("profile", "profile"),
        ("addressing_style", "addressing_style"),
        ("ca_bundle", "ca_bundle"),
        ("connect_timeout", "connect_timeout"),
        ("read_timeout", "read_timeout"),
        ("max_attempts", "max_attempts"),
        ("max_connections", "max_connections"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            changes[key] = value
    if getattr(args, "no_sign_request", False):
        changes["anonymous"] = True
    if getattr(args, "no_verify_ssl", False):
        changes["verify_tls"] = False
    return replace(settings, **changes)  # type: ignore[arg-type]


def archive_settings(
    args: argparse.Namespace, base: ArchiveSettings | None = None
) -> ArchiveSettings:
    settings = base or ArchiveSettings()
    cache_changes: dict[str, object] = {}
    for flag, key in (
        ("tail_window", "tail_window"),
        ("block_size", "block_size"),
        ("cache_size", "block_cache_bytes"),
        ("index_cache_size", "index_cache_bytes"),
        ("prefetch_cap", "prefetch_cap"),
        ("readahead_min", "readahead_min"),
        ("readahead_max", "readahead_max"),
        ("listing_ttl", "listing_ttl"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            cache_changes[key] = value
    cache: CacheSettings = replace(settings.cache, **cache_changes)  # type: ignore[arg-type]
    layout: LayoutSettings = settings.layout
    if getattr(args, "layout", None):
        layout = replace(layout, layout=args.layout)
    return ArchiveSettings(cache=cache, layout=layout)
