"""Typed, frozen settings for every component, with the documented defaults.

Each component receives only its own section. Loading a YAML file and merging CLI flags
happen in `desfs.settings_loader`; this module holds values and their validation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """Budgets and sizes of the read path (bytes unless named otherwise)."""

    tail_window: int = 64 * KiB  # suffix GET size at container open
    block_size: int = 256 * KiB  # alignment of random reads in large entries
    block_cache_bytes: int = 256 * MiB  # stored bytes and decoded payloads
    index_cache_bytes: int = 128 * MiB  # parsed container indices (estimated)
    small_entry_bytes: int = 1 * MiB  # entries up to this stored size are fetched whole
    prefetch_cap: int = 8 * MiB  # one coalesced GET over neighbouring small files
    readahead_min: int = 1 * MiB  # first readahead window of a sequential large read
    readahead_max: int = 32 * MiB  # the window doubles up to this
    prefetch_budget: int = 96 * MiB  # prefetch/readahead bytes in flight, all files together
    listing_ttl: float = 60.0  # seconds a root or day listing is trusted
    error_ttl: float = 30.0  # seconds a failed container open is remembered
    cache_dir: Path | None = None  # parsed indices kept on disk across mounts; None: off
    index_store_bytes: int = 512 * MiB  # disk budget of the index records in cache_dir


@dataclass(frozen=True, slots=True)
class LayoutSettings:
    layout: str = "auto"  # auto | datavision | des-flat | des-nested
    bigfiles_dir: str = "_bigFiles"
    sidecar_max_bytes: int = 16 * MiB


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    cache: CacheSettings = field(default_factory=CacheSettings)
    layout: LayoutSettings = field(default_factory=LayoutSettings)


@dataclass(frozen=True, slots=True)
class MountSettings:
    """How the mount presents itself to the kernel and to users."""

    uid: int | None = None  # owner of every node; None: the user who mounts
    gid: int | None = None  # group of every node; None: the group of the user who mounts
    umask: int = 0o022  # applied to 0444 files and 0555 directories
    allow_other: bool = False  # let users other than the mounting one in
    allow_nonempty: bool = False  # mount over a directory that has entries
    entry_ttl: float = 86400.0  # seconds the kernel caches names inside shards
    attr_ttl: float = 86400.0  # seconds the kernel caches attributes inside shards
    max_requests: int = 64  # FUSE requests served concurrently
    max_inodes: int = 131_072  # nodes the kernel may hold before desfs drops the oldest
    shutdown_grace: float = 10.0  # seconds in-flight requests get after SIGTERM
    read_ahead_kb: int = 1024  # bdi readahead set when running as root; 0 keeps the kernel's


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str | None = None  # debug | info | warning | error; None: info for mount, else warning
    file: str | None = None  # a path, or "syslog"; None: stderr (foreground) or syslog


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The optional Prometheus endpoint; it listens on loopback unless told otherwise."""

    enabled: bool = False
    address: str = "127.0.0.1"
    port: int = 9464
