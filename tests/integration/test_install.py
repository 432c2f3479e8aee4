"""`make install` for the whole system, into a scratch tree: an isolated environment, the
commands and mount(8) helpers linked, units that `systemd-analyze verify` accepts, man
pages and completion generated from the parsers; `make uninstall` removes all of it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _layout(base: Path) -> dict[str, str]:
    names = ("PREFIX", "BINDIR", "SBINDIR", "UNITDIR", "MANDIR", "BASHDIR", "ZSHDIR")
    return {name: str(base / name.lower()) for name in names}


@pytest.mark.timeout(600)
def test_install_then_uninstall(tmp_path: Path) -> None:
    places = _layout(tmp_path)
    env = {**os.environ, **places}
    done = subprocess.run(["make", "-C", str(REPO), "install"], env=env,
                          capture_output=True, text=True, timeout=540, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    desfs = Path(places["BINDIR"]) / "desfs"
    assert subprocess.run([desfs, "--version"], capture_output=True, text=True,
                          check=True).stdout.startswith("desfs ")  # fmt: skip
    helper = Path(places["SBINDIR"]) / "mount.desfs"
    shown = subprocess.run([helper, "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "usage: mount.desfs SOURCE MOUNTPOINT" in shown.stdout
    assert (Path(places["SBINDIR"]) / "mount.fuse.desfs").resolve() == helper.resolve()
    assert (Path(places["MANDIR"]) / "man1/desfs.1").read_text().startswith(".TH DESFS")
    assert "mount.desfs" in (Path(places["MANDIR"]) / "man8/mount.desfs.8").read_text()
    assert "desfs" in (Path(places["BASHDIR"]) / "desfs").read_text()
    assert "#compdef desfs" in (Path(places["ZSHDIR"]) / "_desfs").read_text()
    unit = Path(places["UNITDIR"]) / "desfs@.service"
    assert f"ExecStart={desfs} mount" in unit.read_text()
    if shutil.which("systemd-analyze"):
        (unit.parent / "desfs@archive.service").symlink_to(unit)
        verify = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(unit.parent / "desfs@archive.service")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stderr
        (unit.parent / "desfs@archive.service").unlink()
    gone = subprocess.run(["make", "-C", str(REPO), "uninstall"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert gone.returncode == 0, gone.stderr
    left = [p for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink()]
    assert left == [], left
