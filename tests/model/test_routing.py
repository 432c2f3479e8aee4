"""A file found by its name and day through the writers' routing, on the upstream
fixtures: the same entry a listing finds, no LIST of the day, and warm lookups free."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from desfs.archive.engine import Archive
from desfs.archive.sources import open_archive
from desfs.errors import DesfsError
from desfs.settings.sections import ArchiveSettings, RoutingSettings, S3Settings
from tests.support.fixtures import UPSTREAM, load_manifest


def _archive(case: str, routing: RoutingSettings) -> tuple[Archive, dict[str, Any]]:
    root = UPSTREAM / case
    manifest = load_manifest(root)
    settings = ArchiveSettings(routing=routing)
    return open_archive(str(root / "bucket"), settings, S3Settings()), manifest


@pytest.mark.parametrize("case", ["des/des_codecs", "des/des_packer_flat"])
async def test_every_des_name_is_found_by_routing(case: str) -> None:
    manifest = load_manifest(UPSTREAM / case)
    archive, _ = _archive(case, RoutingSettings(des_n_bits=manifest["n_bits"]))
    await archive.days()
    lists = archive.statistics().store.requests["list"]
    for file in manifest["files"]:
        if not file["effective"] or not file.get("path"):
            continue
        day, shard = file["path"].split("/")[1:3]
        found = await archive.locate(day, file["name"])
        assert found.container.ref.name.shard == shard
        assert found.entry.position == file["index_position"]
        data = b"".join([chunk async for chunk in archive.chunks(found.container, found.entry)])
        assert len(data) == file["size"]
    assert archive.statistics().store.requests["list"] == lists, "routing never lists a day"
    before = archive.statistics().store.total_requests
    for file in manifest["files"][:5]:
        if file.get("path"):
            await archive.locate(file["path"].split("/")[1], file["name"])
    assert archive.statistics().store.total_requests == before, "warm lookups are free"


async def test_datavision_names_are_found_with_shard_bits() -> None:
    archive, manifest = _archive(
        "datavision/dv_daily_store", RoutingSettings(datavision_shard_bits=4)
    )
    await archive.days()
    for file in manifest["files"]:
        if file.get("path") and file["effective"]:
            day = file["path"].split("/")[1]
            found = await archive.locate(day, file["name"])
            assert found.entry.size == file["size"]


async def test_unknown_names_and_unrouted_sources_are_enoent() -> None:
    manifest = load_manifest(UPSTREAM / "des/des_codecs")
    archive, _ = _archive("des/des_codecs", RoutingSettings(des_n_bits=manifest["n_bits"]))
    day = manifest["files"][0]["path"].split("/")[1]
    with pytest.raises(DesfsError) as caught:
        await archive.locate(day, "no-such-uid")
    assert caught.value.errno == errno.ENOENT
    plain, _ = _archive("des/des_codecs", RoutingSettings())
    with pytest.raises(DesfsError, match=r"routing\.des_n_bits"):
        await plain.locate(day, manifest["files"][0]["name"])


async def test_n_bits_is_learnt_from_a_day_that_holds_every_shard(tmp_path: Any) -> None:
    from desfs.archive.routes import Routes
    from desfs.namespace.routing import des_shard_hex

    routes = Routes(RoutingSettings(), 60.0)
    routes.learn([f"{des_shard_hex(i, 5)}_0000" for i in range(20)])  # a sparse day
    assert routes.des_n_bits is None
    routes.learn([f"{des_shard_hex(i, 6)}_0000" for i in range(64)])
    assert routes.des_n_bits == 6


async def test_the_mount_finds_names_in_a_hidden_by_name_directory() -> None:
    from desfs.fs.attributes import Ownership
    from desfs.fs.filesystem import DesFilesystem
    from tests.model.conftest import Model

    manifest = load_manifest(UPSTREAM / "des/des_packer_flat")
    archive, _ = _archive("des/des_packer_flat", RoutingSettings(des_n_bits=manifest["n_bits"]))
    fs = DesFilesystem(archive, Ownership(0, 0), 60.0, dict, 10_000)
    m = Model(fs, UPSTREAM)
    file = next(f for f in manifest["files"] if f.get("path") and f["effective"])
    day, shard = file["path"].split("/")[1:3]
    assert ".by-name" not in [name for name, _ in await m.listdir(day)]
    by_name = await m.ino(f"{day}/.by-name/{file['name']}")
    by_path = await m.ino(f"{day}/{shard}/{file['name']}")
    assert by_name == by_path, "the same file, the same inode"
    assert len(await m.cat(f"{day}/.by-name/{file['name']}")) == file["size"]
    assert await m.listdir(f"{day}/.by-name") == []
    for outside in ("..", "../..", "x/../../etc", ""):
        with pytest.raises(DesfsError) as caught:
            await fs.lookup(await m.ino(f"{day}/.by-name"), outside)
        assert caught.value.errno == errno.ENOENT
