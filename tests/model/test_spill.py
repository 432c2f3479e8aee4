"""An index larger than the whole index budget is served from a mapped file, correctly,
and the budget is not blown: what the index cache keeps is the per-directory part only."""

from __future__ import annotations

import io
import os
from pathlib import Path

from desfs.archive.sources import open_archive
from desfs.format.des2_writer import Des2Writer
from desfs.fs.attributes import Ownership
from desfs.fs.filesystem import DesFilesystem
from desfs.settings.sections import ArchiveSettings, CacheSettings, S3Settings
from tests.model.conftest import Model

MiB = 1024 * 1024
COUNT = 60_000


def _payload(i: int) -> bytes:
    return f"entry {i}\n".encode() * (1 + i % 5)


def _source(root: Path) -> None:
    out = io.BytesIO()
    writer = Des2Writer(out)
    for i in range(COUNT):
        name = f"d{i // 1000:02d}/f{i:06d}.txt" if i % 3 else f"top{i:06d}.txt"
        writer.add(name, _payload(i), {"i": i} if i % 7 == 0 else None)
    writer.close()
    (root / "20241203_A_0000.des").write_bytes(out.getvalue())


async def test_an_index_over_the_budget_is_mapped_and_served(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    _source(tmp_path / "src")
    cache = CacheSettings(index_cache_bytes=1 * MiB, cache_dir=tmp_path / "cache")
    archive = open_archive(str(tmp_path / "src"), ArchiveSettings(cache=cache), S3Settings())
    fs = DesFilesystem(archive, Ownership(0, 0), 60.0, dict, 100_000)
    m = Model(fs, tmp_path / "src")
    top = await m.listdir("2024-12-03/A_0000")
    assert len(top) == COUNT // 3 + 60  # the top-level files, then 60 directories
    for i in (0, 3, 30_000, COUNT - 3, 1, 2, 59_999):
        name = f"d{i // 1000:02d}/f{i:06d}.txt" if i % 3 else f"top{i:06d}.txt"
        assert await m.cat(f"2024-12-03/A_0000/{name}") == _payload(i)
    inner = await m.listdir("2024-12-03/A_0000/d42")
    assert [n for n, _ in inner][:2] == ["f042001.txt", "f042002.txt"]
    (container,) = archive.opened()
    assert container.spilled is not None
    assert container.memory_estimate() < 1 * MiB
    meta = await fs.getxattr(await m.ino("2024-12-03/A_0000/top000021.txt"), "user.des.meta")
    assert meta == b'{"i":21}' or b'"i": 21' in meta
    # The mapped file is unlinked at once: nothing is left in the spill directory.
    assert os.listdir(tmp_path / "cache" / "spill") == []
