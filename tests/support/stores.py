"""The other stores' fixture cases (tests/fixtures/stores/), as sources desfs mounts, and
what each must show: path in the mount -> (size, sha256) of the file's bytes.

Each case was written by the store's own writer (see each store's README there). The
expected trees come from the manifests and the name policy's plain rules, not from desfs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STORES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"

Expected = dict[str, tuple[int, str | None]]  # None: checked through `blobs` instead


def store_cases(store: str) -> list[Path]:
    return sorted(p.parent for p in (STORES / store).glob("*/manifest.json"))


def manifest(case: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((case / "manifest.json").read_text("utf-8"))
    return found


def source_dir(case: Path) -> Path:
    """The directory a user would mount: the store's prefix, the bucket, the data dir."""
    store = case.parent.name
    if store == "s4db":
        prefix: str = manifest(case)["prefix"]
        return case / "bucket" / prefix.rstrip("/")
    if store == "datas3t2":
        return case / "bucket"
    return case / "datadir"


def _plain_key(key: str) -> bool:
    """A key every component of which is an ordinary file name (no policy corner)."""
    parts = key.split("/")
    return all(p not in ("", ".", "..") and "\0" not in p and len(p.encode()) <= 255 for p in parts)


def expected(case: Path) -> Expected:
    """Every file the mount must show with its bytes' identity."""
    found = manifest(case)
    store = case.parent.name
    if store == "s4db":
        keys = {item["key"]: item for item in found["live"] if _plain_key(item["key"])}
        dirs = {k.rsplit("/", 1)[0] for k in keys if "/" in k}
        # A key that is also another key's directory is shown as the directory.
        return {k: (v["size"], v["sha256"]) for k, v in keys.items() if k not in dirs}
    if store == "datas3t2":
        base = f"{found['dataset']}"
        out: Expected = {}
        for datarange in found["dataranges"]:
            first, last = datarange["first"], datarange["last"]
            for name, item in found["datapoints"].items():
                if first <= int(name[:20]) <= last:
                    out[f"{base}/{first:020d}-{last:020d}/{name}"] = (item["size"], item["sha256"])
        return out
    # A Conduit data file's whole stream has no recorded digest; its BLOBs do (`blobs`).
    return {item["name"]: (item["upstream_uncompressed_size"], None) for item in found["files"]}


def blobs(case: Path) -> list[tuple[str, int, int, str]]:
    """A Conduit case's BLOBs as its writer's DataLocations: (file, start, end, sha256)."""
    return [
        (b["file"], b["start_offset"], b["end_offset"], b["sha256"])
        for b in manifest(case)["blobs"]
    ]
