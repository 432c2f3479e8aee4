"""Large zstd and lz4 entries through a real mount: scattered preads return exact bytes and
pull each stored byte through about once (the store's byte counter tells)."""

from __future__ import annotations

import os
import random
from datetime import date
from pathlib import Path

import pytest

from desfs.format.model import Codec, Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.mounting import Mounted, needs_fuse, root_stats

pytestmark = needs_fuse()

SIZE = 24 * 1024 * 1024


def _text(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(500)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


@pytest.mark.parametrize("codec", [Codec.ZSTD, Codec.LZ4])
def test_scattered_preads_in_a_large_compressed_entry(codec: Codec, tmp_path: Path) -> None:
    data = _text(SIZE, 9)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.log").write_bytes(data)
    options = PackOptions(
        Format.DES2, date(2024, 12, 3), codec=codec, shard_bits=4, big_file_threshold=2 * SIZE
    )
    report = pack_directory(src, tmp_path / "bucket", options)
    container_size = report.containers[0].size
    assert container_size < SIZE // 2, "the payload should compress well"
    with Mounted(str(tmp_path / "bucket"), tmp_path / "mnt", tmp_path / "log") as mount:
        path = next((mount.path / "2024-12-03").iterdir()) / "big.log"
        rng = random.Random(4)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            for _ in range(200):
                start = rng.randrange(0, SIZE - 4096) // 4096 * 4096
                assert os.pread(fd, 4096, start) == data[start : start + 4096]
        finally:
            os.close(fd)
        store = root_stats(mount.path)["store"]
        assert isinstance(store, dict)
        # Every stored byte pulled through about once, however the reads jumped around.
        assert store["bytes"] <= container_size * 1.25, (store, container_size)
