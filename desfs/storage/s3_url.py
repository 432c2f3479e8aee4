"""The `s3://bucket/prefix` parser, free of boto3 so the CLI can check a SOURCE cheaply."""

from __future__ import annotations

from urllib.parse import urlsplit

from desfs.errors import UsageError


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
