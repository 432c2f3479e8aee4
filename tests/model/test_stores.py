"""The other stores (datas3t2, s4db, ConduitFlatFileDB) through the filesystem model: every
fixture case their own writers made, read from a local source against its manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from desfs.archive.sources import open_archive
from desfs.errors import DesfsError, EntryError, FormatError, NotFound
from desfs.fs.attributes import Ownership
from desfs.fs.filesystem import DesFilesystem
from desfs.settings.sections import ArchiveSettings, CacheSettings, LayoutSettings, S3Settings
from tests.model.conftest import Model
from tests.support.stores import blobs, expected, manifest, source_dir, store_cases

GOOD = [
    case
    for store in ("s4db", "datas3t2", "conduit")
    for case in store_cases(store)
    if manifest(case).get("expect") in (None, "ok")
]


def _model(source: Path, layout: str = "auto", cache: CacheSettings | None = None) -> Model:
    settings = ArchiveSettings(layout=LayoutSettings(layout=layout), cache=cache or CacheSettings())
    archive = open_archive(str(source), settings, S3Settings())
    fs = DesFilesystem(archive, Ownership(uid=0, gid=0), 3600.0, dict, 10_000)
    return Model(fs, source)


async def _walk(model: Model, path: str = "") -> dict[str, int]:
    """Every file under `path`: its size as `stat` shows it."""
    found: dict[str, int] = {}
    for name, attr in await model.listdir(path):
        child = f"{path}/{name}" if path else name
        if attr.is_dir:
            found.update(await _walk(model, child))
        else:
            found[child] = attr.size
    return found


@pytest.mark.parametrize("case", GOOD, ids=lambda c: f"{c.parent.name}-{c.name}")
async def test_every_file_reads_byte_exact(case: Path) -> None:
    model = _model(source_dir(case))
    want = expected(case)
    listed = await _walk(model)
    assert listed == {path: size for path, (size, _) in want.items()}
    for path, (size, digest) in want.items():
        data = await model.cat(path)
        assert len(data) == size, path
        if digest is not None:
            assert hashlib.sha256(data).hexdigest() == digest, path


@pytest.mark.parametrize("case", store_cases("conduit"), ids=lambda c: c.name)
async def test_conduit_blobs_read_at_their_data_locations(case: Path) -> None:
    """A pread at a DataLocation returns the BLOB: what a ConduitFlatFileDB user keeps."""
    model = _model(source_dir(case))
    expect_error = manifest(case).get("expect") is not None
    for name, start, end, digest in blobs(case):
        try:
            fh = await model.fs.open(await model.ino(name))
        except EntryError:
            assert expect_error, name  # refused at open: it has no seek table yet
            continue
        try:
            data = await model.fs.read(fh, start, end - start)
        finally:
            model.fs.release(fh)
        assert not expect_error
        assert hashlib.sha256(data).hexdigest() == digest


async def test_s4db_hides_hostile_keys_and_never_leaves_the_root() -> None:
    (case,) = [c for c in store_cases("s4db") if c.name == "odd_keys"]
    model = _model(source_dir(case))
    for hostile in ("..", "../escape", "."):
        with pytest.raises(DesfsError):
            await model.ino(hostile)
    assert "dir" in dict(await model.listdir(""))  # a directory: `dir` the key is hidden
    assert await model.cat("dir/child")


async def test_deleted_and_overwritten_keys_never_show() -> None:
    for case in store_cases("s4db"):
        listed = await _walk(_model(source_dir(case)))
        for gone in manifest(case)["gone"]:
            assert gone not in listed, (case.name, gone)


async def test_a_tar_that_disagrees_with_its_index_fails_alone() -> None:
    """A PAX header shifts every later record: the datarange fails to open (EIO), and the
    dataset's listing, like the rest of the source, still works."""
    (case,) = [c for c in store_cases("datas3t2") if c.name == "pax-long-ext"]
    model = _model(source_dir(case))
    (dataset,) = [name for name, _ in await model.listdir("")]
    (datarange,) = [name for name, _ in await model.listdir(dataset)]
    with pytest.raises(FormatError):
        await model.listdir(f"{dataset}/{datarange}")


async def test_a_mutable_file_being_appended_lists_and_reads_eio() -> None:
    (case,) = [c for c in store_cases("conduit") if c.name == "mid-append"]
    model = _model(source_dir(case))
    names = [name for name, _ in await model.listdir("")]
    assert names == ["data_00000000.dat.zst"]
    with pytest.raises(EntryError, match="writer"):
        await model.cat(names[0])


@pytest.mark.parametrize("store", ["s4db", "datas3t2", "conduit"])
async def test_a_forced_layout_reads_the_same(store: str) -> None:
    case = next(c for c in store_cases(store) if c in GOOD)
    model = _model(source_dir(case), layout=store)
    assert set(await _walk(model)) == set(expected(case))


async def test_datas3t2_source_may_be_the_datas3t_prefix_itself_when_forced() -> None:
    case = next(c for c in store_cases("datas3t2") if c.name == "two-dataranges")
    model = _model(source_dir(case) / "datas3t", layout="datas3t2")
    assert set(await _walk(model)) == set(expected(case))


async def test_by_name_routing_is_des_only() -> None:
    case = next(c for c in store_cases("datas3t2") if c.name == "two-dataranges")
    model = _model(source_dir(case))
    with pytest.raises(NotFound, match="not a DES day"):
        await model.ino("demo/.by-name/00000000000000000000.txt")
