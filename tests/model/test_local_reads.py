"""Large files of a source on this host's disk are read straight through (the page cache
does what the block cache would); the same files over a store without one go through the
block cache. Both return the same bytes."""

from __future__ import annotations

import random
from pathlib import Path

from desfs.archive.readahead import Stream
from desfs.archive.sources import open_archive
from desfs.settings.sections import ArchiveSettings, S3Settings
from desfs.storage.aio import AsyncStorage
from desfs.storage.local import LocalStorage
from tests.support.builders import build_des2

MiB = 1024 * 1024


class NotPageCached(LocalStorage):
    """The same disk, described as a store whose reads are not in this host's page cache."""

    @property
    def page_cached(self) -> bool:
        return False


async def _read_all(root: Path, storage: AsyncStorage | None) -> tuple[bytes, int, int]:
    archive = open_archive(str(root), ArchiveSettings(), S3Settings())
    if storage is not None:
        archive = type(archive)(storage, ArchiveSettings())
    (day,) = await archive.days()
    ((_, ref),) = await archive.shards(day)
    container = await archive.open(ref)
    entry = container.tree.lookup("", "big.bin").entry  # type: ignore[union-attr]
    before = archive.statistics().store.requests.get("get_range", 0)
    stream, out = Stream(), b""
    while chunk := await archive.read(container, entry, len(out), 128 * 1024, stream):
        out += chunk
    stats = archive.statistics()
    return out, stats.caches["blocks"].entries, stats.store.requests.get("get_range", 0) - before


async def test_local_large_reads_skip_the_block_cache(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(3 * MiB + 5)
    day = tmp_path / "2024-12-03"
    day.mkdir()
    (day / "a.des").write_bytes(build_des2([("big.bin", data, None)]))
    direct, direct_blocks, direct_gets = await _read_all(tmp_path, None)
    assert direct == data
    assert direct_blocks == 0
    reads = -(-len(data) // (128 * 1024))
    assert direct_gets == reads  # one pread per read
    other = AsyncStorage(NotPageCached(tmp_path), 4)
    cached, cached_blocks, cached_gets = await _read_all(tmp_path, other)
    assert cached == data
    assert cached_blocks > 0 and cached_gets < direct_gets


async def test_local_random_reads_keep_the_block_cache(tmp_path: Path) -> None:
    """4 KiB preads far apart would cost a thread hop each straight through: they go
    through the block cache, which soon holds the whole file."""
    data = random.Random(2).randbytes(8 * MiB)
    day = tmp_path / "2024-12-03"
    day.mkdir()
    (day / "a.des").write_bytes(build_des2([("big.bin", data, None)]))
    archive = open_archive(str(tmp_path), ArchiveSettings(), S3Settings())
    (day_name,) = await archive.days()
    ((_, ref),) = await archive.shards(day_name)
    container = await archive.open(ref)
    entry = container.tree.lookup("", "big.bin").entry  # type: ignore[union-attr]
    stream = Stream()
    offsets = [7 * MiB, 2 * MiB + 4096, 5 * MiB, 3 * MiB + 512, 6 * MiB + 100, 4 * MiB]
    gets = []
    for _ in range(3):
        for offset in offsets:
            got = await archive.read(container, entry, offset, 4096, stream)
            assert got == data[offset : offset + 4096]
        gets.append(archive.statistics().store.requests["get_range"])
    assert archive.statistics().caches["blocks"].entries > 0
    assert gets[0] <= 3 + len(offsets)  # the open, a block per miss, then the file whole
    assert gets[2] == gets[0]  # never a pread per read once the blocks are held
