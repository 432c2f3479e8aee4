"""A few seconds of each atheris harness in fuzz/, so they keep working between long runs.

The long local runs are described in docs/RELIABILITY.md ("Fuzzing"). Here every harness
starts from the seed corpus, fuzzes for a fixed number of seconds (all three at once), and
must end without a crash, a hang of one input (-timeout) or a memory blow-up (-rss_limit_mb).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install atheris); the fuzz/ harnesses need it",
)

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
HARNESSES = ("container", "codecs", "namespace")
SECONDS = 3
LIBFUZZER_FLAGS = [f"-max_total_time={SECONDS}", "-timeout=10", "-rss_limit_mb=1024", "-seed=1"]


def start(name: str, corpus: Path, cwd: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(FUZZ / f"fuzz_{name}.py"), str(corpus), *LIBFUZZER_FLAGS]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)


def test_every_harness_runs_clean_from_the_seeds(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    seeded = subprocess.run(
        [sys.executable, str(FUZZ / "seeds.py"), str(corpus)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    runs = {name: start(name, corpus / name, tmp_path) for name in HARNESSES}
    outputs = {name: proc.communicate(timeout=120)[0].decode("utf-8", "replace")
               for name, proc in runs.items()}  # fmt: skip
    for name, proc in runs.items():
        assert proc.returncode == 0, f"fuzz_{name}.py:\n{outputs[name][-4000:]}"
        assert "INITED" in outputs[name] and "Done" in outputs[name], outputs[name][-2000:]
        assert any(corpus.joinpath(name).iterdir())
