"""Lookup, readdir, read, xattrs, forget and statfs of the model, without FUSE."""

from __future__ import annotations

import errno
import json
import stat

import pytest

from desfs.errors import DesfsError, NoAttribute, NotFound
from tests.model.conftest import DAY, FILES, NESTED, ModelFactory


async def test_the_tree_is_days_shards_and_files(model: ModelFactory) -> None:
    m = model()
    assert [name for name, _ in await m.listdir("/")] == [DAY]
    assert [name for name, _ in await m.listdir(DAY)] == ["broken", "flat", "nested"]
    names = [name for name, _ in await m.listdir(f"{DAY}/flat")]
    assert names == list(FILES)
    assert [name for name, _ in await m.listdir(f"{DAY}/nested")] == ["a", "z.txt"]
    assert [name for name, _ in await m.listdir(f"{DAY}/nested/a")] == ["b", "top.txt"]


async def test_attributes_are_the_logical_size_read_only_modes_and_meta_times(
    model: ModelFactory,
) -> None:
    m = model()
    attr = await m.fs.getattr(await m.ino(f"{DAY}/flat/f003.txt"))
    assert attr.size == len(FILES["f003.txt"])
    assert stat.S_IMODE(attr.mode) == 0o444 and stat.S_ISREG(attr.mode)
    assert attr.mtime_ns == (1_700_000_000 + 3) * 1_000_000_000
    shard = await m.fs.getattr(await m.ino(f"{DAY}/flat"))
    assert stat.S_ISDIR(shard.mode) and stat.S_IMODE(shard.mode) == 0o555


async def test_reads_return_exact_bytes_and_stop_at_the_end(model: ModelFactory) -> None:
    m = model()
    for name, data in FILES.items():
        assert await m.cat(f"{DAY}/flat/{name}") == data
    for name, data in NESTED.items():
        assert await m.cat(f"{DAY}/nested/{name}") == data
    fh = await m.fs.open(await m.ino(f"{DAY}/flat/f010.txt"))
    size = len(FILES["f010.txt"])
    assert await m.fs.read(fh, size - 3, 100) == FILES["f010.txt"][-3:]
    assert await m.fs.read(fh, size + 10, 100) == b""


async def test_missing_names_are_enoent_and_cached_as_missing_only_inside_shards(
    model: ModelFactory,
) -> None:
    m = model()
    shard = await m.ino(f"{DAY}/flat")
    with pytest.raises(NotFound):
        await m.fs.lookup(shard, "nope.txt")
    assert m.fs.negative_ttl(shard) > 0
    with pytest.raises(NotFound):
        await m.fs.lookup(1, "1999-01-01")
    assert m.fs.negative_ttl(1) == 0


async def test_no_name_resolves_outside_its_shard(model: ModelFactory) -> None:
    m = model()
    shard = await m.ino(f"{DAY}/nested")
    for hostile in ("..", ".", "../escape", "escape", "bad\x00name", "a/b"):
        with pytest.raises(DesfsError) as caught:
            await m.fs.lookup(shard, hostile)
        assert caught.value.errno == errno.ENOENT
    names = {name for name, _ in await m.listdir(f"{DAY}/nested")}
    assert not names & {"..", "escape", "bad\x00name"}


async def test_a_corrupt_container_fails_its_shard_with_eio_and_nothing_else(
    model: ModelFactory,
) -> None:
    m = model()
    broken = await m.ino(f"{DAY}/broken")
    with pytest.raises(DesfsError) as caught:
        await m.fs.opendir(broken)
    assert caught.value.errno == errno.EIO
    assert await m.cat(f"{DAY}/flat/f000.txt") == FILES["f000.txt"]


async def test_xattrs_come_from_memory_and_unknown_names_give_enodata(
    model: ModelFactory,
) -> None:
    m = model()
    ino = await m.ino(f"{DAY}/flat/f002.txt")
    meta = json.loads(await m.fs.getxattr(ino, "user.des.meta"))
    assert meta["mtime"] == 1_700_000_002
    assert await m.fs.getxattr(ino, "user.des.container") == f"{DAY}/flat.des".encode()
    assert "user.des.offset" in await m.fs.listxattr(ino)
    for absent in ("security.selinux", "user.des.nothing", "trusted.x"):
        with pytest.raises(NoAttribute) as caught:
            await m.fs.getxattr(ino, absent)
        assert caught.value.errno == errno.ENODATA
    shard = await m.ino(f"{DAY}/flat")
    assert await m.fs.getxattr(shard, "user.des.entries") == str(len(FILES)).encode()
    stats = json.loads(await m.fs.getxattr(1, "user.des.stats"))
    assert stats["containers_open"] >= 1 and m.stats_asked


async def test_forget_releases_nodes_and_a_forgotten_inode_is_enoent(model: ModelFactory) -> None:
    m = model()
    ino = await m.ino(f"{DAY}/flat/f001.txt")
    before = m.fs.inode_count()
    await m.fs.lookup(await m.ino(f"{DAY}/flat"), "f001.txt")  # a second kernel lookup
    m.fs.forget(ino, 1)
    assert (await m.fs.getattr(ino)).size == len(FILES["f001.txt"])
    m.fs.forget(ino, 1)
    assert m.fs.inode_count() == before - 1
    with pytest.raises(NotFound):
        await m.fs.getattr(ino)


async def test_inode_numbers_are_stable_and_follow_container_order(model: ModelFactory) -> None:
    first = [attr.ino for _, attr in await model().listdir(f"{DAY}/flat")]
    again = [attr.ino for _, attr in await model().listdir(f"{DAY}/flat")]
    assert first == again
    assert first == sorted(first)
    assert len(set(first)) == len(first)


async def test_past_the_inode_limit_the_oldest_entries_are_named_for_release(
    model: ModelFactory,
) -> None:
    m = model(inode_limit=16)
    await m.listdir(f"{DAY}/flat")  # readdirplus: every entry offered is a lookup
    assert m.fs.over_limit()
    released = m.fs.releases(1000)
    assert released, "nothing named for release while over the limit"
    for item in released:
        m.fs.forget(item.ino, 1)
    assert not m.fs.over_limit()
    assert m.fs.inode_count() <= 16 + 1


async def test_statfs_counts_loaded_containers(model: ModelFactory) -> None:
    m = model()
    await m.listdir(f"{DAY}/flat")
    found = m.fs.statfs()
    assert found.files >= len(FILES)
    assert found.blocks > 0
