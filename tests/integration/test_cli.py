"""The offline CLI through a subprocess: every fixture path by `desfs cat`, `stat`, `ls`,
`verify`, on local and S3 sources, and the documented exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from desfs.errors import ExitCode
from tests.integration.test_mount_fixtures import expected_tree
from tests.support.builders import build_deshead1
from tests.support.fixtures import cases, load_manifest
from tests.support.moto_server import MotoServer, upload_tree

CASES = cases()


def desfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", *args],
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def check_source(source: str, manifest: dict[str, Any], env: dict[str, str] | None) -> None:
    dirs, files = expected_tree(manifest)
    paths = sorted(files)
    if paths:
        # `cat` concatenates like cat(1); the manifest sizes cut the stream apart again.
        done = desfs("cat", source, *paths, env=env)
        assert done.returncode == 0, done.stderr
        offset = 0
        for path in paths:
            piece = done.stdout[offset : offset + files[path]["size"]]
            offset += files[path]["size"]
            assert hashlib.sha256(piece).hexdigest() == files[path]["sha256"], path
        assert offset == len(done.stdout)
        described = desfs("stat", source, *paths, "/", env=env)
        assert described.returncode == 0, described.stderr
        for path, info in zip(paths, json.loads(described.stdout), strict=False):
            assert info["size"] == files[path]["size"], path
            assert info["meta"] == files[path]["meta"], path
    shards = sorted(d for d in dirs if d.count("/") == 2)
    done = desfs("ls", source, *shards, env=env)
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.decode().split("\n\n") if len(shards) > 1 else [done.stdout.decode()]
    for shard, block in zip(shards, blocks, strict=True):
        lines = block.splitlines()[1:] if len(shards) > 1 else block.splitlines()
        names = {line.rstrip("/") for line in lines}
        expected = {p[len(shard) + 1 :].split("/")[0] for p in files if p.startswith(shard + "/")}
        assert names == expected, shard
    verified = desfs("verify", source, env=env)
    assert verified.returncode == 0, verified.stderr
    assert b" 0 problems" in verified.stdout


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_local_cli_matches_manifest(case: Path) -> None:
    check_source(str(case / "bucket"), load_manifest(case), None)


@pytest.mark.s3
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_s3_cli_matches_manifest(case: Path, moto_server: MotoServer, s3_client: Any) -> None:
    bucket = f"cli-{case.name.replace('_', '-')}"
    s3_client.create_bucket(Bucket=bucket)
    upload_tree(s3_client, bucket, case / "bucket", "p/")
    check_source(f"s3://{bucket}/p", load_manifest(case), moto_server.env())


def test_single_container_file() -> None:
    fixture = next(c for c in CASES if c.name == "dv_basic_container")
    container = fixture / "bucket" / "2024-12-05" / "shard_00.des"
    listed = desfs("ls", "-l", str(container))
    assert listed.returncode == 0
    assert b"12\thello.txt" in listed.stdout
    assert desfs("cat", str(container), "hello.txt").stdout == b"hello world\n"


def test_hidden_names_and_raw_cat(tmp_path: Path) -> None:
    day = tmp_path / "2024-12-03"
    day.mkdir()
    entries = [("../escape.txt", b"escaped", None), ("ok.txt", b"fine", None)]
    (day / "0.des").write_bytes(build_deshead1(entries))
    listed = desfs("ls", "--all", str(tmp_path), "/2024-12-03/0")
    assert listed.returncode == 0
    lines = listed.stdout.decode().splitlines()
    assert lines[0] == "ok.txt"
    assert any("../escape.txt" in line and "hidden" in line for line in lines[1:])
    raw = desfs("cat", str(tmp_path), "/2024-12-03/0", "--name", "../escape.txt")
    assert raw.returncode == 0 and raw.stdout == b"escaped"
    by_hex = desfs("cat", str(tmp_path), "/2024-12-03/0", "--name-hex", b"../escape.txt".hex())
    assert by_hex.stdout == b"escaped"


def test_exit_codes(tmp_path: Path) -> None:
    sample = "@sample"
    assert desfs("ls", sample).returncode == ExitCode.OK
    missing = desfs("cat", sample, "/2024-12-03/0/no-such-file")
    assert missing.returncode == ExitCode.NOT_FOUND
    assert missing.stderr.count(b"\n") == 1 and b"Traceback" not in missing.stderr
    assert desfs("cat", sample, "/2024-12-03").returncode == ExitCode.USAGE
    assert desfs("ls", str(tmp_path / "nowhere")).returncode == ExitCode.NOT_FOUND
    assert desfs("ls", "s3://").returncode == ExitCode.USAGE
    assert desfs("ls", "--tail-window", "lots", sample).returncode == ExitCode.USAGE
    bad = tmp_path / "bad"
    (bad / "2024-12-03").mkdir(parents=True)
    good = build_deshead1([("a.txt", b"a", None)])
    (bad / "2024-12-03" / "0.des").write_bytes(good)
    (bad / "2024-12-03" / "1.des").write_bytes(good[:-10] + b"\xff" * 10)
    damaged = desfs("verify", str(bad))
    assert damaged.returncode == ExitCode.PROBLEMS
    assert b"1.des" in damaged.stderr
    corrupt = desfs("ls", str(bad), "/2024-12-03/1")
    assert corrupt.returncode == ExitCode.FORMAT


def test_unreachable_store_fails_fast() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = desfs("ls", "--max-attempts", "2", "--connect-timeout", "1", "s3://b", env=env)
    assert done.returncode == ExitCode.STORAGE
    assert b"Traceback" not in done.stderr
