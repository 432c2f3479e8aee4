"""The filesystem model driven directly: no FUSE, no subprocess, a real source on disk.

These tests speak inode numbers and desfs values, as the FUSE adapter does, so the
semantics of lookup, readdir, read, xattrs, forget and the inode limit are checked in
milliseconds; the mount tests keep what only a kernel shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from desfs.archive.sources import open_archive
from desfs.fs.attributes import Attr, Ownership
from desfs.fs.filesystem import DesFilesystem
from desfs.settings.sections import ArchiveSettings, CacheSettings, S3Settings
from tests.support.builders import build_des2, build_deshead1

DAY = "2024-12-03"


@dataclass
class Model:
    fs: DesFilesystem
    root: Path
    stats_asked: list[int] = field(default_factory=list)

    async def ino(self, path: str) -> int:
        ino = 1
        for part in [p for p in path.split("/") if p]:
            ino = (await self.fs.lookup(ino, part)).ino
        return ino

    async def listdir(self, path: str) -> list[tuple[str, Attr]]:
        fh = await self.fs.opendir(await self.ino(path))
        found: list[tuple[str, Attr]] = []

        def offer(name: str, attr: Attr, next_id: int) -> bool:
            found.append((name, attr))
            return True

        start = 0
        while True:
            before = len(found)
            self.fs.readdir(fh, start, offer)
            if len(found) == before:
                break
            start = len(found)
        self.fs.releasedir(fh)
        assert [name for name, _ in found[:2]] == [".", ".."]
        return found[2:]

    async def cat(self, path: str) -> bytes:
        fh = await self.fs.open(await self.ino(path))
        out = b""
        while chunk := await self.fs.read(fh, len(out), 128 * 1024):
            out += chunk
        self.fs.release(fh)
        return out


FILES = {f"f{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(40)}
NESTED = {"a/b/c.txt": b"deep", "a/top.txt": b"top", "z.txt": b"zed"}


def write_source(root: Path) -> None:
    day = root / DAY
    day.mkdir(parents=True)
    entries = [
        (name, data, {"mtime": 1_700_000_000 + i}) for i, (name, data) in enumerate(FILES.items())
    ]
    (day / "flat.des").write_bytes(build_deshead1(entries))
    nested = [(name, data, None) for name, data in NESTED.items()]
    nested += [("../escape", b"x", None), ("bad\x00name", b"x", None)]
    (day / "nested.des").write_bytes(build_des2(nested))
    (day / "broken.des").write_bytes(b"DES2\x02\x00\x00\x00" + b"x" * 40 + b"DESI" + b"\xff" * 8)


ModelFactory = Callable[..., Model]


@pytest.fixture
def model(tmp_path: Path) -> ModelFactory:
    write_source(tmp_path / "src")

    def make(inode_limit: int = 10_000, **cache: object) -> Model:
        settings = ArchiveSettings(cache=CacheSettings(**cache))  # type: ignore[arg-type]
        archive = open_archive(str(tmp_path / "src"), settings, S3Settings())
        holder: list[int] = []

        def stats() -> dict[str, object]:
            holder.append(1)
            return {"containers_open": len(archive.opened())}

        owner = Ownership(uid=1234, gid=5678)
        fs = DesFilesystem(archive, owner, 3600.0, stats, inode_limit)
        return Model(fs, tmp_path / "src", holder)

    return make
