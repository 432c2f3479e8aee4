"""What tools see of the tree: `.` and `..` in listings, and plausible, exact times that
`tar` and `rsync -a` copy (docs/SEMANTICS.md)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from tests.support.builders import build_des2, build_deshead1
from tests.support.mounting import Mounted, needs_fuse

pytestmark = needs_fuse()

DAY = "2024-12-03"


def _midnight_ns(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def test_dots_and_times(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / DAY).mkdir(parents=True)
    container = src / "20241204_A_0000.des"
    container.write_bytes(build_des2([("plain.txt", b"x", None), ("d/in.txt", b"y", None)]))
    os.utime(container, ns=(1_733_300_000_123_456_789, 1_733_300_000_123_456_789))
    meta = {"mtime": "2020-01-02T03:04:05Z"}
    (src / DAY / "s.des").write_bytes(build_deshead1([("m.txt", b"z", meta)]))
    with Mounted(str(src), tmp_path / "mnt", tmp_path / "log") as mount:
        mnt = mount.path
        listed = subprocess.run(["ls", "-a", str(mnt / "2024-12-04" / "A_0000")],
                                capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
        assert listed.stdout.split() == [".", "..", "d", "plain.txt"]
        root = os.stat(mnt).st_mtime_ns
        assert root == _midnight_ns("2024-12-04"), "the root takes its newest day's midnight"
        assert os.stat(mnt / DAY).st_mtime_ns == _midnight_ns(DAY)
        exact = 1_733_300_000_123_456_789
        assert os.stat(mnt / "2024-12-04" / "A_0000").st_mtime_ns == exact
        assert os.stat(mnt / "2024-12-04" / "A_0000" / "plain.txt").st_mtime_ns == exact
        stamp = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
        assert os.stat(mnt / DAY / "s" / "m.txt").st_mtime == stamp
        copy = tmp_path / "copy"
        subprocess.run(["cp", "-a", str(mnt), str(copy)], check=True, timeout=60)
        assert os.stat(copy).st_mtime_ns == root
