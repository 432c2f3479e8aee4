"""A mount that cannot reach its source says so before it reports success: the exit code
(3 missing, 4 unreachable or refused) and the store's reason on stderr, nothing mounted
and no daemon left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from desfs.errors import ExitCode
from tests.support.moto_server import MotoServer, free_port
from tests.support.mounting import needs_fuse
from tests.support.s3proxy import S3Proxy

pytestmark = needs_fuse()

FAST = ["--connect-timeout", "1", "--read-timeout", "1", "--max-attempts", "2"]


def _mount(
    source: str, mnt: Path, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    mnt.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "desfs", "mount", source, str(mnt), *FAST, *extra],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False,
    )  # fmt: skip


def _no_daemon_left(mnt: Path) -> None:
    time.sleep(0.2)
    assert not os.path.ismount(mnt)
    found = subprocess.run(["pgrep", "-f", f"desfs mount .* {mnt}"], capture_output=True)
    assert found.returncode != 0, found.stdout


@pytest.mark.parametrize("foreground", [False, True], ids=["daemon", "foreground"])
def test_a_missing_bucket_fails_the_mount_with_exit_3(
    moto_server: MotoServer, tmp_path: Path, foreground: bool
) -> None:
    extra = ["--foreground"] if foreground else []
    done = _mount("s3://nosuchbucket", tmp_path / "mnt", moto_server.env(), *extra)
    assert done.returncode == ExitCode.NOT_FOUND, done.stderr
    assert "NoSuchBucket" in done.stderr or "does not exist" in done.stderr, done.stderr
    _no_daemon_left(tmp_path / "mnt")


def test_a_dead_endpoint_fails_the_mount_with_exit_4(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    env = {**moto_server.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    began = time.monotonic()
    done = _mount("s3://anything", tmp_path / "mnt", env, "--request-deadline", "5")
    assert done.returncode == ExitCode.STORAGE, done.stderr
    assert "127.0.0.1" in done.stderr, done.stderr
    assert time.monotonic() - began < 20
    _no_daemon_left(tmp_path / "mnt")


def test_refused_credentials_fail_the_mount_with_exit_4(
    moto_server: MotoServer, s3_client: Any, tmp_path: Path
) -> None:
    s3_client.create_bucket(Bucket="refused")
    with S3Proxy(moto_server.port) as proxy:
        proxy.fail_next(5, status=403, code="AccessDenied")
        env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        done = _mount("s3://refused", tmp_path / "mnt", env)
    assert done.returncode == ExitCode.STORAGE, done.stderr
    assert "AccessDenied" in done.stderr, done.stderr
    _no_daemon_left(tmp_path / "mnt")


def test_a_missing_local_source_is_exit_3(tmp_path: Path) -> None:
    done = _mount(str(tmp_path / "nowhere"), tmp_path / "mnt", {})
    assert done.returncode == ExitCode.NOT_FOUND, done.stderr
    assert "does not exist" in done.stderr
