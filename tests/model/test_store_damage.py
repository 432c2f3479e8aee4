"""Damaged, partly written and hostile variants of the other stores' fixtures: what is
damaged fails alone (EIO on its own reads), and everything else still reads byte-exact."""

from __future__ import annotations

import hashlib
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from desfs.errors import EntryError, FormatError
from desfs.format import datas3t2, s4db
from desfs.format.seekable import parse_seek_table
from desfs.settings.sections import CacheSettings
from tests.model.conftest import Model
from tests.model.test_stores import _model, _walk
from tests.support.stores import blobs, expected, manifest, source_dir, store_cases


def _copy(store: str, name: str, tmp_path: Path) -> tuple[Path, Path]:
    (case,) = [c for c in store_cases(store) if c.name == name]
    source = tmp_path / "src"
    shutil.copytree(source_dir(case), source)
    return case, source


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


async def _reads(model: Model, case: Path, skip: set[str]) -> None:
    for path, (size, digest) in expected(case).items():
        if path in skip:
            continue
        data = await model.cat(path)
        assert len(data) == size and hashlib.sha256(data).hexdigest() == digest, path


async def test_s4db_damaged_record_fails_alone(tmp_path: Path) -> None:
    case, source = _copy("s4db", "basic", tmp_path)
    index = s4db.parse_index((source / "index.idx").read_bytes())
    victim = next(e for e in index.entries if e.key == b"docs/readme.txt")
    _flip(source / victim.file_name, victim.end - 10)  # inside the value: the CRC says so
    model = _model(source)
    with pytest.raises(EntryError, match="CRC32"):
        await model.cat("docs/readme.txt")
    await _reads(model, case, {"docs/readme.txt"})


async def test_s4db_truncated_data_file_fails_only_the_records_cut(tmp_path: Path) -> None:
    case, source = _copy("s4db", "basic", tmp_path)
    index = s4db.parse_index((source / "index.idx").read_bytes())
    last = max(index.entries, key=lambda e: e.offset)
    data_file = source / last.file_name
    data_file.write_bytes(data_file.read_bytes()[: last.offset + 3])
    model = _model(source)
    name = last.key.decode()
    listed = await _walk(model)
    assert listed[name] == 0  # listed, so `ls` shows it; its open says why
    with pytest.raises(EntryError, match="past the end"):
        await model.cat(name)
    await _reads(model, case, {name})


async def test_s4db_data_file_compacted_away(tmp_path: Path) -> None:
    """A data file deleted under a reader's index (compaction): its keys are EIO."""
    case, source = _copy("s4db", "multifile", tmp_path)
    index = s4db.parse_index((source / "index.idx").read_bytes())
    gone = index.data_files()[0]
    (source / gone).unlink()
    lost = {e.key.decode() for e in index.entries if e.file_name == gone}
    model = _model(source)
    for name in lost & set(expected(case)):
        with pytest.raises(EntryError, match="missing"):
            await model.cat(name)
    await _reads(model, case, lost)


async def test_s4db_damaged_index_fails_the_store_with_a_reason(tmp_path: Path) -> None:
    _, source = _copy("s4db", "basic", tmp_path)
    _flip(source / "index.idx", 12)
    with pytest.raises(FormatError, match="CRC"):
        await _model(source).listdir("")


async def test_datas3t2_header_that_lies_fails_its_datapoint(tmp_path: Path) -> None:
    """A TAR header naming another datapoint: listed by its number, EIO to read."""
    case, source = _copy("datas3t2", "two-dataranges", tmp_path)
    (first,) = [d for d in manifest(case)["dataranges"] if d["first"] == 0]
    tar = source / first["tar"]
    records = datas3t2.parse_index((source / first["index"]).read_bytes(), 0, 2, None)
    header = bytearray(tar.read_bytes()[records[1].header_offset :][:512])
    header[19] = ord("7")  # 00000000000000000001.json -> ...7.json
    header[148:156] = b"        "
    header[148:155] = f"{sum(header):06o}\0".encode()
    data = bytearray(tar.read_bytes())
    data[records[1].header_offset : records[1].header_offset + 512] = header
    tar.write_bytes(bytes(data))
    model = _model(source)
    datarange = "demo/00000000000000000000-00000000000000000002"
    names = [name for name, _ in await model.listdir(datarange)]
    assert "00000000000000000001" in names and "00000000000000000001.json" not in names
    with pytest.raises(EntryError, match="belongs to datapoint 7"):
        await model.cat(f"{datarange}/00000000000000000001")
    await _reads(model, case, {f"{datarange}/00000000000000000001.json"})


