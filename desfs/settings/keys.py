"""Every configuration key: its place in the YAML file, its kind of value, and its flag.

One table drives the config file, the command-line flags and the `-o` mount options, so the
three never disagree about a key's name or the values it accepts. A key's `-o` name is its
flag without the dashes, with `_` for `-` (`--tail-window` -> `-o tail_window`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from desfs.settings.kinds import (
    Choice,
    FilePath,
    Flag,
    Integer,
    Kind,
    Seconds,
    Size,
    Text,
    Umask,
)
from desfs.settings.sections import (
    ADDRESSING_STYLES,
    CacheSettings,
    LayoutSettings,
    LoggingSettings,
    MetricsSettings,
    MountSettings,
    RoutingSettings,
    S3Settings,
    ServeSettings,
)
from desfs.settings.zones import ZonesKind

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
DAY = 86400.0
YEAR = 365 * DAY

# Where each section's keys land; a key's name is the field's name.
SECTIONS: dict[str, type[Any]] = {
    "layout": LayoutSettings,
    "s3": S3Settings,
    "cache": CacheSettings,
    "mount": MountSettings,
    "routing": RoutingSettings,
    "serve": ServeSettings,
    "logging": LoggingSettings,
    "metrics": MetricsSettings,
}
# S3Settings fields that come from the SOURCE URL, never from the config.
FROM_SOURCE = ("bucket", "prefix")
# Secrets have no flag on purpose: a command line is visible to every user in `ps`.
SECRETS = (
    "s3.access_key_id",
    "s3.secret_access_key",
    "s3.session_token",
    "cache.shared_password",
)

Scope = Literal["global", "source", "mount", "serve"]


@dataclass(frozen=True, slots=True)
class Key:
    path: str  # "cache.tail_window", or "source" for a top-level key
    kind: Kind
    flag: str | None  # None: no flag (positional arguments and secrets)
    help: str
    scope: Scope = "source"  # which commands have the flag: all, with a SOURCE, mount, serve
    const: bool | None = None  # the flag takes no value and sets this one

    @property
    def section(self) -> str | None:
        return self.path.split(".")[0] if "." in self.path else None

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def option(self) -> str | None:
        """The key's name in `-o`, if it has a flag."""
        return self.flag.lstrip("-").replace("-", "_") if self.flag else None

    @property
    def default(self) -> object:
        if self.section is None:
            return None
        return getattr(SECTIONS[self.section](), self.name)


def _k(path: str, kind: Kind, flag: str | None, help: str, scope: Scope = "source") -> Key:
    return Key(path, kind, flag, help, scope)


_SIZE = Size(0, TiB)
_TTL = Seconds(0, YEAR)
_TIMEOUT = Seconds(0, 3600, above_lo=True)
_ID = Integer(0, 2**32 - 2, optional=True)
_LAYOUTS = ("auto", "datavision", "des-flat", "des-nested", "datas3t2", "s4db", "conduit")
_LEVELS = ("debug", "info", "warning", "error")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")  # metrics are never served off the host

