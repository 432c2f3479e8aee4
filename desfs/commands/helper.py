"""`mount.desfs`: mount(8)'s helper calling convention, translated into `desfs mount` words.

A pure argv translation: mount(8) runs `mount.desfs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]
[-t TYPE] [-N NS]`, and mount.fuse3 runs `desfs SOURCE MOUNTPOINT -o OPTIONS` for a
`fuse.desfs` fstab line. Both become the words of an ordinary `desfs mount` command line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from desfs.errors import UsageError
from desfs.settings.flags import is_known_option


@dataclass(frozen=True, slots=True)
class HelperCall:
    positional: tuple[str, ...]
    options: tuple[str, ...]  # every -o item, split at commas
    flags: frozenset[str]  # single-letter flags, each as "-x"


def parse_helper_argv(argv: list[str]) -> HelperCall:
    positional: list[str] = []
    options: list[str] = []
    flags: set[str] = set()
    items = iter(argv)
    for item in items:
        if item in ("-o", "-t", "-N"):
            value = next(items, "")
            if item == "-o":
                options.append(value)
            flags.add(item)
        elif item.startswith("-o") and len(item) > 2:
            options.append(item[2:])
        elif item.startswith("-") and len(item) > 1:
            flags.update(f"-{letter}" for letter in item[1:])
        else:
            positional.append(item)
    split = (part.strip() for group in options for part in group.split(","))
    return HelperCall(tuple(positional), tuple(p for p in split if p), frozenset(flags))


def mount_words(argv: list[str]) -> list[str]:
    """The `desfs` command line that performs the mount mount(8) asked for."""
    call = parse_helper_argv(argv)
    if len(call.positional) != 2:
        raise UsageError("usage: mount.desfs SOURCE MOUNTPOINT [-o options]")
    if "-N" in call.flags:
        raise UsageError("mount.desfs: -N (mount in another namespace) is not supported")
    # mount(8) always passes rw or ro, whatever the fstab line says; the mount is read-only
    # either way. With -s (sloppy), options desfs does not know are dropped, as mount(8) asks.
    kept = [
        item
        for item in call.options
        if item != "rw" and ("-s" not in call.flags or is_known_option(item))
    ]
    words = ["--log-level", "info"] if "-v" in call.flags else []
    words += ["mount", *(["-o", ",".join(kept)] if kept else []), "--", *call.positional]
    return words


def helper_parser() -> argparse.ArgumentParser:
    """What `mount.desfs --help` prints and its man page says; the arguments themselves
    are read by `parse_helper_argv`, which follows mount(8)'s conventions."""
    parser = argparse.ArgumentParser(
        prog="mount.desfs",
        usage="mount.desfs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]",
        description="Mount a desfs archive read-only; mount(8) runs this helper for fstab "
        "lines of type desfs (and, linked as mount.fuse.desfs, fuse.desfs). It returns once "
        "the mount answers, leaving the daemon running, or fails with a one-line reason and "
        "the exit code of `desfs mount`.",
        epilog="Example fstab line: s3://bucket/prefix /mnt/archive desfs "
        "config=/etc/desfs/archive.yaml,_netdev 0 0. See docs/OPERATIONS.md.",
    )
    parser.add_argument(
        "source", metavar="SOURCE", help="directory, s3://bucket/prefix, or @config"
    )
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty directory")
    parser.add_argument(
        "-o", metavar="OPTIONS",
        help="comma-separated: every desfs mount flag as name or name=value (listing_ttl=30, "
        "allow_other, uid=1000), config=FILE, debug; mount(8)'s own options (ro, rw, _netdev, "
        "nofail, noauto, x-*) are accepted and the mount is always read-only",
    )  # fmt: skip
    parser.add_argument("-s", action="store_true", help="sloppy: drop options desfs does not know")
    parser.add_argument("-v", action="store_true", help="log at info level")
    parser.add_argument("-f", action="store_true", help="fake: accepted, as mount(8) passes it")
    parser.add_argument("-n", action="store_true", help="no mtab: accepted (there is none)")
    return parser
