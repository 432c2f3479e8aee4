"""The options of one `desfs pack` run, validated when they are built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from desfs.errors import UsageError
from desfs.format.model import Codec, Format

# Upstream defaults (des-formats.md §1.7, §1.10, §2.6, §2.10).
DATAVISION_DEFAULT_BITS = 8
DATAVISION_DEFAULT_BIG_FILE = 100 * 1024 * 1024
DES_DEFAULT_BITS = 8
DES_DEFAULT_BIG_FILE = 10 * 1024 * 1024
DES_DEFAULT_MAX_CONTAINER = 1_000_000_000
EMPTY_SHARDS_MAX_BITS = 12  # writing every shard of 2^bits must stay a sane file count

_LEVELS = {Codec.ZSTD: (-(1 << 17), 22), Codec.LZ4: (0, 16)}


@dataclass(frozen=True, slots=True)
class PackOptions:
    """What to write and how. `None` means the upstream default for the chosen format.

    `shard_bits` is Datavision's shard_bits (1..32) or DES's n_bits (4..16).
    `big_file_threshold`: Datavision externalises sizes >= it, DES sizes > it.
    `max_container_size` (DES only) starts a new `_NNNN` part once the summed input
    sizes would exceed it. `empty_shards` also writes a zero-entry container for
    every shard that receives no file, as Datavision's multi-shard packer does.
    `metadata` maps entry names to JSON objects stored with those entries.
    `keep_mtime` adds each file's modification time to its metadata ("mtime", ISO 8601
    UTC), which the mount shows as the file's time; modes are never kept (files are 0444).
    """

    format: Format
    day: date
    codec: Codec = Codec.NONE
    level: int | None = None
    smart_skip: bool = False
    metadata: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    max_container_size: int | None = None
    big_file_threshold: int | None = None
    shard_bits: int | None = None
    empty_shards: bool = False
    overwrite: bool = False
    keep_mtime: bool = False

    def __post_init__(self) -> None:
        if self.format is Format.DESHEAD1:
            self._check_datavision()
        else:
            self._check_des()
        if self.big_file_threshold is not None and self.big_file_threshold < 0:
            raise UsageError(f"big_file_threshold must be >= 0, not {self.big_file_threshold}")
        if self.empty_shards and self.bits > EMPTY_SHARDS_MAX_BITS:
            raise UsageError(f"empty_shards needs shard_bits <= {EMPTY_SHARDS_MAX_BITS}")

    @property
    def bits(self) -> int:
        if self.shard_bits is not None:
            return self.shard_bits
        return DATAVISION_DEFAULT_BITS if self.format is Format.DESHEAD1 else DES_DEFAULT_BITS

    @property
    def big_threshold(self) -> int:
        if self.big_file_threshold is not None:
            return self.big_file_threshold
        if self.format is Format.DESHEAD1:
            return DATAVISION_DEFAULT_BIG_FILE
        return DES_DEFAULT_BIG_FILE

    @property
    def max_size(self) -> int:
        if self.max_container_size is None:
            return DES_DEFAULT_MAX_CONTAINER
        return self.max_container_size

    def _check_datavision(self) -> None:
        if self.codec is not Codec.NONE or self.level is not None or self.smart_skip:
            raise UsageError(
                "DESHEAD1 has no compression: codec, level and smart_skip are DES2 only"
            )
        if self.max_container_size is not None:
            raise UsageError("max_container_size is DES2 only: Datavision shards are not split")
        if not 1 <= self.bits <= 32:
            raise UsageError(f"Datavision shard_bits must be 1..32, not {self.bits}")

    def _check_des(self) -> None:
        if not 4 <= self.bits <= 16:
            raise UsageError(f"DES n_bits must be 4..16, not {self.bits}")
        if self.max_container_size is not None and self.max_container_size <= 0:
            raise UsageError(f"max_container_size must be > 0, not {self.max_container_size}")
        if self.level is not None:
            if self.codec is Codec.NONE:
                raise UsageError("a compression level needs a codec (zstd or lz4)")
            low, high = _LEVELS[self.codec]
            if not low <= self.level <= high:
                raise UsageError(f"{self.codec.name.lower()} level must be {low}..{high}")
