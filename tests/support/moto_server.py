"""A moto S3 server in a subprocess: a real HTTP endpoint for tests and child processes.

The server listens on 127.0.0.1 on a port chosen once; `restart()` brings it back on the
same port so fault tests can take the store away and return it. Moto keeps its state in
memory, so a restarted server is empty. Other processes (the CLI, the mount daemon) reach
it through `env()`: the standard AWS variables with dummy credentials.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DUMMY_KEY_ID = "testing"
DUMMY_SECRET = "testing"
REGION = "us-east-1"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    """`python -m moto.server` on 127.0.0.1:<port>, started and stopped by the test process."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> MotoServer:
        if self.running:
            return self
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_server_env()
        )
        self._wait_until_answering()
        return self

    def stop(self) -> None:
        """A clean stop (SIGTERM, then SIGKILL if it lingers)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """A crash: SIGKILL, no goodbye."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> MotoServer:
        self.stop()
        return self.start()

    def env(self) -> dict[str, str]:
        """Environment variables that point an AWS client (or a desfs child process) here."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        """A boto3 client talking to the server directly (for test setup, not via desfs)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=DUMMY_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET,
            region_name=REGION,
        )

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"moto server on port {self.port} exited during start")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"moto server on port {self.port} did not answer in {START_TIMEOUT}s")

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    # The server must not inherit an endpoint override meant for clients.
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("AWS_ENDPOINT_URL_S3", None)
    return env


def upload_tree(client: Any, bucket: str, root_dir: Path, prefix: str = "") -> list[str]:
    """Upload every regular file under `root_dir` as `prefix + relative path`; returns the keys."""
    files = sorted(p for p in _walk(root_dir) if p.is_file())
    keys = [prefix + p.relative_to(root_dir).as_posix() for p in files]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda kp: client.put_object(Bucket=bucket, Key=kp[0], Body=kp[1].read_bytes()),
                zip(keys, files, strict=True),
            )
        )
    return keys


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            yield Path(dirpath) / name
