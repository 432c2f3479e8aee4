"""Crashes found by fuzzing, replayed on a real mount.

tests/unit/test_fuzz_parsers.py::test_stat_values_of_any_entry_fit_the_kernel found them in
the conversion of entries to stat values. On a mount, each one made the kernel's READDIRPLUS
of the whole shard fail with EIO (an OverflowError inside the FUSE reply), so one hostile
entry hid all its neighbours. Each must now fail, at most, alone.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import fixtures
from tests.support.mounting import Mounted, needs_fuse

pytestmark = needs_fuse()

DAY = "2024-12-03"
TIMEOUT = 30.0
GOOD = {"first.txt": b"first\n", "last.txt": b"last\n"}
STAT_MAX = 2**63 - 1


def hostile_container() -> bytes:
    entries = [
        fixtures.AEntry(b"first.txt", GOOD["first.txt"]),
        # An unreadable entry claiming a size st_size cannot hold.
        fixtures.AEntry(b"huge.txt", b"x", data_length=2**64 - 1),
        # Metadata times beyond what st_mtime_ns can hold, and nesting too deep to parse.
        fixtures.AEntry(b"future.txt", b"future\n", meta=b'{"mtime": "9999-12-31T23:59:59"}'),
        fixtures.AEntry(b"past.txt", b"past\n", meta=b'{"created_at": "0001-01-01"}'),
        fixtures.AEntry(b"number.txt", b"number\n", meta=b'{"timestamp": 99999999999}'),
        fixtures.AEntry(b"deep.txt", b"deep\n", meta=b'{"mtime": ' + b"[" * 100_000),
        fixtures.AEntry(b"last.txt", GOOD["last.txt"]),
    ]
    return fixtures.build_deshead1(entries)


def test_hostile_stat_values_fail_only_their_own_entry(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / DAY).mkdir(parents=True)
    (src / DAY / "s.des").write_bytes(hostile_container())
    with Mounted(str(src), tmp_path / "mnt", tmp_path / "daemon.log") as mount:
        shard = mount.path / DAY / "s"
        listing = subprocess.run(
            ["ls", "-l", str(shard)], capture_output=True, timeout=TIMEOUT, check=False
        )
        assert listing.returncode == 0, (listing.stderr, mount.log())
        names = sorted(line.split()[-1] for line in listing.stdout.decode().splitlines()[1:])
        hostile = ["huge.txt", "future.txt", "past.txt", "number.txt", "deep.txt"]
        assert names == sorted([*GOOD, *hostile])
        assert os.stat(shard / "huge.txt").st_size == STAT_MAX
        container_mtime = os.stat(shard).st_mtime_ns  # a shard shows its container's time
        for name in ("future.txt", "past.txt", "number.txt", "deep.txt"):
            # An unusable time falls back to the container's, like one that does not parse.
            assert os.stat(shard / name).st_mtime_ns == container_mtime, name
        for name in ("future.txt", "past.txt", "number.txt"):
            assert (shard / name).read_bytes() == name.removesuffix(".txt").encode() + b"\n"
        for name in ("huge.txt", "deep.txt"):  # unreadable entries: listed, EIO on read
            with pytest.raises(OSError, match="Input/output error") as caught:
                (shard / name).read_bytes()
            assert caught.value.errno == errno.EIO
        for name, data in GOOD.items():
            assert (shard / name).read_bytes() == data
        assert "unexpected error" not in mount.log()
