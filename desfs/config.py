"""Typed, frozen settings for every component, with the documented defaults.

Each component receives only its own section. Loading a YAML file and merging CLI flags
happen in `desfs.settings_loader`; this module holds values and their validation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class LayoutSettings:
    layout: str = "auto"  # auto | datavision | des-flat | des-nested
    bigfiles_dir: str = "_bigFiles"
    sidecar_max_bytes: int = 16 * MiB


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    cache: CacheSettings = field(default_factory=CacheSettings)
    layout: LayoutSettings = field(default_factory=LayoutSettings)
