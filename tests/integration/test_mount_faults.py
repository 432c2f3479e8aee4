"""Faults and concurrency through a real mount over S3: a store that dies mid-read, a slow
container beside fast ones, and many readers at once."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pytest

from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.moto_server import MotoServer, upload_tree
from tests.support.mounting import Mounted, needs_fuse
from tests.support.s3proxy import S3Proxy

pytestmark = [needs_fuse(), pytest.mark.s3]

MiB = 1024 * 1024
# Small timeouts so a dead store gives EIO quickly: 2 attempts x (1 s + 2 s) + backoff.
FAST_FAIL = ["--connect-timeout", "1", "--read-timeout", "2", "--max-attempts", "2"]
SUBPROCESS_TIMEOUT = 60


@dataclass
class Setup:
    root: Path
    moto: MotoServer
    proxy: S3Proxy
    files: dict[str, bytes]

    def upload(self) -> None:
        client = self.moto.client()
        client.create_bucket(Bucket="faults")
        upload_tree(client, "faults", self.root / "bucket", "")


def _source(root: Path) -> dict[str, bytes]:
    rng = random.Random(11)
    src = root / "src"
    files: dict[str, bytes] = {}
    for i in range(120):
        files[f"f{i:03d}.bin"] = rng.randbytes(rng.randint(1000, 30000))
    files["big.bin"] = rng.randbytes(8 * MiB)
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    pack_directory(
        src, root / "bucket", PackOptions(Format.DESHEAD1, date(2024, 12, 3), shard_bits=2)
    )
    return files


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("faults")
    files = _source(root)
    moto = MotoServer().start()  # this module's own server: the tests kill it
    proxy = S3Proxy(moto.port).start()
    found = Setup(root, moto, proxy, files)
    found.upload()
    yield found
    proxy.stop()
    moto.stop()


def _mount(setup: Setup, tmp_path: Path, args: list[str] = FAST_FAIL) -> Mounted:
    env = {**setup.moto.env(), "AWS_ENDPOINT_URL": setup.proxy.url}
    return Mounted("s3://faults", tmp_path / "mnt", tmp_path / "daemon.log", args, env)


def _where(mnt: Path, name: str) -> Path:
    day = mnt / "2024-12-03"
    return next(s / name for s in sorted(day.iterdir()) if (s / name).exists())


def _drain(stream: BinaryIO) -> None:
    while stream.read(1 * MiB):
        pass


def _cat(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["cat", str(path)], capture_output=True, timeout=SUBPROCESS_TIMEOUT)


def test_store_dies_mid_read_then_recovers(setup: Setup, tmp_path: Path) -> None:
    with _mount(setup, tmp_path) as mount:
        big = _where(mount.path, "big.bin")
        small = sorted(p for p in big.parent.iterdir() if p.name != "big.bin")
        assert _cat(small[0]).stdout == setup.files[small[0].name]
        with open(big, "rb") as stream:
            first = stream.read(1 * MiB)  # the read is under way ...
            setup.moto.kill()  # ... when the store dies
            setup.proxy.stop()
            with pytest.raises(OSError, match="Input/output error") as failure:
                _drain(stream)
            assert failure.value.errno == errno.EIO
        assert first == setup.files["big.bin"][: 1 * MiB]
        middle = small[len(small) // 2]  # neither read yet nor inside the open's tail read
        uncached = _cat(middle)
        assert uncached.returncode != 0 and b"Input/output error" in uncached.stderr
        # What is already loaded keeps working without the store.
        listing = subprocess.run(["ls", "-l", str(big.parent)], capture_output=True, timeout=30)
        assert listing.returncode == 0
        assert _cat(small[0]).stdout == setup.files[small[0].name]
        setup.moto.start()
        setup.upload()
        setup.proxy.start()
        assert _cat(middle).stdout == setup.files[middle.name]
        digest = hashlib.sha256(big.read_bytes()).hexdigest()
        assert digest == hashlib.sha256(setup.files["big.bin"]).hexdigest()
        assert "Traceback" not in mount.log()


def test_slow_container_does_not_stall_others(setup: Setup, tmp_path: Path) -> None:
    # The slow store stays within the read timeout: slow, not failing.
    with _mount(setup, tmp_path, ["--read-timeout", "30"]) as mount:
        shards = sorted((mount.path / "2024-12-03").iterdir())
        assert len(shards) >= 2
        slow_shard, fast_shard = shards[0], shards[1]
        slow_key = f"2024-12-03/{slow_shard.name}.des"
        setup.proxy.slow_paths[slow_key] = 8.0
        try:
            slow = subprocess.Popen(["ls", str(slow_shard)], stdout=subprocess.PIPE)
            fast_names = os.listdir(fast_shard)
            for name in fast_names[:5]:
                assert (fast_shard / name).read_bytes() == setup.files[name]
            # Every fast read finished while the slow container was still opening.
            assert slow.poll() is None
            assert slow.wait(timeout=SUBPROCESS_TIMEOUT) == 0
        finally:
            setup.proxy.slow_paths.clear()


def test_many_readers_at_once(setup: Setup, tmp_path: Path) -> None:
    with _mount(setup, tmp_path) as mount:
        paths = [p for s in sorted((mount.path / "2024-12-03").iterdir()) for p in s.iterdir()]
        rng = random.Random(3)
        picks = [rng.choice(paths) for _ in range(64)] + [paths[0]] * 16

        def read(path: Path) -> bool:
            done = _cat(path)
            return done.returncode == 0 and done.stdout == setup.files[path.name]

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(read, picks))
        assert all(results)
