"""The two benchmark modes: how much data, how many repetitions, which peers, which caps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT = BENCH_DIR / "out"
SEED = 20241203
DAYS = ("2024-12-03", "2024-12-04")
SHARDS_PER_DAY = 5
BIG_FILES = 4
BUCKET = "desfs-bench"
# desfs's own defaults (desfs/config.py), used by the memory and request targets.
DESFS_CACHE_BYTES = 256 * MiB
DESFS_INDEX_BYTES = 128 * MiB
DESFS_PREFETCH_CAP = 8 * MiB


@dataclass(frozen=True, slots=True)
class BenchConfig:
    mode: str
    small_files: int  # over all days and shards
    big_size: int  # each of the BIG_FILES files
    reps: int
    latencies_ms: tuple[int, ...]
    w4_files: int  # W4: random small files across the tree
    w6_reads: int  # W6: random 4 KiB preads in one big file
    run_timeout: float  # one workload run; a run past it is recorded as a timeout
    slow_run: float  # a cold run longer than this is not repeated
    condition_budget: float  # seconds per peer and latency; past it, later reps are skipped
    desfs_local: tuple[str, ...]  # packings mounted by desfs from the local directory
    desfs_s3: tuple[str, ...]  # packings mounted by desfs from S3
    primary: str = "des2"  # the desfs packing the targets are judged on

    @property
    def out(self) -> Path:
        return OUT

    @property
    def data(self) -> Path:
        return OUT / f"data-{self.mode}"


QUICK = BenchConfig(
    mode="quick",
    small_files=2_000,
    big_size=16 * MiB,
    reps=1,
    latencies_ms=(20,),
    w4_files=100,
    w6_reads=400,
    run_timeout=10.0,
    slow_run=5.0,
    condition_budget=600.0,
    desfs_local=("des2",),
    desfs_s3=("des2",),
)

FULL = BenchConfig(
    mode="full",
    small_files=10_000,
    big_size=64 * MiB,
    reps=3,
    latencies_ms=(0, 20),
    w4_files=500,
    w6_reads=2_000,
    run_timeout=30.0,
    slow_run=10.0,
    condition_budget=100.0,
    desfs_local=("des2", "dh1", "des2-zstd"),
    desfs_s3=("des2", "dh1"),
)

MODES = {"quick": QUICK, "full": FULL}
