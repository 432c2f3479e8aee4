"""Making sense of S3 replies: which failures are worth a retry, and whether a body is
what was asked for.

Pure helpers for `desfs.storage.s3`, which owns the client and the retry loop. A reply
is accepted only when it is complete (as long as its Content-Length) and no larger than
the request allows, so a server that ignores the Range header can never make desfs read
a whole large object into memory, and a truncated body is never returned as success.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from desfs.errors import (
    AccessDenied,
    DesfsError,
    ObjectChanged,
    ObjectMissing,
    StorageError,
)
from desfs.storage.base import Blob

_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
    }
)
_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class BadReply(Exception):
    """A 2xx reply whose body cannot be trusted (short, too long, wrong range)."""

    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one failed attempt means."""

    reached_server: bool  # counts as a request the server saw
    retry: bool
    timeout: bool
    error: type[DesfsError]
    reason: str


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, ClientError):
        return _classify_reply(exc)
    if isinstance(exc, BadReply):
        return Verdict(True, exc.retry, False, StorageError, str(exc))
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ConnectTimeoutError):
        return Verdict(False, True, True, StorageError, reason)
    if isinstance(exc, EndpointConnectionError):
        return Verdict(False, True, False, StorageError, reason)
    if isinstance(exc, ReadTimeoutError):
        return Verdict(True, True, True, StorageError, reason)
    if isinstance(exc, HTTPClientError | IncompleteReadError | OSError):
        return Verdict(True, True, False, StorageError, reason)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Verdict(False, False, False, AccessDenied, f"no usable S3 credentials: {reason}")
    return Verdict(False, False, False, StorageError, reason)


def _classify_reply(exc: ClientError) -> Verdict:
    meta = exc.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode", 0))
    code = str(exc.response.get("Error", {}).get("Code", ""))
    message = str(exc.response.get("Error", {}).get("Message", "")) or "no message"
    label = "" if code in ("", str(status)) else f" {code}"
    reason = f"HTTP {status}{label}: {message}"
    if status == 404 or code in ("NoSuchKey", "NotFound", "NoSuchBucket"):
        return Verdict(True, False, False, ObjectMissing, reason)
    if status == 403 or code in _DENIED_CODES:
        return Verdict(True, False, False, AccessDenied, reason)
    if status == 412 or code == "PreconditionFailed":
        return Verdict(True, False, False, ObjectChanged, reason)
    retry = status >= 500 or status == 429 or code in _THROTTLE_CODES
    return Verdict(True, retry, False, StorageError, reason)


def read_body(reply: Any, limit: int | None, whole_ok: bool) -> bytes:
    """The complete body of a GetObject reply, never more than `limit` bytes.

    `whole_ok` says whether a 200 reply (the server ignored our Range) still answers the
    question, which is true only when the range started at byte 0."""
    body = reply["Body"]
    try:
        status = reply["ResponseMetadata"]["HTTPStatusCode"]
        declared = reply.get("ContentLength")
        if status == 200 and limit is not None and not whole_ok:
            raise BadReply("the server ignored the Range header", retry=False)
        if limit is not None and declared is not None and declared > limit:
            raise BadReply(
                f"the server sent {declared} bytes where at most {limit} were asked for",
                retry=False,
            )
        data: bytes = body.read() if limit is None else body.read(limit + 1)
    finally:
        body.close()
    if limit is not None and len(data) > limit:
        raise BadReply(f"the server sent more than the {limit} bytes asked for", retry=False)
    if declared is not None and len(data) != declared:
        raise BadReply(f"short reply: {len(data)} of {declared} bytes", retry=True)
    return data


def parse_content_range(value: str) -> tuple[int, int, int | None]:
    """`bytes first-last/total` -> (first, last, total or None for "*")."""
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        raise BadReply(f"unreadable Content-Range {value!r}", retry=False)
    total = None if match[3] == "*" else int(match[3])
    return int(match[1]), int(match[2]), total


def check_range(reply: Any, start: int, received: int) -> None:
    """A 206 reply must hold exactly the bytes from `start` that it says it holds."""
    value = reply.get("ContentRange")
    if not value:
        return
    first, last, _ = parse_content_range(value)
    if first != start or last - first + 1 != received:
        raise BadReply(f"Content-Range {value!r} does not match the request", retry=False)


def suffix_total(reply: Any, received: int) -> int:
    """The object's size from a suffix-range reply: Content-Range of a 206, or the body
    itself when the server answered 200 with the whole (small) object."""
    value = reply.get("ContentRange")
    if not value:
        return received
    first, last, total = parse_content_range(value)
    if total is None or last != total - 1 or last - first + 1 != received:
        raise BadReply(f"Content-Range {value!r} is not the tail of the object", retry=False)
    return total


def etag_of(reply: Any) -> str:
    return unquote(str(reply.get("ETag", "")))


def unquote(etag: str) -> str:
    """S3 ETags travel in quotes (and weak ones with W/); desfs stores them bare."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def mtime_of(reply: Any) -> float:
    modified = reply.get("LastModified")
    return float(modified.timestamp()) if modified is not None else 0.0


def empty_from_416(exc: ClientError) -> Blob | None:
    """The empty object behind a 416 reply to a suffix range, when the reply carries its
    ETag; None when it does not (the caller then sends one plain GET). Other errors go on."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status != 416:
        raise exc
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    if "etag" not in headers or headers.get("content-range", "").strip() != "bytes */0":
        return None
    return Blob(b"", 0, unquote(headers["etag"]), _http_date(headers.get("last-modified")))


def _http_date(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0
