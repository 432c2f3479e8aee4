"""One file over HTTP: validators, conditionals, a single byte range, and a streamed body.

The first chunk is read before the status line goes out, so a file that cannot be read
at all gets a proper error status. Later failures (the store going away mid-body, a
frame whose lie shows at its end) abort the connection: the client sees a body shorter
than its Content-Length, never a short body presented as complete.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from desfs.archive.engine import Archive
from desfs.archive.opened import Container
from desfs.archive.readahead import Stream
from desfs.format.model import Entry
from desfs.fs.attributes import entry_mtime_ns
from desfs.http.replies import Headers, Send, body, header, start, whole

CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)
_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+", re.ASCII)
MIME_KEYS = ("content_type", "content-type", "mime", "mimetype", "mime_type")


@dataclass(frozen=True, slots=True)
class Request:
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    head: bool


@dataclass(frozen=True, slots=True)
class Validators:
    etag: str
    modified: int  # seconds

    @classmethod
    def of(cls, container: Container, entry: Entry) -> Validators:
        # Strong: a container never changes, and its ETag is part of the digest.
        seed = f"{container.ref.key}\0{container.etag}\0{entry.position}".encode()
        etag = '"' + hashlib.sha256(seed).hexdigest()[:32] + '"'
        return cls(etag, entry_mtime_ns(container.ref, entry) // 1_000_000_000)

    def headers(self) -> Headers:
        return [
            header("ETag", self.etag),
            header("Last-Modified", formatdate(self.modified, usegmt=True)),
        ]

    def matches(self, tags: str) -> bool:
        return tags.strip() == "*" or self.etag in [t.strip() for t in tags.split(",")]

    def unchanged_since(self, date: str) -> bool:
        try:
            return self.modified <= int(parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError, OverflowError):
            return False


async def send_file(
    archive: Archive, container: Container, entry: Entry, name: str, request: Request,
    send: Send, meta_header_max: int,
) -> None:  # fmt: skip
    check = Validators.of(container, entry)
    if "meta" in request.query:
        meta = entry.meta or b"{}"
        await whole(send, 200, meta, [header("Content-Type", "application/json"),
                                      *check.headers()], request.head)  # fmt: skip
        return
    base = [
        *check.headers(),
        header("Accept-Ranges", "bytes"),
        header("Content-Type", _content_type(entry, name)),
        *_meta_header(entry, meta_header_max),
    ]
    if _not_modified(check, request):
        await whole(send, 304, b"", base, head=True)
        return
    span = _span(entry.size, check, request)
    if span is None:
        await whole(send, 416, b"", [*base, header("Content-Range", f"bytes */{entry.size}")],
                    request.head)  # fmt: skip
        return
    lo, hi, partial = span
    status = 206 if partial else 200
    extra = [header("Content-Range", f"bytes {lo}-{hi - 1}/{entry.size}")] if partial else []
    stream = Stream()
    first = await archive.read(container, entry, lo, min(CHUNK, hi - lo), stream)
    await start(send, status, [*base, *extra, header("Content-Length", hi - lo)])
    if request.head:
        await body(send, b"")
        return
    offset = lo + len(first)
    await body(send, first, more=offset < hi)
    while offset < hi:
        chunk = await archive.read(container, entry, offset, min(CHUNK, hi - offset), stream)
        if not chunk:
            raise RuntimeError(f"{container.ref.key}: entry ended at {offset} of {hi}")
        offset += len(chunk)
        await body(send, chunk, more=offset < hi)


def _not_modified(check: Validators, request: Request) -> bool:
    tags = request.headers.get("if-none-match")
    if tags is not None:
        return check.matches(tags)
    since = request.headers.get("if-modified-since")
    return since is not None and check.unchanged_since(since)


def _span(size: int, check: Validators, request: Request) -> tuple[int, int, bool] | None:
    """[lo, hi) to send and whether it is a range; None: the range cannot be satisfied.
    A malformed or multiple range, or an If-Range that does not hold, sends it all."""
    asked = request.headers.get("range")
    condition = request.headers.get("if-range")
    if asked is None or (condition is not None and not _if_range_holds(check, condition)):
        return 0, size, False
    match = _RANGE.fullmatch(asked.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return 0, size, False
    first, last = match.group(1), match.group(2)
    if not first:  # a suffix: the last N bytes
        count = int(last)
        return (max(0, size - count), size, True) if count > 0 and size > 0 else None
    lo = int(first)
    hi = size if not last else min(size, int(last) + 1)
    if lo >= size or (last and int(last) < lo):
        return None
    return lo, hi, True


def _if_range_holds(check: Validators, condition: str) -> bool:
    if condition.startswith(('"', "W/")):
        return condition.strip() == check.etag
    return check.unchanged_since(condition)


def _content_type(entry: Entry, name: str) -> str:
    if entry.meta and entry.error is None:
        try:
            meta = json.loads(entry.meta)
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            for key in MIME_KEYS:
                value = meta.get(key)
                if isinstance(value, str) and _TYPE.fullmatch(value):
                    return value
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _meta_header(entry: Entry, limit: int) -> Headers:
    """The metadata in X-Desfs-Meta when it is small (JSON, non-ASCII escaped); `?meta`
    always gives the bytes exactly as stored."""
    if not entry.meta or entry.error is not None or len(entry.meta) > limit:
        return []
    try:
        text = json.dumps(json.loads(entry.meta), ensure_ascii=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        return []
    return [header("X-Desfs-Meta", text)] if len(text) <= limit else []
