"""`desfs serve` read by real clients over 127.0.0.1: every upstream fixture byte-exact by
path (and DES ones by UID), ranges, conditionals, 404/405/410/416, metadata, listings,
the request budget counted on the server side, the store away, and 64 clients at once."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.fixtures import cases, load_manifest
from tests.support.moto_server import MotoServer, upload_tree
from tests.support.s3proxy import S3Proxy
from tests.support.serving import Served

DAY = "2024-12-03"


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_every_fixture_file_reads_byte_exact(case: Path, tmp_path: Path) -> None:
    manifest = load_manifest(case)
    args = ["--des-n-bits", str(manifest["n_bits"])] if "n_bits" in manifest else []
    with Served(str(case / "bucket"), tmp_path / "log", args) as served:
        for file in manifest["files"]:
            if not file.get("path") or not file["effective"]:
                continue
            reply = served.get(file["path"])
            assert reply.status == 200, (file["path"], reply.data[:200])
            assert hashlib.sha256(reply.data).hexdigest() == file["sha256"], file["path"]
            assert int(reply.headers["Content-Length"]) == file["size"]
            if "n_bits" in manifest and "/" not in file["name"]:
                day = file["path"].split("/")[1]
                by_uid = served.get(f"/files/{file['name']}?created_at={day}T12:00:00Z")
                assert by_uid.status == 200, (file["name"], by_uid.data[:200])
                assert by_uid.data == reply.data
        missing = served.get("/files/no-such-uid?created_at=2024-12-09T00:00:00Z")
        assert missing.status == 404


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    base = tmp_path_factory.mktemp("serve")
    rng = random.Random(7)
    files = {f"doc-{i:04d}": rng.randbytes(rng.randint(0, 9000)) for i in range(300)}
    files["big.bin"] = rng.randbytes(3 * 1024 * 1024)
    (base / "in").mkdir()
    for name, data in files.items():
        (base / "in" / name).write_bytes(data)
    meta = {"doc-0001": {"mime": "image/png", "note": "zażółć"}}
    (base / "meta.json").write_text(json.dumps(meta))
    options = PackOptions(Format.DES2, date(2024, 12, 3), shard_bits=4,
                          metadata=meta, big_file_threshold=64 * 1024 * 1024)  # fmt: skip
    pack_directory(base / "in", base / "out", options)
    # A tombstone for one UID, in its container's .meta sidecar (des-formats §2.11).
    owner = next(p for p in (base / "out").glob("*.des") if b"doc-0007" in p.read_bytes())
    sidecar = {"tombstones": {"doc-0007:2024-12-03T00:00:00Z": {"uid": "doc-0007"}}}
    owner.with_suffix(".meta").write_text(json.dumps(sidecar))
    return base / "out", files


def _path_of(served: Served, name: str) -> str:
    reply = served.get(f"/files/{name}?created_at={DAY}T08:00:00+00:00")
    assert reply.status == 200
    for shard in json.loads(served.get(f"/{DAY}/").data)["entries"]:
        listing = json.loads(served.get(f"/{DAY}/{shard['name']}/?limit=1000").data)
        if any(row["name"] == name for row in listing["entries"]):
            return f"/{DAY}/{shard['name']}/{name}"
    raise AssertionError(name)


def test_ranges_conditionals_metadata_and_errors(
    packed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    root, files = packed
    with Served(str(root), tmp_path / "log", ["--des-n-bits", "4"]) as served:
        path = _path_of(served, "doc-0001")
        data = files["doc-0001"]
        full = served.get(path)
        assert full.data == data and full.headers["Accept-Ranges"] == "bytes"
        assert full.headers["Content-Type"] == "image/png"
        assert json.loads(full.headers["X-Desfs-Meta"])["note"] == "zażółć"
        assert json.loads(served.get(path + "?meta").data)["note"] == "zażółć"
        etag, modified = full.headers["ETag"], full.headers["Last-Modified"]
        assert etag.startswith('"') and not etag.startswith("W/")
        part = served.get(path, Range="bytes=10-19")
        assert (part.status, part.data) == (206, data[10:20])
        assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert served.get(path, Range="bytes=-7").data == data[-7:]
        assert served.get(path, Range=f"bytes={len(data) - 3}-").data == data[-3:]
        unsatisfiable = served.get(path, Range=f"bytes={len(data)}-")
        assert unsatisfiable.status == 416
        assert unsatisfiable.headers["Content-Range"] == f"bytes */{len(data)}"
        assert served.get(path, **{"If-None-Match": etag}).status == 304
        assert served.get(path, **{"If-None-Match": '"other"'}).status == 200
        assert served.get(path, **{"If-Modified-Since": modified}).status == 304
        stale = served.get(path, Range="bytes=0-3", **{"If-Range": '"other"'})
        assert (stale.status, stale.data) == (200, data)
        fresh = served.get(path, Range="bytes=0-3", **{"If-Range": etag})
        assert (fresh.status, fresh.data) == (206, data[:4])
        head = served.request("HEAD", path)
        assert head.status == 200 and head.data == b""
        assert int(head.headers["Content-Length"]) == len(data)
        assert served.request("PUT", path).status == 405
        assert served.request("DELETE", path).headers["Allow"] == "GET, HEAD"
        gone = served.get(f"/files/doc-0007?created_at={DAY}T00:00:00Z")
        assert gone.status == 410, gone.data
        assert served.get(f"/{DAY}/nope/x").status == 404
        assert served.get("/files/doc-0001").status == 400  # created_at is required
        assert served.get(f"/{DAY}/../../etc/passwd").status == 404
        big = _path_of(served, "big.bin")
        assert (
            hashlib.sha256(served.get(big).data).digest()
            == hashlib.sha256(files["big.bin"]).digest()
        )
        curl = subprocess.run(["curl", "-sf", "-r", "100-199", served.url + big],
                              capture_output=True, timeout=60, check=True)  # fmt: skip
        assert curl.stdout == files["big.bin"][100:200]


def _all_pages(served: Served, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = json.loads(served.get(f"{path}?offset={offset}").data)
        assert len(page["entries"]) <= 7 and page["total"] >= len(rows)
        rows += page["entries"]
        offset = page["next"]
    return rows


def test_listings_are_paged(packed: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    root, files = packed
    with Served(str(root), tmp_path / "log", ["--page-size", "7"]) as served:
        assert [row["name"] for row in _all_pages(served, "/")] == [DAY]
        shards = _all_pages(served, f"/{DAY}")
        assert len(shards) == 16  # n_bits 4, every shard written
        seen = [row["name"] for s in shards for row in _all_pages(served, f"/{DAY}/{s['name']}")]
        assert sorted(seen) == sorted(n for n in files if n != "doc-0007")  # a tombstone hides


def test_request_budget_on_the_server_side(
    packed: tuple[Path, dict[str, bytes]], moto_server: MotoServer, s3_client: Any, tmp_path: Path
) -> None:
    s3_client.create_bucket(Bucket="served")
    upload_tree(s3_client, "served", packed[0])
    with S3Proxy(moto_server.port) as proxy:
        env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        args = ["--des-n-bits", "4", "--tail-window", "4KiB", "--prefetch-cap", "0"]
        with Served("s3://served", tmp_path / "log", args, env) as served:
            path = _path_of(served, "doc-0100")
            other = _path_of(served, "doc-0150")
            for name in (path, other):
                served.get(name)  # opens the container
            proxy.reset_counts()
            cold = served.get(_path_of_same_shard(served, path, packed[1]))
            assert cold.status == 200
            assert proxy.counts() == {"get_range": 1}, proxy.requests
            proxy.reset_counts()
            assert served.get(path).status == 200
            assert proxy.counts() == {}, "a warm file costs nothing"
            lists = [r for r in proxy.requests if r.kind == "list"]
            assert lists == []


def _path_of_same_shard(served: Served, path: str, files: dict[str, bytes]) -> str:
    """Another file of the shard `path` is in, not read yet, not in the tail window."""
    shard = path.rsplit("/", 1)[0]
    rows = json.loads(served.get(shard + "/?limit=1000").data)["entries"]
    for row in rows[:-3]:
        candidate = f"{shard}/{row['name']}"
        if candidate != path and len(files[row["name"]]) > 0:
            return candidate
    raise AssertionError(shard)


def test_the_store_away_is_503_or_504_never_a_short_body(
    packed: tuple[Path, dict[str, bytes]], moto_server: MotoServer, s3_client: Any, tmp_path: Path
) -> None:
    s3_client.create_bucket(Bucket="served-faults")
    upload_tree(s3_client, "served-faults", packed[0])
    with S3Proxy(moto_server.port) as proxy:
        env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        args = ["--des-n-bits", "4", "--connect-timeout", "1", "--read-timeout", "1",
                "--max-attempts", "2", "--request-deadline", "3"]  # fmt: skip
        with Served("s3://served-faults", tmp_path / "log", args, env) as served:
            path = _path_of(served, "doc-0200")
            proxy.stop()
            began = time.monotonic()
            reply = served.get(f"/files/doc-0210?created_at={DAY}T00:00:00Z")
            assert reply.status in (503, 504), reply.data
            assert "Retry-After" in reply.headers
            assert time.monotonic() - began < 10
            assert served.get(path).status == 200, "cached bytes keep serving"
            proxy.start()


def test_sixty_four_clients_at_once_every_body_right(
    packed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    root, files = packed
    with Served(str(root), tmp_path / "log", ["--des-n-bits", "4"]) as served:
        names = [n for n in files if n != "doc-0007"]
        failures: list[str] = []
        deadline = time.monotonic() + 8

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                name = rng.choice(names)
                reply = served.get(f"/files/{name}?created_at={DAY}T00:00:00Z")
                if reply.status != 200 or reply.data != files[name]:
                    failures.append(f"{name}: {reply.status}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures[:5]