async def test_datas3t2_incomplete_and_overlapping_dataranges_are_left_out(
    tmp_path: Path,
) -> None:
    case, source = _copy("datas3t2", "two-dataranges", tmp_path)
    ranges = source / "datas3t" / "demo" / "dataranges"
    second = "00000000000000000003-00000000000000000005"
    # An upload not completed (no index yet), and one overlapping the first datarange.
    shutil.copy(ranges / f"{second}.tar", ranges / "00000000000000000006-00000000000000000008.tar")
    for suffix in (".tar", ".index.zst"):
        shutil.copy(
            ranges / f"{second}{suffix}",
            ranges / f"00000000000000000002-00000000000000000004{suffix}",
        )
    model = _model(source)
    assert [n for n, _ in await model.listdir("demo")] == [
        "00000000000000000000-00000000000000000002",
        second,
    ]
    await _reads(model, case, set())


async def test_datas3t2_hostile_dataset_and_key_names_are_never_shown(tmp_path: Path) -> None:
    _, source = _copy("datas3t2", "two-dataranges", tmp_path)
    (source / "datas3t" / "..weird").mkdir()
    (source / "datas3t" / "has space").mkdir()
    (source / "datas3t" / "demo" / "dataranges" / "notes.txt").write_text("not a datarange")
    model = _model(source)
    assert [n for n, _ in await model.listdir("")] == ["demo"]
    assert len(await model.listdir("demo")) == 2


async def test_conduit_damaged_frame_fails_only_the_reads_that_touch_it(tmp_path: Path) -> None:
    case, source = _copy("conduit", "compressed-small-frames", tmp_path)
    name = "data_00000000.dat.zst"
    path = source / name
    table = parse_seek_table(path.read_bytes(), path.stat().st_size)
    frame = table.frames[1]
    _flip(path, frame.offset + frame.length // 2)
    model = _model(source)
    fh = await model.fs.open(await model.ino(name))
    bad = good = 0
    for file, start, end, digest in blobs(case):
        if file != name:
            continue
        touches = start < frame.end and end > frame.start
        if touches:
            with pytest.raises(EntryError):
                await model.fs.read(fh, start, end - start)
            bad += 1
        elif end > start:
            data = await model.fs.read(fh, start, end - start)
            assert hashlib.sha256(data).hexdigest() == digest
            good += 1
    assert bad and good


async def test_conduit_hostile_seek_table_fails_its_file_alone(tmp_path: Path) -> None:
    """A footer claiming 2**32-1 frames: refused from the footer, nothing fetched for it."""
    case, source = _copy("conduit", "compressed", tmp_path)
    path = source / "data_00000000.dat.zst"
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, len(data) - 9, 2**32 - 1)
    path.write_bytes(bytes(data))
    model = _model(source)
    listed = await _walk(model)
    assert set(listed) == set(expected(case))
    with pytest.raises(EntryError, match="seek table"):
        await model.cat("data_00000000.dat.zst")
    assert (
        len(await model.cat("data_00000001.dat.zst")) == expected(case)["data_00000001.dat.zst"][0]
    )


async def test_s4db_index_replaced_shows_the_new_keys_after_the_listing_ttl(
    tmp_path: Path,
) -> None:
    _, source = _copy("s4db", "basic", tmp_path)
    model = _model(source, cache=CacheSettings(listing_ttl=0))
    before = set(await _walk(model))
    (other,) = [c for c in store_cases("s4db") if c.name == "overwrites"]
    shutil.rmtree(source)
    shutil.copytree(source_dir(other), source)
    after = set(await _walk(model))
    assert after == set(expected(other)) != before


async def test_s4db_index_over_the_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, source = _copy("s4db", "basic", tmp_path)
    monkeypatch.setattr("desfs.archive.store_open.MAX_S4DB_INDEX", 64)
    model = _model(source)
    with pytest.raises(FormatError, match="limit"):
        await model.listdir("")
    requests = model.fs._archive.statistics().store.requests
    assert requests.get("list") and not requests.get("get"), requests  # the index: never read


async def test_s4db_index_pointing_two_keys_at_one_record(tmp_path: Path) -> None:
    """A lying index: a second key aimed at the first key's record. The record names its
    own key, so the liar reads EIO and never the other key's value."""
    case, source = _copy("s4db", "basic", tmp_path)
    index = s4db.parse_index((source / "index.idx").read_bytes())
    hello = next(e for e in index.entries if e.key == b"hello")
    body = bytearray((source / "index.idx").read_bytes()[:-4])
    liar = b"liar"
    struct.pack_into(">I", body, 5, len(index.entries) + 1)
    body += struct.pack(">H", len(liar)) + liar
    body += struct.pack(">QQI", hello.file_id, hello.offset, hello.length)
    (source / "index.idx").write_bytes(bytes(body) + struct.pack(">I", zlib.crc32(body)))
    model = _model(source)
    with pytest.raises(EntryError, match="holds key b'hello'"):
        await model.cat("liar")
    await _reads(model, case, set())
