"""What every answer needs: status lines, headers, JSON bodies and the errno -> status map."""

from __future__ import annotations

import errno
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from desfs.errors import DesfsError, StorageError, StorageTimeout

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

RETRY_AFTER = b"5"


def header(name: str, value: str | int) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), str(value).encode("latin-1")


async def start(send: Send, status: int, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def body(send: Send, data: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def whole(send: Send, status: int, data: bytes, headers: Headers, head: bool) -> None:
    await start(send, status, [*headers, header("Content-Length", len(data))])
    await body(send, b"" if head else data)


async def send_json(send: Send, status: int, document: object, head: bool = False) -> None:
    data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    await whole(send, status, data, [header("Content-Type", "application/json")], head)


def status_of(exc: DesfsError) -> tuple[int, Headers]:
    """The HTTP status of a desfs failure: the store away is 503 (retry) or 504 (it took
    too long), a missing name 404, damage 500; the errno decides the rest."""
    if isinstance(exc, StorageTimeout):
        return 504, [header("Retry-After", RETRY_AFTER.decode())]
    if isinstance(exc, StorageError) and exc.errno == errno.EIO:
        return 503, [header("Retry-After", RETRY_AFTER.decode())]
    return {
        errno.ENOENT: 404,
        errno.ENOTDIR: 404,
        errno.EACCES: 403,
        errno.ESTALE: 503,
        errno.EISDIR: 400,
        errno.EINVAL: 400,
    }.get(exc.errno, 500), []


async def send_error(send: Send, exc: DesfsError, head: bool) -> None:
    status, extra = status_of(exc)
    data = json.dumps({"error": str(exc), "status": status}).encode() + b"\n"
    headers = [header("Content-Type", "application/json"), *extra]
    await whole(send, status, data, headers, head)
