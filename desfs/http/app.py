"""The ASGI application of `desfs serve`: routes, the errno boundary, and bounded work.

    GET|HEAD /                            days (JSON, paged)
    GET|HEAD /YYYY-MM-DD[/<shard>[/dir]]  shards, or a directory of a shard (JSON, paged)
    GET|HEAD /YYYY-MM-DD/<shard>/<name>   the file (ranges, conditionals; ?meta: metadata)
    GET|HEAD /files/<uid>?created_at=...  DES retriever route: 404 absent, 410 tombstoned
    GET /health, GET /metrics             liveness, Prometheus text

At most `serve.max_clients` requests are handled at once (others wait). A client that
disconnects cancels its request and the fetches it started. A desfs error before the
status line becomes its status (404, 410, 416, 503 or 504 with Retry-After, 500); after
it, the connection is aborted, so no short body passes for a complete one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qs, unquote_to_bytes

import trio

from desfs.archive.engine import Archive
from desfs.archive.paths import FileRef
from desfs.errors import DesfsError, UsageError
from desfs.http.files import Request, send_file
from desfs.http.listings import listing
from desfs.http.replies import Message, Receive, Scope, Send, header, send_error, send_json, whole
from desfs.namespace.tree import Hide
from desfs.settings.sections import ServeSettings

log = logging.getLogger(__name__)

GONE = (Hide.TOMBSTONED, Hide.DELETED)


class ArchiveApp:
    def __init__(
        self, archive: Archive, settings: ServeSettings, metrics: Callable[[], bytes]
    ) -> None:
        self._archive = archive
        self._settings = settings
        self._metrics = metrics
        self._limiter = trio.CapacityLimiter(settings.max_clients)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        async with self._limiter, trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            await self._answer(scope, _Tracked(send))
            nursery.cancel_scope.cancel()

    async def _answer(self, scope: Scope, send: _Tracked) -> None:
        method = scope["method"]
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await whole(send, 405, b"", [header("Allow", "GET, HEAD")], head=True)
            return
        try:
            await self._route(scope, send, head)
        except DesfsError as exc:
            if send.started:
                # Mid-body: abort the connection rather than end the body short.
                log.warning("%s %s: aborted mid-body: %s", method, scope["path"], exc)
                raise
            log.log(exc.log_level, "%s %s: %s", method, scope["path"], exc)
            await send_error(send, exc, head)
        except Exception:
            if send.started:
                raise
            log.exception("unexpected error answering %s %s", method, scope["path"])
            await send_json(send, 500, {"error": "internal error", "status": 500}, head)

    async def _route(self, scope: Scope, send: Send, head: bool) -> None:
        path = _path(scope)
        query = _query(scope)
        request = Request(_headers(scope), query, head)
        if path == "/health":
            days = len(self._archive.known_days())
            document = {"status": "ok", "source": self._archive.describe(), "days": days}
            await send_json(send, 200, document, head)
        elif path == "/metrics":
            text = [header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]
            await whole(send, 200, self._metrics(), text, head)
        elif path.startswith("/files/"):
            await self._by_uid(path[len("/files/") :], request, send)
        else:
            await self._by_path(path, request, send)

    async def _by_path(self, path: str, request: Request, send: Send) -> None:
        target = await self._archive.resolve(path)
        if isinstance(target, FileRef):
            name = target.path.rpartition("/")[2]
            limit = self._settings.meta_header_max
            await send_file(
                self._archive, target.container, target.entry, name, request, send, limit
            )
            return
        document = await listing(self._archive, target, request.query, self._settings.page_size)
        await send_json(send, 200, document, request.head)

    async def _by_uid(self, uid: str, request: Request, send: Send) -> None:
        created = request.query.get("created_at")
        if not uid or created is None:
            raise UsageError("/files/UID needs ?created_at=ISO-8601 (the day it was packed)")
        # An unencoded "+" of a time zone arrives as a space (form encoding): take it back.
        text = created.strip().replace(" ", "+").replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(f"created_at {created!r} is not an ISO 8601 time") from None
        # The writer's day: created_at's own date, in its own time zone (des-formats §2.9).
        found = await self._archive.locate(moment.strftime("%Y-%m-%d"), uid)
        if found.hidden in GONE:
            await send_json(send, 410, {"error": f"{uid} is {found.hidden}", "status": 410})
            return
        limit = self._settings.meta_header_max
        await send_file(self._archive, found.container, found.entry, uid, request, send, limit)


class _Tracked:
    """`send`, remembering whether the status line went out."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _path(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    try:
        return unquote_to_bytes(raw.split(b"?", 1)[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the path is not UTF-8") from None


def _query(scope: Scope) -> dict[str, str]:
    text = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
