"""`desfs serve` in a subprocess on a free port, and an HTTP client for it (urllib3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import urllib3

from tests.support.moto_server import free_port

START_TIMEOUT = 30.0


class Served:
    def __init__(
        self,
        source: str,
        log_path: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [
            sys.executable, "-m", "desfs", "serve", source,
            "--listen", f"127.0.0.1:{self.port}", *args,
        ]  # fmt: skip
        self._env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = urllib3.PoolManager(maxsize=64, retries=False, timeout=60)

    def __enter__(self) -> Served:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self._command, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.get("/health").status == 200:
                    return self
            except urllib3.exceptions.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"desfs serve did not come up:\n{self.log()}")
            time.sleep(0.05)

    def get(self, path: str, **headers: str) -> urllib3.BaseHTTPResponse:
        return self.request("GET", path, **headers)

    def request(self, method: str, path: str, **headers: str) -> urllib3.BaseHTTPResponse:
        # No idle keep-alive connections: they would hold the server's graceful stop.
        sent = {"Connection": "close", **headers}
        return self.http.request(method, self.url + path, headers=sent)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.http.clear()  # idle keep-alive connections would hold the graceful stop
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        code = self.stop()
        if kind is None:
            assert code == 0, f"desfs serve exited {code}:\n{self.log()}"
