"""Installing the peers and profilers at bench time, and reading their versions.

Debian packages come from apt-get; ratarmount (with s3fs for its s3:// URLs) and py-spy go
into a separate venv under bench/out/tools, so desfs's own environment stays untouched. A
peer whose install fails is skipped with the reason, never the whole run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import OUT

APT_TIMEOUT = 900.0
PIP_TIMEOUT = 900.0
VERSION_TIMEOUT = 30.0
TOOLS_VENV = OUT / "tools" / "venv"
PIP_PACKAGES = ("ratarmount", "s3fs", "py-spy")
# binary -> Debian package
APT_BINARIES = {
    "mksquashfs": "squashfs-tools",
    "squashfuse_ll": "squashfuse",
    "squashfuse": "squashfuse",
    "s3fs": "s3fs",
    "rclone": "rclone",
    "fusermount3": "fuse3",
    "find": "findutils",
}
DPKG_NAMES = ("fuse3", "squashfs-tools", "squashfuse", "s3fs", "rclone")


@dataclass(slots=True)
class Tools:
    """What is available; `missing` maps a tool to the reason it is not."""

    missing: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def has(self, tool: str) -> bool:
        return tool not in self.missing

    @property
    def ratarmount(self) -> Path:
        return TOOLS_VENV / "bin" / "ratarmount"

    @property
    def py_spy(self) -> Path:
        return TOOLS_VENV / "bin" / "py-spy"


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def install_apt(log: Callable[[str], None]) -> dict[str, str]:
    """apt-get install what is missing; returns binary -> reason for those still missing."""
    wanted = sorted({pkg for binary, pkg in APT_BINARIES.items() if shutil.which(binary) is None})
    if wanted and os.geteuid() == 0:
        log(f"apt-get install {' '.join(wanted)}")
        done = _run(["apt-get", "install", "-y", "-q", *wanted], APT_TIMEOUT)
        if done.returncode != 0:
            _run(["apt-get", "update", "-q"], APT_TIMEOUT)
            _run(["apt-get", "install", "-y", "-q", *wanted], APT_TIMEOUT)
    return {
        binary: f"Debian package {pkg} could not be installed"
        for binary, pkg in APT_BINARIES.items()
        if shutil.which(binary) is None
    }


def install_venv() -> str | None:
    """The tools venv with ratarmount, s3fs and py-spy; None when ready, else the reason."""
    python = TOOLS_VENV / "bin" / "python"
    if all((TOOLS_VENV / "bin" / tool).exists() for tool in ("ratarmount", "py-spy")):
        return None
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
    try:
        if not python.exists():
            subprocess.run([base, "-m", "venv", str(TOOLS_VENV)], check=True, timeout=120)
        done = _run([str(python), "-m", "pip", "install", "-q", *PIP_PACKAGES], PIP_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not create the tools venv: {exc}"
    if done.returncode != 0:
        return f"pip install {' '.join(PIP_PACKAGES)} failed: {done.stderr.strip()[-300:]}"
    return None


def prepare(log: Callable[[str], None]) -> Tools:
    tools = Tools(missing=install_apt(log))
    if not (TOOLS_VENV / "bin" / "py-spy").exists():
        log(f"pip install {' '.join(PIP_PACKAGES)} into {TOOLS_VENV}")
    reason = install_venv()
    if reason is not None:
        tools.missing["ratarmount"] = reason
        tools.missing["py-spy"] = reason
    tools.versions = versions(tools)
    return tools


def _first_line(command: list[str]) -> str:
    try:
        done = _run(command, VERSION_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions(tools: Tools) -> dict[str, str]:
    found = {
        "desfs": _first_line([sys.executable, "-m", "desfs", "--version"]),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }
    for pkg in DPKG_NAMES:
        found[f"debian:{pkg}"] = _first_line(["dpkg-query", "-W", "-f", "${Version}", pkg])
    if tools.has("ratarmount"):
        python = str(TOOLS_VENV / "bin" / "python")
        for dist in ("ratarmount", "ratarmountcore", "s3fs", "fsspec", "mfusepy", "py-spy"):
            code = f"import importlib.metadata as m; print(m.version({dist!r}))"
            found[f"pypi:{dist}"] = _first_line([python, "-c", code])
    return found
