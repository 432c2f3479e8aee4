"""Compressed entries whose frames lie about their size, end or checksum, read for real:
through the mount with `cat` and `dd`, with `desfs cat`, and counted by `desfs verify`.
Large entries take the streaming decoder, small ones the whole one; both must fail every
lie with EIO (exit 5 offline) and never hand out the recorded number of bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from desfs.errors import ExitCode
from tests.support import fixtures
from tests.support.mounting import Mounted, needs_fuse

pytestmark = needs_fuse()

DAY = "2024-12-03"
MiB = 1024 * 1024
LARGE = os.urandom(97) * (3 * MiB // 97)  # over the 1 MiB small-entry limit: streamed
SMALL = os.urandom(97) * 2000


def _zstd(data: bytes, checksum: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_checksum=checksum).compress(data)


def _lz4(data: bytes) -> bytes:
    return bytes(lz4.frame.compress(data, content_checksum=True))


def _lies(data: bytes) -> dict[str, tuple[int, bytes, int]]:
    """name -> (codec id, stored bytes, recorded size)"""
    return {
        "zstd-more": (1, _zstd(data), len(data) - 1000),
        "zstd-junk": (1, _zstd(data) + b"junk" * 10, len(data)),
        "zstd-cut-checksum": (1, _zstd(data)[:-2], len(data)),
        "zstd-second-frame": (1, _zstd(data) + _zstd(b"tail"), len(data)),
        "lz4-more": (2, _lz4(data), len(data) - 1000),
        "lz4-no-end-mark": (2, _lz4(data)[:-8], len(data)),
        "lz4-junk": (2, _lz4(data) + b"junk", len(data)),
    }


BOMB = ("zstd-bomb", (1, _zstd(bytes(256 * MiB)), 2 * MiB))


def _container() -> tuple[bytes, dict[str, bytes], list[str]]:
    entries: list[fixtures.BEntry] = []
    good = {"good-large.bin": LARGE, "good-small.bin": SMALL}
    for name, data in good.items():
        entries.append(fixtures.BEntry(name.encode(), _zstd(data), codec=1, size=len(data)))
    bad: list[str] = []
    for kind, data in (("large", LARGE), ("small", SMALL)):
        for lie, (codec, stored, size) in _lies(data).items():
            name = f"{kind}-{lie}.bin"
            entries.append(fixtures.BEntry(name.encode(), stored, codec=codec, size=size))
            bad.append(name)
    name, (codec, stored, size) = BOMB
    entries.append(fixtures.BEntry(f"{name}.bin".encode(), stored, codec=codec, size=size))
    bad.append(f"{name}.bin")
    return fixtures.build_des2(entries), good, bad


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes], list[str]]:
    src = tmp_path_factory.mktemp("liars") / "src"
    src.mkdir()
    data, good, bad = _container()
    (src / "20241203_A_0000.des").write_bytes(data)
    return src, good, bad


def _desfs(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", *args], capture_output=True, timeout=120, check=False
    )


def test_every_lie_is_eio_through_the_mount(
    source: tuple[Path, dict[str, bytes], list[str]], tmp_path: Path
) -> None:
    src, good, bad = source
    with Mounted(str(src), tmp_path / "mnt", tmp_path / "log") as mount:
        shard = mount.path / DAY / "A_0000"
        for name in bad:
            done = mount.run("cat", str(shard / name), check=False)
            assert done.returncode != 0, name
            assert b"Input/output error" in done.stderr, (name, done.stderr)
            # Never the recorded size handed out as if complete.
            assert len(done.stdout) < (shard / name).stat().st_size, name
            direct = mount.run(
                "dd", f"if={shard / name}", "of=/dev/null", "bs=1M", "iflag=direct", check=False
            )
            assert direct.returncode != 0, name
        for name, data in good.items():
            assert (shard / name).read_bytes() == data
        log = mount.log()
    # The log names the container and the entry of every lie.
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    for name in bad:
        assert any(repr(name.encode()) in w and "A_0000.des" in w for w in warnings), name


def test_every_lie_fails_desfs_cat_and_verify_counts_them_all(
    source: tuple[Path, dict[str, bytes], list[str]],
) -> None:
    src, good, bad = source
    for name in bad:
        done = _desfs("cat", str(src), f"/{DAY}/A_0000/{name}")
        assert done.returncode == ExitCode.FORMAT, (name, done.stderr)
    for name, data in good.items():
        done = _desfs("cat", str(src), f"/{DAY}/A_0000/{name}")
        assert done.returncode == 0 and done.stdout == data
    verify = _desfs("verify", str(src))
    assert verify.returncode == ExitCode.PROBLEMS
    assert f"{len(bad)} problems".encode() in verify.stdout, verify.stdout
