"""The peers: how each one is mounted, and where a dataset file appears under its mountpoint.

A peer is a command line (None for the native directory), the environment it needs, and
a naming rule for shard directories: the plain tree, the tars, the squashfs image and the
per-file objects all use `day/shard_N`; desfs shows Datavision containers as `day/<hex>`
and DES flat containers as `day/<HEX>_0000`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.artifacts import PACKINGS, s3_prefix, squashfs_path, tar_path
from bench.config import BUCKET, DAYS, SHARDS_PER_DAY, BenchConfig
from bench.dataset import DES_BITS, DV_BITS, BenchFile, Dataset
from bench.tools import Tools
from desfs.namespace.routing import datavision_shard_token, des_shard_hex

S3_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Peer:
    name: str  # unique label in the report
    family: str  # native, desfs, ratarmount, squashfuse, s3fs, rclone
    source: str  # local | s3
    command: tuple[str, ...] = ()  # "{mnt}" stands for the mountpoint; () = no mount
    env: dict[str, str] = field(default_factory=dict)
    naming: str = "plain"  # plain | dh1 | des2
    root: Path | None = None  # the native directory (no mount)
    index_dir: Path | None = None  # ratarmount's index folder, emptied before a cold mount
    note: str = ""

    @property
    def mounted(self) -> bool:
        return bool(self.command)

    def shard_dir(self, day: str, shard: int) -> str:
        if self.naming == "dh1":
            return f"{day}/{datavision_shard_token(shard, DV_BITS)}"
        if self.naming == "des2":
            return f"{day}/{des_shard_hex(shard, DES_BITS)}_0000"
        return f"{day}/shard_{shard}"

    def path(self, item: BenchFile) -> str:
        return f"{self.shard_dir(item.day, item.shard)}/{item.name}"


def native(dataset: Dataset) -> Peer:
    return Peer("native", "native", "local", root=dataset.tree)


def desfs_peer(packing: str, source: str, dataset: Dataset, s3_env: dict[str, str]) -> Peer:
    naming = "dh1" if packing == "dh1" else "des2"
    if source == "local":
        where = str(dataset.root / packing)
        env: dict[str, str] = {}
    else:
        where = f"s3://{BUCKET}/{s3_prefix(packing)}"
        env = s3_env
    command = (
        sys.executable, "-m", "desfs", "--log-level", "warning", "mount", where, "{mnt}",
        "--foreground",
    )  # fmt: skip
    return Peer(f"desfs-{packing}", "desfs", source, command, env, naming)


def ratarmount_local(dataset: Dataset, tools: Tools, out: Path) -> Peer:
    tars = [str(tar_path(dataset, d, s)) for d in DAYS for s in range(SHARDS_PER_DAY)]
    index = out / "ratarmount-index-local"
    command = (str(tools.ratarmount), "-f", "--index-folders", str(index), *tars, "{mnt}")
    return Peer("ratarmount", "ratarmount", "local", command, index_dir=index)


def ratarmount_s3(dataset: Dataset, tools: Tools, out: Path, s3_env: dict[str, str]) -> Peer:
    urls = [f"s3://{BUCKET}/tars/{d}_shard_{s}.tar" for d in DAYS for s in range(SHARDS_PER_DAY)]
    index = out / "ratarmount-index-s3"
    command = (str(tools.ratarmount), "-f", "--index-folders", str(index), *urls, "{mnt}")
    # fsspec's s3fs takes its endpoint from FSSPEC_S3_ENDPOINT_URL (fsspec's env config).
    env = {**s3_env, "FSSPEC_S3_ENDPOINT_URL": s3_env["AWS_ENDPOINT_URL"]}
    return Peer("ratarmount", "ratarmount", "s3", command, env, index_dir=index)


def squashfuse(dataset: Dataset, binary: str) -> Peer:
    """`squashfuse_ll` (the low-level C anchor) or `squashfuse` (the high-level one)."""
    command = (binary, "-f", str(squashfs_path(dataset)), "{mnt}")
    return Peer(binary, "squashfuse", "local", command)


def s3fs(s3_env: dict[str, str], passwd: Path) -> Peer:
    passwd.write_text(f"{s3_env['AWS_ACCESS_KEY_ID']}:{s3_env['AWS_SECRET_ACCESS_KEY']}\n")
    passwd.chmod(0o600)
    options = ",".join(
        [
            "ro",
            f"url={s3_env['AWS_ENDPOINT_URL']}",
            "use_path_request_style",
            f"passwd_file={passwd}",
            f"endpoint={S3_REGION}",
        ]
    )
    command = ("s3fs", f"{BUCKET}:/files", "{mnt}", "-f", "-o", options)
    return Peer("s3fs", "s3fs", "s3", command)


def rclone(s3_env: dict[str, str], config: Path) -> Peer:
    config.touch()
    remote = (
        ":s3,provider=Other,force_path_style=true,"
        f"endpoint='{s3_env['AWS_ENDPOINT_URL']}',region={S3_REGION},"
        f"access_key_id={s3_env['AWS_ACCESS_KEY_ID']},"
        f"secret_access_key={s3_env['AWS_SECRET_ACCESS_KEY']}:{BUCKET}/files"
    )
    command = ("rclone", "mount", remote, "{mnt}", "--read-only", "--config", str(config))
    return Peer("rclone", "rclone", "s3", command)


@dataclass(frozen=True, slots=True)
class Lineup:
    local: tuple[Peer, ...]
    s3: tuple[Peer, ...]
    skipped: dict[str, str]  # peer -> why it is not in the run


def lineup(
    config: BenchConfig, dataset: Dataset, tools: Tools, s3_env: dict[str, str], out: Path
) -> Lineup:
    """Every peer of the run; one whose tool is missing goes to `skipped` with the reason."""
    skipped: dict[str, str] = {}
    local = [native(dataset)]
    local += [desfs_peer(p, "local", dataset, s3_env) for p in config.desfs_local]
    s3 = [desfs_peer(p, "s3", dataset, s3_env) for p in config.desfs_s3]
    candidates: dict[tuple[str, str], Callable[[], Peer]] = {
        ("ratarmount", "local"): lambda: ratarmount_local(dataset, tools, out),
        ("squashfuse_ll", "local"): lambda: squashfuse(dataset, "squashfuse_ll"),
        ("squashfuse", "local"): lambda: squashfuse(dataset, "squashfuse"),
        ("ratarmount", "s3"): lambda: ratarmount_s3(dataset, tools, out, s3_env),
        ("s3fs", "s3"): lambda: s3fs(s3_env, out / "s3fs.passwd"),
        ("rclone", "s3"): lambda: rclone(s3_env, out / "rclone.conf"),
    }
    for (tool, source), make in candidates.items():
        if not tools.has(tool):
            skipped[f"{tool} ({source})"] = tools.missing[tool]
            continue
        (local if source == "local" else s3).append(make())
    assert all(p in PACKINGS for p in config.desfs_local + config.desfs_s3)
    return Lineup(tuple(local), tuple(s3), skipped)
