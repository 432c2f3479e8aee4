"""The other stores through a real mount, the offline tools and `desfs serve`: each fixture
case their own writers made, from a local directory and from Ceph RGW, with the requests
counted on the server side by a proxy."""

from __future__ import annotations

import hashlib
import math
import os
import random
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from desfs.archive.store_open import KEEP_WHOLE, PROBE_SPAN
from desfs.settings.sections import CacheSettings
from tests.support.moto_server import upload_tree
from tests.support.mounting import Mounted, needs_fuse
from tests.support.rgw import RgwServer
from tests.support.s3proxy import RequestRecord, S3Proxy
from tests.support.serving import Served
from tests.support.store_writers import write_conduit, write_datarange, write_s4db
from tests.support.stores import blobs, expected, manifest, source_dir, store_cases

pytestmark = needs_fuse()

PREFETCH_CAP = CacheSettings().prefetch_cap

GOOD = [
    case
    for store in ("s4db", "datas3t2", "conduit")
    for case in store_cases(store)
    if manifest(case).get("expect") in (None, "ok")
]


RICH = {"s4db": "multifile", "datas3t2": "two-dataranges", "conduit": "compressed"}


def _case(store: str, name: str) -> Path:
    (found,) = [c for c in store_cases(store) if c.name == name]
    return found


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _find(mnt: Path) -> dict[str, int]:
    listed = subprocess.run(
        ["find", str(mnt), "-type", "f", "-printf", "%P\\0%s\\0"],
        capture_output=True, timeout=60, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    return {listed[i]: int(listed[i + 1]) for i in range(0, len(listed) - 1, 2)}


def _check_tree(mnt: Path, case: Path) -> None:
    want = expected(case)
    assert _find(mnt) == {path: size for path, (size, _) in want.items()}
    for path, (_, digest) in want.items():
        # A key longer than PATH_MAX is listed (find walks it) but has no path to open.
        if digest is not None and len(os.fsencode(mnt / path)) < 4096:
            assert _digest(mnt / path) == digest, path
    if case.parent.name == "conduit":
        for name, start, end, digest in blobs(case):
            assert _dd(mnt / name, start, end - start) == digest, (name, start)


def _dd(path: Path, skip: int, count: int) -> str:
    """`dd skip=OFFSET count=LENGTH` in bytes: a BLOB read at its DataLocation."""
    out = subprocess.run(
        ["dd", f"if={path}", f"skip={skip}", f"count={count}", "bs=4096", "status=none",
         "iflag=skip_bytes,count_bytes"],
        capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return hashlib.sha256(out).hexdigest()


@pytest.mark.parametrize("case", GOOD, ids=lambda c: f"{c.parent.name}-{c.name}")
def test_local_mount_reads_every_file(case: Path, tmp_path: Path) -> None:
    with Mounted(str(source_dir(case)), tmp_path / "mnt", tmp_path / "log") as mount:
        _check_tree(mount.path, case)


def test_damaged_units_fail_alone(tmp_path: Path) -> None:
    """A datarange whose TAR disagrees with its index, and a Conduit file a writer is
    appending to: EIO for them, with the reason in the log; the mount lives on."""
    pax = _case("datas3t2", "pax-long-ext")
    with Mounted(str(source_dir(pax)), tmp_path / "mnt", tmp_path / "log") as mount:
        (dataset,) = os.listdir(mount.path)
        (datarange,) = os.listdir(mount.path / dataset)
        with pytest.raises(OSError, match="Input/output error"):
            os.listdir(mount.path / dataset / datarange)
        assert os.listdir(mount.path) == [dataset]
        assert "describes a" in mount.log()
    appending = _case("conduit", "mid-append")
    with Mounted(str(source_dir(appending)), tmp_path / "mnt2", tmp_path / "log2") as mount:
        (name,) = os.listdir(mount.path)
        result = subprocess.run(["cat", str(mount.path / name)], capture_output=True, timeout=30)
        assert result.returncode != 0 and b"Input/output error" in result.stderr
        assert "writer is appending" in mount.log()


def _desfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("store", ["s4db", "datas3t2", "conduit"])
def test_offline_tools(store: str) -> None:
    case = _case(store, RICH[store])
    source = str(source_dir(case))
    path, (size, digest) = sorted(expected(case).items())[-1]
    cat = subprocess.run(
        [sys.executable, "-m", "desfs", "cat", source, path], capture_output=True, timeout=60
    )
    assert cat.returncode == 0, cat.stderr
    assert len(cat.stdout) == size
    assert digest is None or hashlib.sha256(cat.stdout).hexdigest() == digest
    stat = _desfs("stat", source, path)
    assert stat.returncode == 0 and f'"size": {size}' in stat.stdout, stat
    top = path.split("/")[0]
    listing = _desfs("ls", source, "/" if "/" not in path else top)
    assert listing.returncode == 0 and top in listing.stdout + path, listing
    verify = _desfs("verify", source)
    assert verify.returncode == 0 and "0 problems" in verify.stdout, verify
    broken = _desfs("verify", str(source_dir(_case("conduit", "mid-append"))))
    assert broken.returncode != 0 and "1 problems" in broken.stdout


@pytest.mark.parametrize("store", ["s4db", "datas3t2", "conduit"])
def test_serve_reads_every_file(store: str, tmp_path: Path) -> None:
    case = _case(store, RICH[store])
    with Served(str(source_dir(case)), tmp_path / "log") as served:
        for path, (size, digest) in expected(case).items():
            reply = served.get("/" + urllib.parse.quote(path))
            assert reply.status == 200, (path, reply.data[:200])
            assert len(reply.data) == size
            assert digest is None or hashlib.sha256(reply.data).hexdigest() == digest
        if store == "conduit":
            name, start, end, digest = blobs(case)[1]
            part = served.get("/" + name, Range=f"bytes={start}-{end - 1}")
            assert part.status == 206 and hashlib.sha256(part.data).hexdigest() == digest
        assert served.get("/").status == 200


# -- S3 on Ceph RGW: the request budget ---------------------------------------------------


@dataclass(frozen=True)
class OnS3:
    mnt: Path
    proxy: S3Proxy
    case: Any  # a fixture case directory, or a _Tree


def _gets(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.kind in ("get", "get_range", "head")]


def _kinds(records: list[RequestRecord]) -> list[str]:
    return sorted(r.kind for r in records)


@dataclass(frozen=True)
class _Tree:
    """A source written by our own writers rather than a fixture case."""

    path: Path


@pytest.fixture
def on_s3(tmp_path: Path, rgw_server: RgwServer, rgw_client: Any) -> Iterator[Any]:
    proxies: list[S3Proxy] = []

    def mount(case: Path | _Tree, bucket: str, args: Sequence[str] = ()) -> Iterator[OnS3]:
        rgw_client.create_bucket(Bucket=bucket)
        tree = case.path if isinstance(case, _Tree) else source_dir(case)
        upload_tree(rgw_client, bucket, tree, "data/")
        proxy = S3Proxy(rgw_server.port).start()
        proxies.append(proxy)
        env = {**rgw_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        with Mounted(
            f"s3://{bucket}/data", tmp_path / bucket, tmp_path / f"{bucket}.log", args, env
        ) as mounted:
            yield OnS3(mounted.path, proxy, case)

    yield mount
    for proxy in proxies:
        proxy.stop()


@pytest.mark.s3
def test_s4db_on_s3_costs(on_s3: Any) -> None:
    for s3 in on_s3(_case("s4db", "multifile"), "s4db-budget"):
        proxy = s3.proxy
        proxy.reset_counts()
        names = os.listdir(s3.mnt)
        data_files = {e["file"] for e in manifest(s3.case)["live"]}
        # Listing the root opens the store: its index, then one probe GET per data file
        # for the value sizes (the records are small and close together).
        assert _kinds(proxy.requests) == ["get"] + ["get_range"] * len(data_files), proxy.requests
        assert names
        path, (_, digest) = next(iter(expected(s3.case).items()))
        os.stat(s3.mnt / path)
        proxy.reset_counts()
        assert _digest(s3.mnt / path) == digest
        gets = _gets(proxy.requests)
        assert [g.kind for g in gets] == ["get_range"], gets  # the record, exactly
        proxy.reset_counts()
        assert _digest(s3.mnt / path) == digest
        assert proxy.requests == []
        _check_tree(s3.mnt, s3.case)


@pytest.mark.s3
def test_datas3t2_on_s3_costs(on_s3: Any) -> None:
    for s3 in on_s3(_case("datas3t2", "two-dataranges"), "datas3t2-budget"):
        proxy = s3.proxy
        (dataset,) = os.listdir(s3.mnt)
        proxy.reset_counts()
        dataranges = os.listdir(s3.mnt / dataset)
        assert _kinds(proxy.requests) == ["list"], proxy.requests
        proxy.reset_counts()
        names = os.listdir(s3.mnt / dataset / dataranges[0])
        # The index (one GET), then the TAR headers that hold the names: one range GET.
        assert _kinds(proxy.requests) == ["get", "get_range"], proxy.requests
        proxy.reset_counts()
        os.listdir(s3.mnt / dataset / dataranges[0])
        assert proxy.requests == []
        path = f"{dataset}/{dataranges[0]}/{sorted(names)[0]}"
        _, digest = expected(s3.case)[path]
        assert _digest(s3.mnt / path) == digest
        # A TAR this small came whole with its index and stays with it: no GET.
        assert _gets(proxy.requests) == []
        _check_tree(s3.mnt, s3.case)


@pytest.mark.s3
def test_conduit_on_s3_costs(on_s3: Any) -> None:
    for s3 in on_s3(_case("conduit", "compressed"), "conduit-budget"):
        proxy = s3.proxy
        proxy.reset_counts()
        names = os.listdir(s3.mnt)
        # One suffix GET of each compressed file's seek table; the root LIST was the mount's.
        assert _kinds(proxy.requests) == ["get_range"] * len(names), proxy.requests
        assert all(r.range and r.range.startswith("bytes=-") for r in proxy.requests)
        proxy.reset_counts()
        name, start, end, digest = blobs(s3.case)[-1]
        assert _dd(s3.mnt / name, start, end - start) == digest
        gets = _gets(proxy.requests)
        assert len(gets) == 1, gets  # the frames that hold the BLOB, in one range GET
        proxy.reset_counts()
        assert _dd(s3.mnt / name, start, end - start) == digest
        assert proxy.requests == []
        _check_tree(s3.mnt, s3.case)


def _random_payloads(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(200, 6000)) for _ in range(count)]


@pytest.mark.s3
def test_datas3t2_copy_of_a_datarange_is_coalesced(
    on_s3: Any, tmp_path: Path, rgw_client: Any
) -> None:
    """`cp -r` of a datarange of 600 datapoints, too big to be kept with its index: one
    GET of its index and one of the TAR for the names, then one GET per prefetch cap of
    neighbouring datapoints (each exactly its bytes when read alone), not one each."""
    source = tmp_path / "source"
    shown = write_datarange(source, "big", 0, [("bin", p) for p in _random_payloads(600, 5)])
    (tar,) = (source / "datas3t/big/dataranges").glob("*.tar")
    assert KEEP_WHOLE < tar.stat().st_size <= PROBE_SPAN
    for s3 in on_s3(_Tree(source), "datas3t2-copy"):
        proxy = s3.proxy
        (datarange,) = os.listdir(s3.mnt / "big")
        proxy.reset_counts()
        names = os.listdir(s3.mnt / "big" / datarange)
        assert len(names) == 600
        assert _kinds(proxy.requests) == ["get", "get_range"], proxy.requests
        proxy.reset_counts()
        first = sorted(names)[0]
        want = shown[f"big/{datarange}/{first}"]
        assert (s3.mnt / "big" / datarange / first).read_bytes() == want
        (single,) = _gets(proxy.requests)
        assert single.bytes == len(want)  # exactly the datapoint's bytes
        proxy.reset_counts()
        subprocess.run(
            ["cp", "-r", str(s3.mnt / "big" / datarange), str(tmp_path / "copy")],
            check=True, timeout=120,
        )  # fmt: skip
        for path, data in shown.items():
            assert (tmp_path / "copy" / path.rsplit("/", 1)[1]).read_bytes() == data
        gets = _gets(proxy.requests)
        total = sum(len(d) for d in shown.values())
        assert len(gets) <= 2 + math.ceil(total / PREFETCH_CAP), len(gets)
        assert sum(g.bytes for g in gets) <= 1.5 * total  # headers and padding included


@pytest.mark.s3
def test_s4db_store_of_thousands_of_keys_opens_in_four_requests(on_s3: Any, tmp_path: Path) -> None:
    items = {f"k/{i:05d}": p for i, p in enumerate(_random_payloads(3000, 6))}
    write_s4db(tmp_path / "source", items, per_file=1000)
    for s3 in on_s3(_Tree(tmp_path / "source"), "s4db-big"):
        proxy = s3.proxy
        proxy.reset_counts()
        listed = subprocess.run(
            ["ls", "-l", str(s3.mnt / "k")], capture_output=True, check=True, timeout=60
        ).stdout
        assert len(listed.splitlines()) == 3001
        # The index, then one probe GET per data file for the value sizes.
        assert _kinds(proxy.requests) == ["get", "get_range", "get_range", "get_range"]
        proxy.reset_counts()
        for key in ("k/00000", "k/01500", "k/02999"):
            assert (s3.mnt / key).read_bytes() == items[key]
        assert [g.kind for g in _gets(proxy.requests)] == ["get_range"] * 3
        proxy.reset_counts()
        copy = tmp_path / "copy"
        subprocess.run(["cp", "-r", str(s3.mnt / "k"), str(copy)], check=True, timeout=300)
        for key, value in items.items():
            assert (copy / key.removeprefix("k/")).read_bytes() == value, key
        # Read in index order, records come in runs of --prefetch-cap per data file.
        gets = _gets(proxy.requests)
        total = sum(len(v) for v in items.values())
        assert len(gets) <= 3 * (2 + math.ceil(total / 3 / PREFETCH_CAP)), len(gets)


@pytest.mark.s3
def test_conduit_blobs_read_in_order_cost_a_get_per_frame(on_s3: Any, tmp_path: Path) -> None:
    blobs_written = _random_payloads(2000, 7)
    where = write_conduit(tmp_path / "source", 0, blobs_written, frame_bytes=1024 * 1024)
    frames = math.ceil(sum(len(b) for b in blobs_written) / (1024 * 1024))
    for s3 in on_s3(_Tree(tmp_path / "source"), "conduit-big"):
        proxy = s3.proxy
        (name,) = os.listdir(s3.mnt)
        proxy.reset_counts()
        fd = os.open(s3.mnt / name, os.O_RDONLY)
        try:
            for blob, (start, end) in zip(blobs_written, where, strict=True):
                assert os.pread(fd, end - start, start) == blob
        finally:
            os.close(fd)
        gets = _gets(proxy.requests)
        assert len(gets) <= frames + 1, (len(gets), frames)


@pytest.mark.s3
def test_store_faults_fail_the_path_and_pass(on_s3: Any) -> None:
    """The store failing longer than the retries: `ls` of an s4db root is EIO with the
    reason in the log, and works again once the store does, without a remount. A value
    cut short on the wire more often than retried is EIO, never short bytes, and reads
    whole the next time."""
    fast = ["--max-attempts", "2", "--backoff-base", "0.01", "--backoff-cap", "0.02"]
    for s3 in on_s3(_case("s4db", "multifile"), "s4db-faults", fast):
        proxy = s3.proxy
        proxy.fail_next(10, 500, "InternalError", "index.idx")
        with pytest.raises(OSError, match="Input/output error"):
            os.listdir(s3.mnt)
        proxy.clear_faults()
        assert os.listdir(s3.mnt)
        path, (_, digest) = next(iter(expected(s3.case).items()))
        data_file = next(e["file"] for e in manifest(s3.case)["live"] if e["key"] == path)
        proxy.truncate_next(4, data_file)  # more than the attempts: one is retried
        result = subprocess.run(["cat", str(s3.mnt / path)], capture_output=True, timeout=60)
        assert result.returncode != 0 and b"Input/output error" in result.stderr
        proxy.clear_faults()
        assert _digest(s3.mnt / path) == digest
        assert "index.idx" in (s3.mnt.parent / "s4db-faults.log").read_text()
