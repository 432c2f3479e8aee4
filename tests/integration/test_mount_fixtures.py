"""Every upstream fixture case, mounted from a local directory and from S3 (Ceph RGW),
read with ordinary tools (`find`, `sha256sum`, `stat`, `getfattr`) against its manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import cases, load_manifest
from tests.support.moto_server import upload_tree
from tests.support.mounting import Mounted, needs_fuse
from tests.support.rgw import RgwServer

pytestmark = needs_fuse()

CASES = cases()


def _shard_dir(key: str) -> str:
    flat = re.fullmatch(r"(\d{4})(\d{2})(\d{2})_([0-9A-F]+_\d{4})\.des", key)
    if flat:
        return f"/{flat[1]}-{flat[2]}-{flat[3]}/{flat[4]}"
    dated = re.fullmatch(r"(\d{4}-\d{2}-\d{2})/([^/]+)\.des", key)
    assert dated, f"fixture key {key} has no known layout"
    return f"/{dated[1]}/{dated[2]}"


def expected_tree(manifest: dict[str, Any]) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """(directories, files by path) that the mount must show."""
    dirs: set[str] = set()
    for container in manifest["containers"]:
        shard = _shard_dir(container["key"])
        dirs.update({shard, shard.rsplit("/", 1)[0]})
    files: dict[str, dict[str, Any]] = {}
    for record in manifest["files"]:
        path = record["path"]
        if path is None and "/" in record["name"] and record["effective"]:
            path = f"{_shard_dir(record['container'])}/{record['name']}"
        if path is None or not record["effective"] or record.get("tombstoned"):
            continue
        files[path] = record
        parent = path.rsplit("/", 1)[0]
        while parent.count("/") > 2:
            dirs.add(parent)
            parent = parent.rsplit("/", 1)[0]
    return dirs, files


def check_mount(mnt: Path, manifest: dict[str, Any]) -> None:
    dirs, files = expected_tree(manifest)
    listed = subprocess.run(
        ["find", str(mnt), "-mindepth", "1", "-printf", "%y /%P\\n"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert sorted(listed) == sorted([f"d {d}" for d in dirs] + [f"f {f}" for f in files])
    if files:
        sums = subprocess.run(
            ["sha256sum", *(str(mnt) + p for p in sorted(files))],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.splitlines()  # fmt: skip
        for line in sums:
            digest, name = line.split("  ", 1)
            assert digest == files[name[len(str(mnt)) :]]["sha256"], name
    for path, record in files.items():
        assert os.stat(str(mnt) + path).st_size == record["size"], path
        check_meta(mnt, path, record["meta"])


def check_meta(mnt: Path, path: str, meta: dict[str, Any]) -> None:
    done = subprocess.run(
        ["getfattr", "--only-values", "-n", "user.des.meta", str(mnt) + path],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    if meta:
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == meta
    else:
        assert done.returncode != 0 and b"No such attribute" in done.stderr


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_local_mount_matches_manifest(case: Path, tmp_path: Path) -> None:
    manifest = load_manifest(case)
    with Mounted(str(case / "bucket"), tmp_path / "mnt", tmp_path / "daemon.log") as mount:
        check_mount(mount.path, manifest)


@pytest.mark.s3
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_s3_mount_matches_manifest(
    case: Path, tmp_path: Path, rgw_server: RgwServer, rgw_client: Any
) -> None:
    manifest = load_manifest(case)
    bucket = "fx-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]
    rgw_client.create_bucket(Bucket=bucket)
    upload_tree(rgw_client, bucket, case / "bucket", "archive/")
    env = rgw_server.env()
    source = f"s3://{bucket}/archive"
    with Mounted(source, tmp_path / "mnt", tmp_path / "daemon.log", env=env) as mount:
        check_mount(mount.path, manifest)
