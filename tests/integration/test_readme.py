"""Every command the README and docs/OPERATIONS.md show in a `sh` block runs as written
against the bundled sample and succeeds. (`console` blocks are system administration,
`make install` and systemctl, tested elsewhere: tests/integration/test_install.py and
test_fstab_systemd.py.) Paths the docs use for a mountpoint or an output directory are
moved into a scratch directory, and the metrics port to a free one."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mounting import needs_fuse

pytestmark = needs_fuse()

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "docs" / "OPERATIONS.md"]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for doc in DOCS:
        for number, match in enumerate(BLOCK.finditer(doc.read_text()), start=1):
            found.append((doc.name, number, match.group(1)))
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_docs_have_runnable_blocks() -> None:
    assert {doc for doc, _, _ in _blocks()} == {"README.md", "OPERATIONS.md"}


@pytest.mark.parametrize(("doc", "number", "script"), _blocks(), ids=lambda v: str(v)[:20])
def test_every_documented_command_runs(doc: str, number: int, script: str, tmp_path: Path) -> None:
    mnt, packed = tmp_path / "mnt", tmp_path / "packed"
    mnt.mkdir()
    text = script.replace("/mnt/archive", str(mnt)).replace("/tmp/packed", str(packed))
    text = text.replace("9464", str(_free_port())).replace("8080", str(_free_port()))
    text = text.replace("serve.log", str(tmp_path / "serve.log"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", text],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
    assert done.returncode == 0, f"{doc} block {number} failed:\n{text}\n{done.stderr}"
