"""How to reach an S3 source: the settings value and the `s3://bucket/prefix` parser.

Kept free of boto3 so configuration and the CLI can build and validate settings without
importing the client library; `desfs.storage.s3` re-exports both names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from desfs.errors import UsageError

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
        for name in ("connect_timeout", "read_timeout"):
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
        return self.max_attempts * per_attempt


def _require(name: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise UsageError(f"s3.{name}: {value!r} is not valid; expected {expected}")


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); the prefix is "" or ends
    with "/"."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise UsageError(f"{url!r} is not an s3:// URL")
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise UsageError(f"{url!r}: expected s3://BUCKET[/PREFIX] with no user, port or query")
    bucket = parts.netloc
    if not bucket or any(c.isspace() for c in bucket):
        raise UsageError(f"{url!r}: missing or invalid bucket name")
    path = parts.path.strip("/")
    if "\0" in path:
        raise UsageError(f"{url!r}: the prefix contains a NUL byte")
    return bucket, path + "/" if path else ""
