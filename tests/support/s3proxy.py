"""A counting, fault-injecting HTTP proxy in front of the moto server (stdlib only).

It runs in threads of the test process: tests read `requests` and set faults directly.
Requests are forwarded verbatim (Host and Authorization untouched, so signatures stay
valid); point a path-style client at `proxy.url`. Each request is recorded with its kind
as desfs counts them: "list", "get" (no Range), "get_range", "head", or "other".

Faults apply to the next requests in the order they were queued (with `path`, only to
requests whose path and query contain it): an S3 error reply (`fail_next`), a connection
reset (`reset_next`), a stall longer than the client's read timeout (`stall_next`), headers
and half the body and then a stall (`stall_body_next`), a body cut short
(`truncate_next`), a Range header the server ignores (`ignore_range_next`); `latency`
delays every reply.
`stop()`/`start()` take the endpoint away and bring it back on the same port.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    range: str | None
    status: int  # 0 when no reply was sent (reset, stall)
    bytes: int  # body bytes sent to the client
    kind: str


@dataclass(frozen=True, slots=True)
class _Fault:
    action: str  # "fail", "reset", "stall", "stall_body", "truncate", "ignore_range"
    status: int = 0
    code: str = ""
    seconds: float = 0.0
    path: str = ""  # applies to requests whose path and query contain it; "": to any


class S3Proxy:
    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.latency = 0.0
        self.slow_paths: dict[str, float] = {}  # path substring -> extra seconds per request
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._faults: deque[_Fault] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._in_flight = 0
        self.most_in_flight = 0  # the most requests served at once since `reset_counts`
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> S3Proxy:
        self.stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_class(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open client connection (a vanished endpoint)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            _abort(sock)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- faults -------------------------------------------------------------------

    def fail_next(
        self, count: int, status: int = 503, code: str = "SlowDown", path: str = ""
    ) -> None:
        self._queue(count, _Fault("fail", status=status, code=code, path=path))

    def reset_next(self, count: int, path: str = "") -> None:
        self._queue(count, _Fault("reset", path=path))

    def stall_next(self, count: int, seconds: float, path: str = "") -> None:
        self._queue(count, _Fault("stall", seconds=seconds, path=path))

    def stall_body_next(self, count: int, seconds: float, path: str = "") -> None:
        """Send the headers and half the body, then go silent for `seconds` and reset."""
        self._queue(count, _Fault("stall_body", seconds=seconds, path=path))

    def truncate_next(self, count: int, path: str = "") -> None:
        self._queue(count, _Fault("truncate", path=path))

    def ignore_range_next(self, count: int, path: str = "") -> None:
        """Forward without the Range header: a server that answers 200 with everything."""
        self._queue(count, _Fault("ignore_range", path=path))

    def pending_faults(self) -> int:
        """Faults queued and not yet applied to a request."""
        with self._lock:
            return len(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self.latency = 0.0
        self.slow_paths = {}

    # --- counts -------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def reset_counts(self) -> None:
        with self._lock:
            self._records.clear()
            self.most_in_flight = self._in_flight

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.kind for r in self.requests))

    def bytes_sent(self) -> int:
        return sum(r.bytes for r in self.requests)

    # --- used by the handler ------------------------------------------------------

    def _queue(self, count: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    def next_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for position, fault in enumerate(self._faults):
                if fault.path in path:
                    del self._faults[position]
                    return fault
            return None

    def serving(self, step: int) -> None:
        with self._lock:
            self._in_flight += step
            self.most_in_flight = max(self.most_in_flight, self._in_flight)

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._clients.add(sock)
            else:
                self._clients.discard(sock)

    def __enter__(self) -> S3Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def request_kind(method: str, path: str, query: str, range_: str | None) -> str:
    if method == "HEAD":
        return "head"
    if method != "GET":
        return "other"
    bucket_only = "/" not in path.strip("/")
    if bucket_only or "list-type" in query:
        return "list"
    return "get_range" if range_ else "get"


def error_body(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>desfs-test-proxy</RequestId></Error>"
    ).encode()


def _abort(sock: socket.socket) -> None:
    """Close with RST rather than FIN: what a crashed or vanished peer looks like."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _handler_class(proxy: S3Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        pass

    Handler.proxy = proxy
    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: S3Proxy
    protocol_version = "HTTP/1.1"
    # A reply's head and body go out in two sends; with Nagle on, every GET with a body
    # waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.proxy.track(self.connection, alive=True)

    def finish(self) -> None:
        self.proxy.track(self.connection, alive=False)
        with contextlib.suppress(OSError):  # the client may already be gone
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        self.proxy.serving(1)
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (its read timeout, under latency): nothing to tell.
            self.close_connection = True
        finally:
            self.proxy.serving(-1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.proxy.next_fault(self.path)
        if self.proxy.latency and self.proxy.stopping.wait(self.proxy.latency):
            return self._abort()
        slow = max((s for p, s in self.proxy.slow_paths.items() if p in self.path), default=0.0)
        if slow and self.proxy.stopping.wait(slow):
            return self._abort()
        if fault is not None and fault.action in ("reset", "stall"):
            self._record(0, 0)  # now: a stalled request was seen even if the test ends first
            if fault.action == "stall":
                self.proxy.stopping.wait(fault.seconds)
            return self._abort()
        if fault is not None and fault.action == "fail":
            payload = error_body(fault.code, "injected by the test proxy")
            return self._reply(fault.status, "Injected", [], payload, cut=False)
        drop_range = fault is not None and fault.action == "ignore_range"
        status, reason, headers, payload = self._forward(body, drop_range)
        action = fault.action if fault is not None else ""
        cut = action in ("truncate", "stall_body")
        self._reply(status, reason, headers, payload, cut=cut, fin=action != "stall_body")
        if fault is not None and action == "stall_body":
            # Silent with the body half sent, then gone: a peer that hung mid-transfer.
            self.proxy.stopping.wait(fault.seconds)
            self._abort()

    def _forward(
        self, body: bytes, drop_range: bool
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.upstream_port, timeout=30)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if not (drop_range and name.lower() == "range"):
                    conn.putheader(name, value)
            conn.endheaders(body or None)
            reply = conn.getresponse()
            payload = reply.read()
            return reply.status, reply.reason, reply.getheaders(), payload
        except OSError:
            return 502, "Bad Gateway", [], error_body("BadGateway", "upstream unreachable")
        finally:
            conn.close()

    def _reply(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        payload: bytes,
        cut: bool,
        fin: bool = True,
    ) -> None:
        head = self.command == "HEAD"
        self.send_response_only(status, reason)
        declared = len(payload)
        for name, value in headers:
            if name.lower() == "content-length" and head:
                declared = int(value)
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(declared))
        if not headers:
            self.send_header("Content-Type", "application/xml")
        sent = 0 if head else (len(payload) // 2 if cut else len(payload))
        # Recorded before the client can see the end of the reply, so a test that
        # inspects `requests` right after its call returns always finds it.
        self._record(status, sent)
        self.end_headers()
        if sent:
            self.wfile.write(payload[:sent])
        self.wfile.flush()
        if cut:
            self.close_connection = True
        if cut and fin:
            # A clean FIN mid-body: the client sees fewer bytes than Content-Length.
            self.connection.shutdown(socket.SHUT_WR)

    def _abort(self) -> None:
        self.close_connection = True
        _abort(self.connection)

    def _record(self, status: int, sent: int) -> None:
        parts = urlsplit(self.path)
        range_ = self.headers.get("Range")
        kind = request_kind(self.command, parts.path, parts.query, range_)
        self.proxy.record(
            RequestRecord(self.command, parts.path, parts.query, range_, status, sent, kind)
        )
