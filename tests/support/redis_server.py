"""A real `redis-server` in a subprocess on 127.0.0.1, for the shared index cache tests.

No persistence, so a killed or restarted server comes back empty, like a Redis that lost
its memory. `restart()` keeps the port, so a mount configured with the URL finds it again.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

from tests.support.moto_server import free_port

START_TIMEOUT = 20.0


def needs_redis() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed (scripts/bootstrap.sh installs it)",
    )


class RedisServer:
    def __init__(self, workdir: Path, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.extra = list(extra)
        self.password: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "no",
                *self.extra]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(
            ["redis-server", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.client().ping()
                return self
            except redis.RedisError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on {self.port}") from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5
        )

    def kill(self) -> None:
        """A crash: SIGKILL, memory lost."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def records(self) -> list[bytes]:
        return sorted(self.client().scan_iter(match=b"desfs:index:*", count=1000))
