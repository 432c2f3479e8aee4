"""Command-line flags and `-o` mount options, turned into settings layers and resolved.

The flags are generated from `desfs.settings.keys`; each is left at None when not given, so
a flag overrides the config file only when it is actually on the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from desfs.errors import UsageError
from desfs.settings.keys import BY_OPTION, KEYS, SECRETS, Key
from desfs.settings.kinds import Flag, close_match
from desfs.settings.kinds import parse_size as parse_size
from desfs.settings.loader import (
    CONFIG_SOURCE,
    ENV_CONFIG,
    Layer,
    Settings,
    environment_layer,
    read_config,
    resolve,
)

log = logging.getLogger(__name__)

# Options of mount(8) and fstab that concern mount(8), the kernel's defaults for FUSE, or
# other tools; desfs accepts and ignores them.
IGNORED_OPTIONS = frozenset(
    {
        "ro", "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser",
        "owner", "group", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime",
        "noatime", "relatime", "norelatime", "strictatime", "diratime", "nodiratime",
        "lazytime", "nolazytime", "sync", "async", "dirsync", "silent", "loud",
        "read_only", "readonly",
    }
)  # fmt: skip
# Credentials have no flag and no option; naming one in -o is refused without echo.
SECRET_OPTIONS = frozenset(path.rpartition(".")[2] for path in SECRETS)


def add_source_options(
    parser: argparse.ArgumentParser, source: str | None = None, tuning: bool = False
) -> None:
    """SOURCE (`source` is its nargs; None: required), --config and the source-wide flags.

    Cache tuning is accepted by every command but listed in the help of those it matters
    to (`tuning`: the mount), so `desfs ls --help` shows what `ls` is about."""
    parser.add_argument(
        "source",
        metavar="SOURCE",
        nargs=source,
        help=f"directory, s3://bucket/prefix, .des file, or {CONFIG_SOURCE} (the config's)",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML settings (config.example.yaml)")
    groups = {
        "s3": parser.add_argument_group("S3 (defaults from the standard AWS environment)"),
        "": parser.add_argument_group("layout and caches" if tuning else "layout"),
    }
    for key in KEYS:
        if key.scope == "source" and key.flag:
            quiet = not tuning and key.section == "cache"
            add_key_flag(groups["s3" if key.section == "s3" else ""], key, quiet)


def add_mount_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("mount, logging and metrics")
    for key in KEYS:
        if key.scope == "mount" and key.flag:
            add_key_flag(group, key)


def add_key_flag(parser: argparse._ActionsContainer, key: Key, quiet: bool = False) -> None:
    assert key.flag is not None
    text = f"{key.help} (config: {key.path}; default: {key.kind.show(key.default)})"
    text = argparse.SUPPRESS if quiet else text
    if key.const is not None:
        parser.add_argument(key.flag, action="store_const", const=key.const, help=text)
    elif isinstance(key.kind, Flag):
        parser.add_argument(key.flag, action=argparse.BooleanOptionalAction, help=text)
    else:
        parser.add_argument(key.flag, metavar=key.kind.metavar, help=text)


def flag_layer(args: argparse.Namespace) -> Layer:
    values: dict[str, object] = {}
    for key in KEYS:
        if key.flag is None:
            continue
        value = getattr(args, key.flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            values[key.path] = value
    source = getattr(args, "source", None)
    if hasattr(args, "mountpoint"):
        mountpoint = args.mountpoint
        if mountpoint is None and source is not None:
            # `mount MOUNTPOINT`: the one positional is the mountpoint.
            source, mountpoint = None, source
        if mountpoint is not None:
            values["mountpoint"] = mountpoint
    if source is not None and source != CONFIG_SOURCE:
        values["source"] = source
    return Layer("flag", values)


def option_layer(groups: Sequence[str]) -> tuple[Layer, str | None]:
    """`-o a,b=c` groups as a layer, and the config file `-o config=FILE` names."""
    values: dict[str, object] = {}
    config: str | None = None
    for item in (part.strip() for group in groups for part in group.split(",")):
        name, has_value, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not item or is_ignored(name):
            continue
        if name == "rw":
            # One rule for `desfs mount -o rw` and fstab (where mount(8) adds rw itself).
            log.info("-o rw: desfs mounts are always read-only; mounting read-only")
            continue
        if name == "debug":
            values["logging.level"] = "debug"
            continue
        if name == "config":
            if not value:
                raise UsageError("-o config: needs a file (config=FILE)")
            config = value
            continue
        key = BY_OPTION.get(name)
        if key is None and name.removeprefix("aws_") in SECRET_OPTIONS:
            raise UsageError(
                f"-o {name}: credentials are not accepted as options, since command lines "
                "are visible to every user; use the environment or a config file of mode 0600"
            )
        if key is None:
            guess = close_match(name, [*BY_OPTION, "config"])
            hint = f"; did you mean {guess}?" if guess else ""
            raise UsageError(f"-o {item}: unknown mount option{hint}")
        values[key.path] = _option_value(key, name, has_value, value)
    return Layer("option", values), config


def _option_value(key: Key, name: str, has_value: str, value: str) -> object:
    if key.const is not None:
        if has_value:
            raise UsageError(f"-o {name}={value}: {name} takes no value")
        return key.const
    if not has_value:
        if isinstance(key.kind, Flag):
            return True
        raise UsageError(f"-o {name}: needs a value ({name}=...)")
    return value


def is_ignored(name: str) -> bool:
    return name in IGNORED_OPTIONS or name.startswith(("x-", "x_", "comment"))


def is_known_option(item: str) -> bool:
    name = item.partition("=")[0].strip().replace("-", "_")
    return name in BY_OPTION or name in ("config", "rw", "debug") or is_ignored(name)


def load_settings(args: argparse.Namespace, need: Sequence[str] = ("source",)) -> Settings:
    """Settings for a command: its flags over its `-o` options over the environment over
    its config file."""
    options, option_config = option_layer(getattr(args, "options", None) or [])
    config = getattr(args, "config", None) or option_config or os.environ.get(ENV_CONFIG)
    layers = [flag_layer(args), options, environment_layer(os.environ)]
    if config:
        layers.append(read_config(Path(config)))
    return resolve(layers, need)
