"""Seeded trees of small random files, the raw material packed by tests and benchmarks."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path


def random_files(
    src: Path, count: int, seed: int, name: Callable[[int], str], sizes: tuple[int, int]
) -> None:
    """`count` files under `src`, the i-th at `name(i)` with `sizes[0]..sizes[1]` bytes."""
    rng = random.Random(seed)
    for i in range(count):
        path = src / name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(*sizes)))
