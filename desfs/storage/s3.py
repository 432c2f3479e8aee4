"""The Storage backend over an S3-compatible bucket; the only desfs module that imports boto3.

One botocore client per source, with botocore's own retries switched off: desfs runs its
own bounded retry loop so that every attempt that reaches the server is counted exactly
once (desfs's counters then equal the server's) and so that the total time of one call is
bounded by `S3Settings.worst_case_seconds`. No HEAD is ever sent: a suffix range GET
returns the size (Content-Range) and ETag along with the bytes. Credentials are resolved
by boto3's own chain and never appear in a log line, an error message or a repr.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from desfs.errors import ObjectChanged, ObjectMissing, StorageError, StorageTimeout, UsageError
from desfs.logs import quiet_libraries
from desfs.settings.sections import S3Settings
from desfs.storage.base import Blob, ListPage, ObjectInfo
from desfs.storage.counters import RequestCounters, RequestKind
from desfs.storage.s3_replies import (
    BadReply,
    Verdict,
    check_range,
    classify,
    empty_from_416,
    etag_of,
    mtime_of,
    read_body,
    suffix_total,
    unquote,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
_Style = Literal["auto", "path", "virtual"]
log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class _Suffix:
    """A suffix reply; `blob` is None when the server answered 416 without an ETag."""

    blob: Blob | None


class S3Storage:
    """A read-only view of `s3://bucket/prefix`."""

    def __init__(
        self,
        settings: S3Settings,
        counters: RequestCounters | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if not settings.bucket:
            raise UsageError("an S3 source needs a bucket (s3://BUCKET[/PREFIX])")
        if not 1 <= page_size <= 1000:
            raise UsageError(f"S3 listing page size must be 1..1000, got {page_size}")
        self.settings = settings
        self.counters = counters if counters is not None else RequestCounters()
        self.page_size = page_size
        self._secrets = tuple(
            s
            for s in (settings.access_key_id, settings.secret_access_key, settings.session_token)
            if s
        )
        self._rng = random.Random()
        quiet_libraries()
        self._client = _make_client(settings)
        self._where = f"s3://{settings.bucket}/{settings.prefix} at {_endpoint(self._client)}"

    @property
    def page_cached(self) -> bool:
        return False

    def describe(self) -> str:
        return self._where

    def __repr__(self) -> str:
        return f"S3Storage({self._where!r})"

    @property
    def key_prefix(self) -> str:
        return self.settings.prefix

    def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage:
        args: dict[str, Any] = {
            "Bucket": self.settings.bucket,
            "Prefix": self.settings.prefix + prefix,
            "MaxKeys": self.page_size,
        }
        if delimiter:
            args["Delimiter"] = delimiter
        if token is not None:
            args["ContinuationToken"] = token

        def call() -> tuple[ListPage, int]:
            reply = self._client.list_objects_v2(**args)
            headers = reply["ResponseMetadata"].get("HTTPHeaders", {})
            return self._page(reply), int(headers.get("content-length", 0))

        page, _ = self._attempts(RequestKind.LIST, f"list {prefix!r}", call, lambda r: r[1])
        return page

    def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        if start < 0 or end <= start:
            raise UsageError(f"refusing empty or negative range [{start}, {end}) of {key!r}")
        args = self._get_args(key)
        args["Range"] = f"bytes={start}-{end - 1}"
        if etag is not None:
            args["IfMatch"] = f'"{etag}"'

        def call() -> tuple[bytes, str]:
            reply = self._client.get_object(**args)
            data = read_body(reply, limit=end - start, whole_ok=start == 0)
            check_range(reply, start, len(data))
            return data, etag_of(reply)

        data, got = self._attempts(
            RequestKind.GET_RANGE, f"read {key!r}", call, lambda r: len(r[0])
        )
        if etag is not None and got and got != etag:
            # A server that ignores If-Match must not hand us bytes of another object.
            raise ObjectChanged(f"{self._where}: {key!r} changed (ETag {got}, expected {etag})")
        return data

    def read_suffix(self, key: str, length: int) -> Blob:
        if length <= 0:
            raise UsageError(f"refusing suffix read of {length} bytes of {key!r}")
        args = self._get_args(key)
        args["Range"] = f"bytes=-{length}"

        def call() -> _Suffix:
            try:
                reply = self._client.get_object(**args)
            except ClientError as exc:
                return _Suffix(empty_from_416(exc))
            data = read_body(reply, limit=length, whole_ok=True)
            total = suffix_total(reply, len(data))
            return _Suffix(Blob(data, total, etag_of(reply), mtime_of(reply)))

        def nbytes(result: _Suffix) -> int:
            return len(result.blob.data) if result.blob else 0

        result = self._attempts(RequestKind.GET_RANGE, f"read tail of {key!r}", call, nbytes)
        if result.blob is not None:
            return result.blob
        # 416 without an ETag: only an empty object answers a suffix range that way.
        return self._get_whole(key, limit=0)

    def read_object(self, key: str) -> Blob:
        return self._get_whole(key, limit=None)

    def _get_whole(self, key: str, limit: int | None) -> Blob:
        args = self._get_args(key)

        def call() -> Blob:
            reply = self._client.get_object(**args)
            data = read_body(reply, limit=limit, whole_ok=True)
            return Blob(data, len(data), etag_of(reply), mtime_of(reply))

        return self._attempts(RequestKind.GET, f"read {key!r}", call, lambda b: len(b.data))

    def _get_args(self, key: str) -> dict[str, Any]:
        if not key or key.startswith("/") or "\0" in key:
            raise ObjectMissing(f"{self._where}: {key!r} is not a key this store can hold")
        return {"Bucket": self.settings.bucket, "Key": self.settings.prefix + key}

    def _page(self, reply: Any) -> ListPage:
        cut = len(self.settings.prefix)
        objects = tuple(
            ObjectInfo(c["Key"][cut:], c["Size"], unquote(c["ETag"]), _ns(c["LastModified"]))
            for c in reply.get("Contents", ())
            if len(c["Key"]) > cut
        )
        prefixes = tuple(p["Prefix"][cut:] for p in reply.get("CommonPrefixes", ()))
        token = reply.get("NextContinuationToken") if reply.get("IsTruncated") else None
        return ListPage(objects, prefixes, token or None)

    def _attempts(
        self, kind: RequestKind, what: str, call: Callable[[], T], nbytes: Callable[[T], int]
    ) -> T:
        """Run `call` with desfs's retry policy; see the module docstring."""
        settings = self.settings
        deadline = time.monotonic() + settings.worst_case_seconds
        attempt = 0
        while True:
            attempt += 1
            outcome = self._once(kind, call, nbytes)
            if not isinstance(outcome, Verdict):
                return outcome
            if not outcome.retry:
                self.counters.record_error()
                raise outcome.error(self._message(what, outcome, attempt))
            cap = min(settings.backoff_cap, settings.backoff_base * 2 ** (attempt - 1))
            pause = self._rng.uniform(0, cap)  # "full jitter": spreads out retry storms
            if attempt >= settings.max_attempts or time.monotonic() + pause > deadline:
                self.counters.record_error()
                error = StorageTimeout if outcome.timeout else StorageError
                raise error(self._message(what, outcome, attempt))
            log.debug("%s: %s: retry in %.3fs: %s", self._where, what, pause, outcome.reason)
            self.counters.record_retry()
            time.sleep(pause)

    def _once(
        self, kind: RequestKind, call: Callable[[], T], nbytes: Callable[[T], int]
    ) -> T | Verdict:
        """One attempt, counted as a request when it reached the server."""
        began = time.monotonic()
        try:
            result = call()
        except (BotoCoreError, ClientError, BadReply, OSError) as exc:
            verdict = classify(exc)
            if verdict.reached_server:
                self.counters.record(kind, 0, time.monotonic() - began)
            return dataclasses.replace(verdict, reason=self._redact(verdict.reason))
        self.counters.record(kind, nbytes(result), time.monotonic() - began)
        return result

    def _message(self, what: str, verdict: Verdict, attempts: int) -> str:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return self._redact(f"{self._where}: {what} failed{tries}: {verdict.reason}")

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _make_client(settings: S3Settings) -> S3Client:
    region = settings.region or os.environ.get("AWS_REGION") or None
    config = Config(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=settings.max_connections,
        # total_max_attempts=1: one attempt, no botocore retries ("max_attempts" would
        # count retries in botocore's legacy mode).
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": cast(_Style, settings.addressing_style)},
        signature_version=UNSIGNED if settings.anonymous else None,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="desfs",
    )
    verify: bool | str | None = None
    if not settings.verify_tls:
        verify = False
    elif settings.ca_bundle is not None:
        verify = str(settings.ca_bundle)
    try:
        session = boto3.session.Session(profile_name=settings.profile, region_name=region)
        return session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token,
            verify=verify,
            config=config,
        )
    except ProfileNotFound as exc:
        name = (
            settings.profile
            or os.environ.get("AWS_PROFILE")
            or os.environ.get("AWS_DEFAULT_PROFILE")
        )
        where = "s3.profile (--profile)" if settings.profile else "the environment (AWS_PROFILE)"
        files = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
        raise UsageError(
            f"AWS profile {name!r}, from {where}, is not configured in {files} or the "
            "credentials file"
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        raise UsageError(f"cannot set up the S3 client: {type(exc).__name__}: {exc}") from None


def _endpoint(client: S3Client) -> str:
    """The endpoint URL without any user info or query (they may carry secrets)."""
    url: str = client.meta.endpoint_url
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


def _ns(moment: datetime) -> int:
    """A listing's LastModified as exact nanoseconds (no float rounding)."""
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + moment.microsecond * 1000