KEYS: tuple[Key, ...] = (
    _k("source", Text("a directory, s3://BUCKET/PREFIX or .des file"), None, "SOURCE"),
    _k("mountpoint", Text("a directory path"), None, "MOUNTPOINT", "mount"),
    _k("zones", ZonesKind(), None, "DES zones (the source)"),
    # layout
    _k("layout.layout", Choice(_LAYOUTS), "--layout", "source layout; auto detects it"),
    _k(
        "layout.bigfiles_dir",
        Text("a directory name without '/'", optional=False, forbidden="/"),
        "--bigfiles-dir",
        "folder of external payloads",
    ),
    _k("layout.sidecar_max_bytes", Size(0, GiB), "--sidecar-max-size", ".meta sidecar limit"),
    # s3
    _k(
        "s3.endpoint_url",
        Text("a URL starting with http:// or https://", prefixes=("http://", "https://")),
        "--endpoint-url",
        "S3 endpoint; null: AWS",
    ),
    _k("s3.region", Text("a region name"), "--region", "S3 region"),
    _k("s3.profile", Text("an AWS profile name"), "--profile", "AWS profile"),
    _k("s3.access_key_id", Text(), None, ""),
    _k("s3.secret_access_key", Text(), None, ""),
    _k("s3.session_token", Text(), None, ""),
    Key("s3.anonymous", Flag(), "--no-sign-request", "anonymous access", const=True),
    _k("s3.addressing_style", Choice(ADDRESSING_STYLES), "--addressing-style", "bucket in URL"),
    Key("s3.verify_tls", Flag(), "--no-verify-ssl", "do not verify TLS", const=False),
    _k("s3.ca_bundle", FilePath(existing_file=True), "--ca-bundle", "PEM CA certificates"),
    _k("s3.connect_timeout", _TIMEOUT, "--connect-timeout", "seconds per connection"),
    _k("s3.read_timeout", _TIMEOUT, "--read-timeout", "seconds per wait for data"),
    _k("s3.max_attempts", Integer(1, 100), "--max-attempts", "tries per request"),
    _k("s3.request_deadline", _TIMEOUT, "--request-deadline", "seconds per call, all tries"),
    _k("s3.backoff_base", Seconds(0, 300), "--backoff-base", "first retry pause"),
    _k("s3.backoff_cap", Seconds(0, 300), "--backoff-cap", "longest retry pause"),
    _k("s3.max_connections", Integer(1, 1024), "--max-connections", "parallel requests"),
    # cache
    _k("cache.tail_window", Size(4 * KiB, 64 * MiB), "--tail-window", "suffix GET at open"),
    _k("cache.block_size", Size(4 * KiB, 64 * MiB), "--block-size", "read alignment"),
    _k("cache.block_cache_bytes", Size(MiB, TiB), "--cache-size", "block and payload budget"),
    _k("cache.index_cache_bytes", Size(MiB, TiB), "--index-cache-size", "parsed index budget"),
    _k("cache.small_entry_bytes", Size(0, GiB), "--small-entry-size", "fetched whole up to"),
    _k("cache.prefetch_cap", Size(0, GiB), "--prefetch-cap", "one GET over neighbours"),
    _k("cache.readahead_min", Size(4 * KiB, GiB), "--readahead-min", "first readahead"),
    _k("cache.readahead_max", Size(4 * KiB, GiB), "--readahead-max", "largest readahead"),
    _k("cache.prefetch_budget", _SIZE, "--prefetch-budget", "prefetch bytes in flight"),
    _k("cache.decoder_bytes", Size(MiB, TiB), "--decoder-budget", "decoder windows in all"),
    _k("cache.listing_ttl", _TTL, "--listing-ttl", "listing trusted for"),
    _k("cache.error_ttl", _TTL, "--error-ttl", "failed open remembered for"),
    _k("cache.cache_dir", FilePath(), "--cache-dir", "persistent index cache directory"),
    _k("cache.index_store_bytes", Size(MiB, TiB), "--index-store-size", "disk budget there"),
    _k(
        "cache.shared_url",
        Text(
            "a redis:// or rediss:// URL, without credentials (cache.shared_password)",
            prefixes=("redis://", "rediss://"),
            bare=True,
        ),
        "--shared-cache",
        "Redis of a fleet's shared index cache",
    ),
    _k("cache.shared_timeout", Seconds(0, 60, above_lo=True), "--shared-cache-timeout", "per call"),
    _k("cache.shared_record_max", Size(KiB, GiB), "--shared-record-max", "shared up to"),
    _k("cache.shared_password", Text("the Redis password"), None, ""),
    # mount
    _k("mount.uid", _ID, "--uid", "owner of every node", "mount"),
    _k("mount.gid", _ID, "--gid", "group of every node", "mount"),
    _k("mount.umask", Umask(), "--umask", "permission bits removed", "mount"),
    _k("mount.allow_other", Flag(), "--allow-other", "let other users in", "mount"),
    Key("mount.allow_nonempty", Flag(), "--nonempty", "mount over entries", "mount", True),
    _k("mount.entry_ttl", _TTL, "--entry-ttl", "kernel name cache in shards", "mount"),
    _k("mount.attr_ttl", _TTL, "--attr-ttl", "kernel attribute cache in shards", "mount"),
    _k("mount.max_requests", Integer(1, 10_000), "--max-requests", "concurrent requests", "mount"),
    _k("mount.max_inodes", Integer(1, 2**31), "--max-inodes", "nodes held", "mount"),
    _k("mount.shutdown_grace", Seconds(0, 3600), "--shutdown-grace", "after SIGTERM", "mount"),
    _k(
        "mount.ready_file",
        FilePath(new_file=True),
        "--ready-file",
        "readiness heartbeat file",
        "mount",
    ),
    _k("mount.read_ahead_kb", Integer(0, 2**20), "--read-ahead-kb", "bdi readahead", "mount"),
    # routing
    _k("routing.des_n_bits", Integer(4, 16, optional=True), "--des-n-bits", "DES n_bits"),
    _k(
        "routing.datavision_shard_bits",
        Integer(1, 32, optional=True),
        "--datavision-shard-bits",
        "Datavision shard_bits",
    ),
    _k("routing.max_parts", Integer(1, 10_000), "--max-parts", "DES split parts tried"),
    # serve
    _k("serve.listen", Text("HOST:PORT"), "--listen", "address to serve on", "serve"),
    _k("serve.max_clients", Integer(1, 10_000), "--max-clients", "requests at once", "serve"),
    _k("serve.page_size", Integer(1, 100_000), "--page-size", "entries per page", "serve"),
    _k("serve.meta_header_max", Size(0, MiB), "--meta-header-max", "X-Desfs-Meta up to", "serve"),
    # logging and metrics
    _k("logging.level", Choice(_LEVELS, optional=True), "--log-level", "log level", "global"),
    _k("logging.file", Text("a file path, or syslog"), "--log-file", "log target", "mount"),
    _k("metrics.enabled", Flag(), "--metrics", "serve Prometheus metrics", "mount"),
    _k("metrics.address", Choice(_LOOPBACK), "--metrics-address", "listen address", "mount"),
    _k("metrics.port", Integer(1, 65535), "--metrics-port", "metrics TCP port", "mount"),
)

BY_PATH: dict[str, Key] = {key.path: key for key in KEYS}
BY_OPTION: dict[str, Key] = {key.option: key for key in KEYS if key.option}
TOP_LEVEL = tuple(key.path for key in KEYS if key.section is None)
