"""Regenerate desfs/sample/: the small archive the README demo mounts.

Deterministic: the same bytes every run. Day 2024-12-03 is written in the Datavision
layout (DESHEAD1), day 2024-12-04 in the DES flat layout (DES2, zstd), so one mount
shows both formats. Run: .venv/bin/python -m scripts.make_sample
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from datetime import date
from pathlib import Path

from desfs.format.model import Codec, Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "desfs" / "sample"
WORDS = [
    "archive", "invoice", "report", "scan", "ledger", "zażółć",
    "gęślą", "jaźń", "日本", "lorem", "ipsum", "dolor",
]  # fmt: skip


def write_files(directory: Path, seed: int) -> dict[str, dict[str, object]]:
    rng = random.Random(seed)
    meta: dict[str, dict[str, object]] = {}
    for i in range(12):
        name = f"invoices/INV-{seed}-{i:04d}.txt"
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 400)))
        _put(directory / name, text.encode())
        meta[name] = {"mime": "text/plain", "customer": f"C{rng.randint(100, 999)}"}
    for i in range(4):
        name = f"records/record-{i}.json"
        _put(directory / name, json.dumps({"id": i, "seed": seed, "ok": True}).encode())
    _put(directory / "scans/scan-0001.bin", rng.randbytes(3000))
    _put(directory / "README.txt", f"desfs sample day, seed {seed}\n".encode())
    _put(directory / "empty.txt", b"")
    _put(directory / "zażółć gęślą.txt", "Zażółć gęślą jaźń\n".encode())
    return meta


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main() -> None:
    shutil.rmtree(SAMPLE, ignore_errors=True)
    SAMPLE.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp, "a"), Path(tmp, "b")
        meta_a = write_files(first, 3)
        meta_b = write_files(second, 4)
        pack_directory(
            first,
            SAMPLE,
            PackOptions(
                format=Format.DESHEAD1, day=date(2024, 12, 3), shard_bits=2, metadata=meta_a
            ),
        )
        pack_directory(
            second,
            SAMPLE,
            PackOptions(
                format=Format.DES2,
                day=date(2024, 12, 4),
                shard_bits=4,
                codec=Codec.ZSTD,
                metadata=meta_b,
            ),
        )
    print(f"wrote {sum(1 for _ in SAMPLE.rglob('*.des'))} containers to {SAMPLE}")


if __name__ == "__main__":
    main()
