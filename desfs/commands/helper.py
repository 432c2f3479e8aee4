"""`mount.desfs`: mount(8)'s helper calling convention, translated into `desfs mount` words.

A pure argv translation: mount(8) runs `mount.desfs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]
[-t TYPE] [-N NS]`, and mount.fuse3 runs `desfs SOURCE MOUNTPOINT -o OPTIONS` for a
`fuse.desfs` fstab line. Both become the words of an ordinary `desfs mount` command line.
"""

from __future__ import annotations

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
