"""The dataset in every shape a peer reads: DES containers, tars, a squashfs image, S3 objects.

Everything lands under the mode's data directory and is rebuilt only when the dataset key
(mode, sizes, seed, format version) changes or `--fresh` is given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bench.config import BIG_FILES, BUCKET, DAYS, OUT, SEED, SHARDS_PER_DAY, BenchConfig
from bench.dataset import DES_BITS, DV_BITS, Dataset, generate, load_manifest, save_manifest
from desfs.format.model import Codec, Format
from desfs.pack.options import PackOptions
from desfs.pack.plan import pack_directory

FORMAT_VERSION = 3  # bump when the shape of the data changes
MKSQUASHFS_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Packing:
    """One `desfs pack` output: a name, the format and codec used."""

    name: str
    format: Format
    codec: Codec


PACKINGS = {
    "des2": Packing("des2", Format.DES2, Codec.NONE),
    "des2-zstd": Packing("des2-zstd", Format.DES2, Codec.ZSTD),
    "dh1": Packing("dh1", Format.DESHEAD1, Codec.NONE),
}


def dataset_key(config: BenchConfig) -> dict[str, object]:
    return {
        "version": FORMAT_VERSION,
        "seed": SEED,
        "small_files": config.small_files,
        "big_size": config.big_size,
        "big_files": BIG_FILES,
        "days": list(DAYS),
        "shards": SHARDS_PER_DAY,
    }


def build(config: BenchConfig, fresh: bool, log: Any) -> Dataset:
    """The dataset of `config` with every local artifact, built now or reused."""
    root = config.data
    manifest = root / "manifest.json"
    key = dataset_key(config)
    if not fresh:
        found = load_manifest(root, manifest, key)
        if found is not None:
            log(f"reusing the dataset in {root}")
            return found
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    started = time.monotonic()
    dataset = generate(config, root)
    log(f"tree: {len(dataset.files)} files, {dataset.total_bytes() / 2**20:.0f} MiB")
    for packing in PACKINGS.values():
        pack(dataset, packing)
    log("packed: " + ", ".join(PACKINGS))
    write_tars(dataset)
    write_squashfs(dataset)
    save_manifest(dataset, manifest, key)
    log(f"dataset built in {time.monotonic() - started:.1f}s")
    return dataset


def _stage_day(dataset: Dataset, day: str) -> Path:
    """A flat directory of hard links to one day's files: the pack input for that day."""
    stage = dataset.root / "stage" / day
    stage.mkdir(parents=True, exist_ok=True)
    for item in dataset.files:
        if item.day == day:
            os.link(dataset.tree / item.path, stage / item.name)
    return stage


def pack(dataset: Dataset, packing: Packing) -> None:
    out = dataset.root / packing.name
    bits = DV_BITS if packing.format is Format.DESHEAD1 else DES_BITS
    for day in DAYS:
        stage = dataset.root / "stage" / day
        if not stage.exists():
            stage = _stage_day(dataset, day)
        options = PackOptions(
            format=packing.format,
            day=date.fromisoformat(day),
            codec=packing.codec,
            shard_bits=bits,
        )
        pack_directory(stage, out, options)


def tar_path(dataset: Dataset, day: str, shard: int) -> Path:
    return dataset.root / "tars" / f"{day}_shard_{shard}.tar"


def write_tars(dataset: Dataset) -> None:
    """One uncompressed tar per shard holding `day/shard_N/name` members, in name order."""
    (dataset.root / "tars").mkdir()
    for day in DAYS:
        for shard in range(SHARDS_PER_DAY):
            members = sorted(
                (f for f in dataset.files if f.day == day and f.shard == shard),
                key=lambda f: f.name,
            )
            with tarfile.open(tar_path(dataset, day, shard), "w", format=tarfile.GNU_FORMAT) as tar:
                for item in members:
                    tar.add(dataset.tree / item.path, arcname=item.path, recursive=False)


def squashfs_path(dataset: Dataset) -> Path:
    return dataset.root / "tree.sqfs"


def write_squashfs(dataset: Dataset) -> None:
    """mksquashfs with its defaults (gzip, 128 KiB blocks), as a user would make the image."""
    command = [
        "mksquashfs", str(dataset.tree), str(squashfs_path(dataset)),
        "-noappend", "-quiet", "-no-progress", "-processors", "2",
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=MKSQUASHFS_TIMEOUT, capture_output=True)


def s3_prefix(packing: str) -> str:
    return f"des/{packing}"


def upload(dataset: Dataset, client: Any, log: Any) -> None:
    """Every packing, every tar and every file as its own object, into one bucket."""
    started = time.monotonic()
    client.create_bucket(Bucket=BUCKET)
    jobs: list[tuple[str, Path]] = []
    for name in PACKINGS:
        base = dataset.root / name
        jobs += [(f"{s3_prefix(name)}/{p.relative_to(base).as_posix()}", p) for p in _files(base)]
    jobs += [(f"tars/{p.name}", p) for p in sorted((dataset.root / "tars").iterdir())]
    jobs += [(f"files/{f.path}", dataset.tree / f.path) for f in dataset.files]

    def put(job: tuple[str, Path]) -> None:
        client.put_object(Bucket=BUCKET, Key=job[0], Body=job[1].read_bytes())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, jobs))
    log(f"uploaded {len(jobs)} objects in {time.monotonic() - started:.1f}s")


def _files(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*") if p.is_file())


def write_outputs(stem: str, text: str, rows: Sequence[object]) -> None:
    """A side benchmark's report: `bench/out/<stem>.md` (and printed) and `<stem>.json`."""
    OUT.mkdir(exist_ok=True)
    (OUT / f"{stem}.md").write_text(text)
    records = [asdict(row) for row in rows]  # type: ignore[call-overload]
    (OUT / f"{stem}.json").write_text(json.dumps(records, indent=2))
    print(text)
