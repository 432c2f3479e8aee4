"""Typed, frozen settings for every component, with the documented defaults.

Each component receives only its own section. Loading a YAML file and merging CLI flags
happen in `desfs.settings.loader`; this module holds values and their validation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from desfs.errors import UsageError

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
    decoder_bytes: int = 64 * MiB  # windows of live decoders of large compressed entries
    listing_ttl: float = 60.0  # seconds a root or day listing is trusted
    error_ttl: float = 30.0  # seconds a failed container open is remembered
    cache_dir: Path | None = None  # parsed indices kept on disk across mounts; None: off
    index_store_bytes: int = 512 * MiB  # disk budget of the index records in cache_dir
    shared_url: str | None = None  # redis:// or rediss:// URL of a fleet's shared index cache
    shared_timeout: float = 0.2  # seconds one shared-cache call may take, then the store
    shared_record_max: int = 8 * MiB  # larger index records are not shared
    # A secret: from a config file of mode 0600 or DESFS_CACHE_SHARED_PASSWORD, never a flag.
    shared_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class LayoutSettings:
    layout: str = "auto"  # auto | datavision | des-flat | des-nested | datas3t2 | s4db | conduit
    bigfiles_dir: str = "_bigFiles"
    sidecar_max_bytes: int = 16 * MiB


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How the writers placed files (des-formats.md §1.11, §2.9), so that a name and its
    day find their container without listing the day."""

    des_n_bits: int | None = None  # DES n_bits, 4..16; None: learnt from a full day
    datavision_shard_bits: int | None = None  # Datavision daily-store shard_bits, 1..32
    max_parts: int = 16  # DES size-split parts (_0000, _0001, ...) tried at most


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    cache: CacheSettings = field(default_factory=CacheSettings)
    layout: LayoutSettings = field(default_factory=LayoutSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)


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
    # Created once the mount serves and touched every few seconds while the daemon's loop
    # runs; removed at exit. What a readiness probe checks (`desfs ready --file`).
    ready_file: Path | None = None


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """`desfs serve`: the archive over HTTP."""

    listen: str = "127.0.0.1:8080"  # HOST:PORT; loopback unless told otherwise
    max_clients: int = 64  # requests handled at once; more wait their turn
    page_size: int = 1000  # entries per page of a JSON directory listing
    meta_header_max: int = 4096  # metadata up to this size also goes in X-Desfs-Meta


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


ADDRESSING_STYLES = ("auto", "path", "virtual")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Connection settings. Anything left None falls back to the standard AWS environment
    and config files, as the AWS CLI resolves them; explicit values win."""

    bucket: str = ""
    prefix: str = ""  # "" or ending with "/"
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    anonymous: bool = False  # send unsigned requests (public buckets)
    addressing_style: str = "auto"
    verify_tls: bool = True
    ca_bundle: Path | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_attempts: int = 5
    # The longest one storage call may take, all attempts together: a stalled store gives
    # EIO after this, whatever the per-attempt timeouts add up to.
    request_deadline: float = 30.0
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    # Sizes the HTTP connection pool AND the async adapter's thread limiter, so no worker
    # thread ever waits for a pooled connection.
    max_connections: int = 16

    def __post_init__(self) -> None:
        if self.addressing_style not in ADDRESSING_STYLES:
            raise UsageError(
                f"s3.addressing_style: {self.addressing_style!r} is not one of "
                f"{', '.join(ADDRESSING_STYLES)}"
            )
        if self.prefix and not self.prefix.endswith("/"):
            raise UsageError(f"s3 prefix {self.prefix!r} must be empty or end with '/'")
        for name in ("connect_timeout", "read_timeout", "request_deadline"):
            _require(name, getattr(self, name), getattr(self, name) > 0, "a number > 0")
        for name in ("backoff_base", "backoff_cap"):
            _require(name, getattr(self, name), getattr(self, name) >= 0, "a number >= 0")
        for name in ("max_attempts", "max_connections"):
            value = getattr(self, name)
            ok = isinstance(value, int) and value >= 1
            _require(name, value, ok, "an integer >= 1")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise UsageError("s3.access_key_id and s3.secret_access_key must be given together")

    @property
    def worst_case_seconds(self) -> float:
        """The longest one storage call can take before it gives up: every attempt may
        spend its connect and read timeout, and every pause its backoff cap. (The read
        timeout bounds each wait for data; desfs only asks for bounded ranges.)"""
        per_attempt = self.connect_timeout + self.read_timeout + self.backoff_cap
        return min(self.request_deadline, self.max_attempts * per_attempt)


def _require(name: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise UsageError(f"s3.{name}: {value!r} is not valid; expected {expected}")
