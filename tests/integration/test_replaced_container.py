"""A container replaced in the bucket under a live mount: never mixed bytes; open files of
the old object fail with ESTALE, and the shard shows the new object after a reload."""

from __future__ import annotations

import errno
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from desfs.format.model import Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory
from tests.support.moto_server import MotoServer
from tests.support.mounting import Mounted, needs_fuse

pytestmark = [needs_fuse(), pytest.mark.s3]


def _container(root: Path, names: list[str], seed: int) -> tuple[bytes, dict[str, bytes]]:
    rng = random.Random(seed)
    src = root / f"src-{seed}"
    src.mkdir()
    files = {name: rng.randbytes(100_000) for name in names}  # well past the tail window
    for name, data in files.items():
        (src / name).write_bytes(data)
    out = root / f"out-{seed}"
    # The test uploads whichever container came first under one key: its files are a
    # subset of `files`, which is all the assertions rely on.
    report = pack_directory(src, out, PackOptions(Format.DESHEAD1, date(2024, 12, 6), shard_bits=1))
    key = report.containers[0].key
    return (out / key).read_bytes(), files


def test_replaced_container_is_reloaded_never_mixed(
    tmp_path: Path, moto_server: MotoServer, s3_client: Any
) -> None:
    old, old_files = _container(tmp_path, ["a.bin", "b.bin", "c.bin", "d.bin"], 1)
    new, new_files = _container(tmp_path, ["x.bin", "y.bin"], 2)
    s3_client.create_bucket(Bucket="replaced")
    s3_client.put_object(Bucket="replaced", Key="2024-12-06/0.des", Body=old)
    env = moto_server.env()
    with Mounted("s3://replaced", tmp_path / "mnt", tmp_path / "log", [], env) as mount:
        shard = mount.path / "2024-12-06" / "0"
        names = sorted(p.name for p in shard.iterdir())
        assert names and set(names) <= set(old_files)
        assert (shard / names[0]).read_bytes() == old_files[names[0]]
        s3_client.put_object(Bucket="replaced", Key="2024-12-06/0.des", Body=new)
        with pytest.raises(OSError, match="Stale file handle") as stale:
            (shard / names[-1]).read_bytes()
        assert stale.value.errno == errno.ESTALE
        fresh = sorted(p.name for p in shard.iterdir())
        assert fresh and set(fresh) <= set(new_files)
        for name in fresh:
            assert (shard / name).read_bytes() == new_files[name]
        assert "changed since it was opened" in mount.log()
