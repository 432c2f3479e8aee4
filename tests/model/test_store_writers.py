"""Our own writers of the other stores (tests/support/store_writers.py) read back through
the model, and agree with the codecs on what their own fixtures say: the bigger sources
of the budget tests and the benchmark are real bytes of each format."""

from __future__ import annotations

import random
from pathlib import Path

from desfs.format import datas3t2, s4db, seekable
from tests.model.test_stores import _model, _walk
from tests.support.store_writers import write_conduit, write_datarange, write_s4db


def _payloads(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    text = b"the quick brown fox jumps over the lazy dog " * 64
    return [
        rng.randbytes(rng.randint(0, 3000)) if i % 3 else text[: rng.randint(0, 2000)]
        for i in range(count)
    ]


async def test_datas3t2_writer(tmp_path: Path) -> None:
    shown = write_datarange(tmp_path, "ds", 10, [("bin", p) for p in _payloads(40, 1)])
    shown |= write_datarange(tmp_path, "ds", 50, [("txt", b"x" * 513), ("", b"")])
    tar = next((tmp_path / "datas3t/ds/dataranges").glob("*-00000000000000000049.tar"))
    index = tar.with_name(tar.name.replace(".tar", ".index.zst")).read_bytes()
    records = datas3t2.parse_index(index, 10, 49, tar.stat().st_size)
    assert datas3t2.tar_size_for(records) == tar.stat().st_size
    model = _model(tmp_path)
    assert await _walk(model) == {path: len(data) for path, data in shown.items()}
    for path, data in shown.items():
        assert await model.cat(path) == data


async def test_s4db_writer(tmp_path: Path) -> None:
    items = {f"dir{i % 4}/key-{i}": p for i, p in enumerate(_payloads(60, 2))}
    write_s4db(tmp_path, items, per_file=25)
    index = s4db.parse_index((tmp_path / "index.idx").read_bytes())
    assert len(index.data_files()) == 3
    model = _model(tmp_path)
    assert await _walk(model) == {k: len(v) for k, v in items.items()}
    for key, value in items.items():
        assert await model.cat(key) == value


async def test_conduit_writer(tmp_path: Path) -> None:
    blobs = _payloads(200, 3)
    where = write_conduit(tmp_path, 0, blobs, frame_bytes=8192)
    path = tmp_path / "data_00000000.dat.zst"
    table = seekable.parse_seek_table(path.read_bytes(), path.stat().st_size)
    assert len(table.frames) > 10
    model = _model(tmp_path)
    assert await model.cat(path.name) == b"".join(blobs)
    fh = await model.fs.open(await model.ino(path.name))
    for blob, (start, end) in zip(blobs, where, strict=True):
        assert await model.fs.read(fh, start, end - start) == blob
