"""The entry reader on real container bytes: coalesced runs, joined fetches, exact bytes."""

from __future__ import annotations

import io
import random
from pathlib import Path

import trio
import trio.testing

from desfs.archive.engine import Archive
from desfs.archive.readahead import Stream
from desfs.format.deshead1_writer import DesHead1Writer
from desfs.settings.sections import ArchiveSettings, CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStorage
from desfs.storage.local import LocalStorage

CAP = 64 * 1024


class GatedStorage(AsyncStorage):
    """Range reads wait for `gate` when it is set: lets a test hold a fetch in flight."""

    def __init__(self, root: Path) -> None:
        super().__init__(LocalStorage(root), 4)
        self.gate: trio.Event | None = None
        self.ranges: list[tuple[int, int]] = []

    async def read_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        self.ranges.append((start, end))
        if self.gate is not None:
            await self.gate.wait()
        return await super().read_range(key, start, end, etag)


def _source(root: Path, count: int) -> dict[str, bytes]:
    rng = random.Random(4)
    files = {f"f{i:04d}": rng.randbytes(rng.randint(500, 4000)) for i in range(count)}
    out = io.BytesIO()
    writer = DesHead1Writer(out)
    for name, data in files.items():
        writer.add(name, data)
    writer.close()
    (root / "2024-12-03").mkdir(parents=True)
    (root / "2024-12-03" / "0.des").write_bytes(out.getvalue())
    return files


def _archive(storage: AsyncStorage) -> Archive:
    cache = CacheSettings(tail_window=4096, prefetch_cap=CAP)
    return Archive(storage, ArchiveSettings(cache=cache, layout=LayoutSettings()))


async def test_reading_in_order_costs_one_get_per_cap(tmp_path: Path) -> None:
    files = _source(tmp_path, 300)
    storage = GatedStorage(tmp_path)
    archive = _archive(storage)
    container = await archive.open(await archive.shard("2024-12-03", "0"))
    storage.ranges.clear()
    for entry in container.index.entries:
        data = await archive.read(container, entry, 0, entry.size, Stream())
        assert data == files[entry.name.decode()]
    total = sum(len(v) for v in files.values())
    assert len(storage.ranges) <= 2 + total // CAP
    assert all(end - start <= CAP for start, end in storage.ranges)


async def test_a_neighbour_read_joins_the_run_in_flight(tmp_path: Path) -> None:
    files = _source(tmp_path, 40)
    storage = GatedStorage(tmp_path)
    archive = _archive(storage)
    container = await archive.open(await archive.shard("2024-12-03", "0"))
    first, second, third = container.index.entries[:3]
    await archive.read(container, first, 0, first.size, Stream())
    storage.ranges.clear()
    storage.gate = trio.Event()
    results: dict[str, bytes] = {}

    async def read(entry_index: int) -> None:
        entry = container.index.entries[entry_index]
        results[entry.name.decode()] = await archive.read(container, entry, 0, entry.size, Stream())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, 1)  # in container order: fetches a run from `second` on
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(read, 2)  # inside that run: must wait for it, not fetch again
        await trio.testing.wait_all_tasks_blocked()
        storage.gate.set()
    assert len(storage.ranges) == 1
    assert storage.ranges[0][0] == second.offset
    assert results[second.name.decode()] == files[second.name.decode()]
    assert results[third.name.decode()] == files[third.name.decode()]
