"""W1..W7: what each workload reads, as a spec for `bench.worker`, and how W1 is timed.

W1 is the mount itself (timed here, not in the worker): from starting the peer's command
to the first `ls` of the root answering. The others run in a worker process against a
mount that is already up. Every workload checks sha256 for a sample of what it read.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import DAYS, SEED, BenchConfig
from bench.dataset import BenchFile, Dataset
from bench.peers import Peer
from bench.worker import PREAD_SIZE

SAMPLE_EVERY = 10  # small-file workloads check every 10th file
PREAD_SAMPLE_EVERY = 20
W3_SHARD = (DAYS[0], 0)
W7_SHARDS = tuple((DAYS[0], s) for s in (1, 2, 3, 4))

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
TITLES = {
    "W1": "mount to first ls of the root",
    "W2": "find over the whole tree",
    "W3": "read every small file of one shard in name order",
    "W4": "read random small files across the tree",
    "W5": "sequential read of a big file",
    "W6": "random 4 KiB preads in a big file",
    "W7": "four parallel readers on different shards",
}


@dataclass(frozen=True, slots=True)
class Plan:
    """The choices every peer shares: which files, which offsets, which checks."""

    w3: tuple[BenchFile, ...]
    w4: tuple[BenchFile, ...]
    w5: BenchFile
    w6: BenchFile
    w6_offsets: tuple[int, ...]
    w6_checks: dict[str, str]  # str(index) -> sha256 of the 4 KiB at that offset
    w7: tuple[tuple[BenchFile, ...], ...]
    sample: tuple[BenchFile, ...]  # W1/W2 spot checks


def make_plan(config: BenchConfig, dataset: Dataset) -> Plan:
    rng = random.Random(SEED + 4)
    w4 = tuple(rng.sample(dataset.small, config.w4_files))
    big = sorted(dataset.big, key=lambda f: f.name)
    w6 = big[1 % len(big)]
    rng6 = random.Random(SEED + 6)
    offsets = tuple(
        rng6.randrange(w6.size // PREAD_SIZE) * PREAD_SIZE for _ in range(config.w6_reads)
    )
    checks: dict[str, str] = {}
    fd = os.open(dataset.tree / w6.path, os.O_RDONLY)
    try:
        for index in range(0, len(offsets), PREAD_SAMPLE_EVERY):
            block = os.pread(fd, PREAD_SIZE, offsets[index])
            checks[str(index)] = hashlib.sha256(block).hexdigest()
    finally:
        os.close(fd)
    return Plan(
        w3=dataset.shard_files(*W3_SHARD),
        w4=w4,
        w5=big[0],
        w6=w6,
        w6_offsets=offsets,
        w6_checks=checks,
        w7=tuple(dataset.shard_files(d, s) for d, s in W7_SHARDS),
        sample=tuple(rng.sample(dataset.small, 3)),
    )


def _group(peer: Peer, root: Path, files: tuple[BenchFile, ...]) -> list[list[str]]:
    return [
        [str(root / peer.path(f)), f.sha256 if i % SAMPLE_EVERY == 0 else ""]
        for i, f in enumerate(files)
    ]


def spec(workload: str, plan: Plan, dataset: Dataset, peer: Peer, root: Path) -> dict[str, Any]:
    """The worker's input for W2..W7 on `peer` mounted at `root`."""
    if workload == "W2":
        return {
            "kind": "find",
            "root": str(root),
            "expected": [peer.path(f) for f in dataset.files],
            "samples": [[str(root / peer.path(f)), f.sha256] for f in plan.sample],
        }
    if workload in ("W3", "W4"):
        files = plan.w3 if workload == "W3" else plan.w4
        return {"kind": "read", "groups": [_group(peer, root, files)]}
    if workload == "W7":
        return {"kind": "read", "groups": [_group(peer, root, g) for g in plan.w7]}
    if workload == "W5":
        path = str(root / peer.path(plan.w5))
        return {"kind": "sequential", "path": path, "size": plan.w5.size, "sha256": plan.w5.sha256}
    if workload == "W6":
        return {
            "kind": "pread",
            "path": str(root / peer.path(plan.w6)),
            "offsets": list(plan.w6_offsets),
            "checks": plan.w6_checks,
        }
    raise ValueError(f"no worker spec for {workload}")


def delivered(workload: str, plan: Plan) -> int:
    """Bytes a workload hands to its reader (W2 reads no file contents)."""
    if workload == "W3":
        return sum(f.size for f in plan.w3)
    if workload == "W4":
        return sum(f.size for f in plan.w4)
    if workload == "W5":
        return plan.w5.size
    if workload == "W6":
        return PREAD_SIZE * len(plan.w6_offsets)
    if workload == "W7":
        return sum(f.size for group in plan.w7 for f in group)
    return 0


def check_root(peer: Peer, root: Path, plan: Plan) -> list[str]:
    """W1's correctness: the days are listed and a sampled file has the right bytes."""
    bad: list[str] = []
    if sorted(os.listdir(root)) != sorted(DAYS) and not set(DAYS) <= set(os.listdir(root)):
        bad.append(f"root lists {sorted(os.listdir(root))}")
    item = plan.sample[0]
    with open(root / peer.path(item), "rb") as handle:
        if hashlib.sha256(handle.read()).hexdigest() != item.sha256:
            bad.append(peer.path(item))
    return bad
