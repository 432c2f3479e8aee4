"""A large, deterministic source directory for memory tests, written fast with desfs's writers.

The layout mixes both upstream formats: even days are Datavision (`YYYY-MM-DD/<hex>.des`,
DESHEAD1), odd days are DES flat (`YYYYMMDD_<HEX>_0000.des`, DES2). Every container holds
`files_per_container` small entries named `dNN/fNNNNNN.txt`, `files_per_dir` to a
directory, whose bytes `payload()` recomputes, so a test checks any file without a manifest.
One optional large entry (`big/stream.bin`, uncompressed, made of 1 MiB blocks that each
start with their block number) sits in a container of its own on the first day.

Containers are written directly (no source files on disk): 200,000 entries take a few
seconds, and a million about half a minute.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO, cast

from desfs.format.des2_writer import Des2Writer
from desfs.format.deshead1_writer import DesHead1Writer

FIRST_DAY = date(2024, 3, 1)
BIG_NAME = "big/stream.bin"
BIG_SHARD = "big"
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class BigSource:
    root: Path
    days: int
    containers_per_day: int
    files_per_container: int
    files_per_dir: int
    big_size: int  # bytes of the large entry; 0 when there is none

    @property
    def file_count(self) -> int:
        small = self.days * self.containers_per_day * self.files_per_container
        return small + (1 if self.big_size else 0)

    @property
    def dir_count(self) -> int:
        """Directories below the mount root: days, shards and the dNN inside them."""
        per_shard = -(-self.files_per_container // self.files_per_dir)
        shards = self.days * self.containers_per_day
        big = 2 if self.big_size else 0  # its shard and the "big" directory inside it
        return self.days + shards * (1 + per_shard) + big

    @property
    def big_path(self) -> str:
        """The large entry, relative to the mount root."""
        return f"{day_name(0)}/{BIG_SHARD}/{BIG_NAME}"

    def total_bytes(self) -> int:
        """The sum of every file's size (what `du --apparent-size` reports)."""
        total = self.big_size
        for day in range(self.days):
            for container in range(self.containers_per_day):
                shard = shard_name(day, container)
                names = (self.entry_name(i) for i in range(self.files_per_container))
                total += sum(len(payload(day, shard, name)) for name in names)
        return total

    def entry_name(self, index: int) -> str:
        return f"d{index // self.files_per_dir:02d}/f{index:06d}.txt"

    def sample(self, count: int) -> list[tuple[str, bytes]]:
        """`count` files spread over every container: (path relative to the mount, bytes)."""
        found: list[tuple[str, bytes]] = []
        total = self.days * self.containers_per_day
        for k in range(count):
            slot = (k * 7919) % total
            day, container = divmod(slot, self.containers_per_day)
            index = (k * 104_729) % self.files_per_container
            shard = shard_name(day, container)
            name = self.entry_name(index)
            found.append((f"{day_name(day)}/{shard}/{name}", payload(day, shard, name)))
        return found


def day_name(day: int) -> str:
    return (FIRST_DAY + timedelta(days=day)).isoformat()


def shard_name(day: int, container: int) -> str:
    """The shard directory name the mount shows for a container."""
    if day % 2 == 0:
        return f"{container:02x}"
    return f"{container:02X}_0000"


def payload(day: int, shard: str, name: str) -> bytes:
    return f"{day_name(day)} {shard} {name} ok\n".encode()


def big_digest(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in _big_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


def build_source(
    root: Path,
    days: int = 2,
    containers_per_day: int = 20,
    files_per_container: int = 5000,
    files_per_dir: int = 100,
    big_size: int = 0,
) -> BigSource:
    """Write the containers under `root` (created) and describe them."""
    source = BigSource(root, days, containers_per_day, files_per_container, files_per_dir, big_size)
    root.mkdir(parents=True, exist_ok=True)
    for day in range(days):
        for container in range(containers_per_day):
            _write_container(source, day, container)
    if big_size:
        _write_big(source)
    return source


def _container_path(root: Path, day: int, container: int) -> Path:
    stamp = FIRST_DAY + timedelta(days=day)
    if day % 2 == 0:
        folder = root / stamp.isoformat()
        folder.mkdir(exist_ok=True)
        return folder / f"{container:02x}.des"
    return root / f"{stamp:%Y%m%d}_{container:02X}_0000.des"


def _write_container(source: BigSource, day: int, container: int) -> None:
    shard = shard_name(day, container)
    with open(_container_path(source.root, day, container), "wb") as out:
        writer = DesHead1Writer(out) if day % 2 == 0 else Des2Writer(out)
        for index in range(source.files_per_container):
            name = source.entry_name(index)
            writer.add(name, payload(day, shard, name))
        writer.close()


def _write_big(source: BigSource) -> None:
    folder = source.root / day_name(0)
    folder.mkdir(exist_ok=True)
    with open(folder / f"{BIG_SHARD}.des", "wb") as out:
        writer = DesHead1Writer(out)
        reader = cast(BinaryIO, _ChunkReader(source.big_size))
        writer.add_stream(BIG_NAME, reader, source.big_size)
        writer.close()


def _big_chunks(size: int) -> Iterator[bytes]:
    filler = bytes(range(256)) * (_BLOCK // 256)
    for number in range(-(-size // _BLOCK)):
        block = struct.pack("<Q", number) + filler[8:]
        yield block[: min(_BLOCK, size - number * _BLOCK)]


class _ChunkReader:
    """A read-only stream of the large entry's bytes, one block per `read`."""

    def __init__(self, size: int) -> None:
        self._chunks = _big_chunks(size)

    def read(self, limit: int = -1) -> bytes:
        chunk = next(self._chunks, b"")
        assert limit < 0 or len(chunk) <= limit
        return chunk
