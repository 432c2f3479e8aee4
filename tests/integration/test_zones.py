"""DES zones: one archive whose shards are spread over two buckets behind two endpoints
(two counting proxies in front of moto, each stoppable on its own). The mount shows one
tree; each shard is read from its zone only; a zone that is down fails only its shards,
with its name in the log; and a bad zones file is one clear line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from desfs.settings.zones import shard_index_of_key
from tests.support.moto_server import MotoServer
from tests.support.mounting import Mounted, needs_fuse, root_stats
from tests.support.s3proxy import S3Proxy
from tests.support.trees import random_files

pytestmark = [pytest.mark.s3]

DAY = "2025-04-01"
MISPLACED = "20250401_9_0000.des"  # shard 9 belongs to zone b; a stray copy sits in zone a


@dataclass(frozen=True)
class Zoned:
    source: Path  # the files before packing
    packed: Path  # every container, as one local source
    zones_file: Path
    proxies: dict[str, S3Proxy]
    env: dict[str, str]


@pytest.fixture(scope="module")
def zoned(
    tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer, s3_client: Any
) -> Iterator[Zoned]:
    root = tmp_path_factory.mktemp("zones")
    src = root / "src"
    random_files(src, 400, 21, lambda i: f"d{i % 3}/doc-{i:04d}.txt", (1, 900))
    packed = root / "packed"
    pack_directory(src, packed, PackOptions(Format.DES2, date(2025, 4, 1), shard_bits=4))
    keys = sorted(p.name for p in packed.iterdir() if p.is_file())
    assert len(keys) == 16
    for bucket in ("zone-a", "zone-b"):
        s3_client.create_bucket(Bucket=bucket)
    for key in keys:
        index = shard_index_of_key(key)
        assert index is not None
        bucket = "zone-a" if index < 8 else "zone-b"
        s3_client.put_object(Bucket=bucket, Key=f"des/{key}", Body=(packed / key).read_bytes())
    s3_client.put_object(Bucket="zone-a", Key=f"des/{MISPLACED}", Body=b"not the real shard")
    proxies = {name: S3Proxy(moto_server.port).start() for name in ("a", "b")}
    zones_file = root / "zones.yaml"
    zones_file.write_text(yaml.safe_dump(_upstream_zones(proxies)))
    try:
        yield Zoned(src, packed, zones_file, proxies, moto_server.env())
    finally:
        for proxy in proxies.values():
            proxy.stop()


def _upstream_zones(proxies: dict[str, S3Proxy]) -> dict[str, Any]:
    """The zones file exactly as DES writes and reads it."""
    return {
        "n_bits": 4,
        "zones": [
            {"name": "a", "range": {"start": 0, "end": 7},
             "s3": {"bucket": "zone-a", "prefix": "des", "region_name": "us-east-1",
                    "endpoint_url": proxies["a"].url}},
            {"name": "b", "range": {"start": 8, "end": 15},
             "s3": {"bucket": "zone-b", "prefix": "des/", "region_name": "us-east-1",
                    "endpoint_url": proxies["b"].url}},
        ],
    }  # fmt: skip


def _desfs(*words: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", *words], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip


def _find(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@needs_fuse()
def test_one_tree_each_shard_from_its_zone(zoned: Zoned, tmp_path: Path) -> None:
    for proxy in zoned.proxies.values():
        proxy.reset_counts()
    local = Mounted(str(zoned.packed), tmp_path / "local", tmp_path / "local.log")
    mount = Mounted(str(zoned.zones_file), tmp_path / "zoned", tmp_path / "z.log", [], zoned.env)
    with local, mount:
        assert _find(mount.path) == _find(local.path)
        for path in sorted(local.path.rglob("*.txt"))[::7]:
            twin = mount.path / path.relative_to(local.path)
            assert twin.read_bytes() == path.read_bytes()
        stats = root_stats(mount.path)
        assert set(stats["zones"]) == {"a", "b"}
        assert all(zone["requests"]["get_range"] > 0 for zone in stats["zones"].values())
    a_paths = [r.path for r in zoned.proxies["a"].requests if r.kind != "list"]
    b_paths = [r.path for r in zoned.proxies["b"].requests if r.kind != "list"]
    assert a_paths and b_paths
    assert all(shard_index_of_key(p.rsplit("/", 1)[1]) in range(8) for p in a_paths), a_paths
    assert all(shard_index_of_key(p.rsplit("/", 1)[1]) in range(8, 16) for p in b_paths)
    assert not any(MISPLACED in p for p in a_paths), "the stray copy in zone a was read"


@needs_fuse()
def test_a_zone_down_fails_only_its_shards(zoned: Zoned, tmp_path: Path) -> None:
    mount = Mounted(str(zoned.zones_file), tmp_path / "m", tmp_path / "m.log", [], zoned.env)
    with mount:
        day = mount.path / DAY
        before = sorted(p.name for p in day.iterdir())
        assert len(before) == 16
        zoned.proxies["b"].stop()
        try:
            # Shards not opened yet: zone a's open and read, zone b's fail with EIO.
            low = sorted((day / "3_0000").rglob("*.txt"))[0]
            assert low.read_bytes() == _original(zoned, low.name)
            failed = mount.run("ls", "-R", str(day / "C_0000"), check=False)
            assert failed.returncode != 0 and b"Input/output error" in failed.stderr
            assert "zone b:" in mount.log()
            assert sorted(p.name for p in day.iterdir()) == before, "a listing held from before"
        finally:
            zoned.proxies["b"].start()
        found = sorted((day / "C_0000").rglob("*.txt"))
        assert found, "zone b is back"
        assert found[0].read_bytes() == _original(zoned, found[0].name)


def test_a_fresh_listing_with_a_zone_down_shows_the_others(zoned: Zoned) -> None:
    zoned.proxies["b"].stop()
    try:
        done = _desfs("ls", str(zoned.zones_file), DAY, "--max-attempts", "1", env=zoned.env)
    finally:
        zoned.proxies["b"].start()
    assert done.returncode == 0, done.stderr
    shown = done.stdout.split()
    assert shown == [f"{i:X}_0000/" for i in range(8)]
    assert "zone b: listing failed" in done.stderr


def test_zones_under_the_config_key_and_as_json(zoned: Zoned, tmp_path: Path) -> None:
    config = tmp_path / "desfs.yaml"
    config.write_text(yaml.safe_dump({"zones": _upstream_zones(zoned.proxies)}))
    by_config = _desfs("ls", "--config", str(config), "@config", DAY, env=zoned.env)
    assert by_config.returncode == 0, by_config.stderr
    as_json = tmp_path / "zones.json"
    as_json.write_text(json.dumps(_upstream_zones(zoned.proxies)))
    by_json = _desfs("ls", str(as_json), DAY, env=zoned.env)
    assert by_json.returncode == 0, by_json.stderr
    assert by_config.stdout == by_json.stdout
    assert len(by_json.stdout.split()) == 16
    verified = _desfs("verify", str(as_json), env=zoned.env)
    assert verified.returncode == 0, verified.stderr
    assert "16 containers, 400 entries" in verified.stdout


BAD_ZONES = {
    "overlap": ({"start": 0, "end": 8}, "zone 'b': range 8..15 overlaps zone 'a' (0..8)"),
    "gap": ({"start": 0, "end": 6}, "shard indices 7..7 (before zone 'b') belong to no zone"),
    "outside": ({"start": 0, "end": 16}, "zone 'a': range 0..16 is not inside 0..15"),
}


@pytest.mark.parametrize("case", BAD_ZONES)
def test_bad_zones_are_one_line_naming_the_zone(zoned: Zoned, tmp_path: Path, case: str) -> None:
    bad_range, message = BAD_ZONES[case]
    data = _upstream_zones(zoned.proxies)
    data["zones"][0]["range"] = bad_range
    path = tmp_path / "zones.yaml"
    path.write_text(yaml.safe_dump(data))
    done = _desfs("ls", str(path), env=zoned.env)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"desfs: zones file {path}: ")
    assert message in line, line
    if case == "gap":
        data["allow_gaps"] = True
        path.write_text(yaml.safe_dump(data))
        allowed = _desfs("ls", str(path), DAY, env=zoned.env)
        assert allowed.returncode == 0, allowed.stderr
        assert "7_0000/" not in allowed.stdout.split()


def _original(zoned: Zoned, name: str) -> bytes:
    [found] = list(zoned.source.glob(f"*/{name}"))
    return found.read_bytes()


def test_zone_shards_match_the_local_tree(zoned: Zoned) -> None:
    """The stray copy of shard 9 in zone a is not what a listing shows."""
    done = _desfs("stat", str(zoned.zones_file), f"{DAY}/9_0000", env=zoned.env)
    assert done.returncode == 0, done.stderr
    assert str((zoned.packed / MISPLACED).stat().st_size) in done.stdout
