"""Turn a SOURCE argument into a Storage: `s3://bucket/prefix` or a local directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from desfs.errors import NotFound, UsageError
from desfs.settings.sections import S3Settings
from desfs.storage.base import Storage
from desfs.storage.local import LocalStorage
from desfs.storage.s3_url import parse_s3_url


def open_storage(source: str, s3: S3Settings | None) -> Storage:
    """The backend for `source`. `s3` supplies connection settings for an s3:// source;
    its bucket and prefix are replaced by the ones in the URL."""
    if source.startswith("s3://"):
        bucket, prefix = parse_s3_url(source)
        settings = dataclasses.replace(s3 or S3Settings(), bucket=bucket, prefix=prefix)
        # Imported here so local sources never pay for loading boto3.
        from desfs.storage.s3 import S3Storage

        return S3Storage(settings)
    if "://" in source:
        scheme = source.split("://", 1)[0]
        raise UsageError(f"source {source!r}: unsupported scheme {scheme!r}; use s3:// or a path")
    path = Path(source)
    if path.is_dir():
        return LocalStorage(path)
    if path.exists():
        raise UsageError(f"source {source!r} is not a directory (expected a directory or s3://)")
    raise NotFound(f"source {source!r} does not exist (expected a directory or s3://BUCKET)")
