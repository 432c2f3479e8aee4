"""Which keys of a source listing belong to the other packed small-file stores.

datas3t2, s4db and ConduitFlatFileDB (docs/formats/). Like `namespace.layout`, pure
functions over source-relative keys. What each store becomes in the mount:

* datas3t2: `/<dataset>/<first>-<last>/<datapoint>`: datasets are the top level and each
  datarange (a TAR and its index) a directory, so one LIST per dataset and one index GET
  per datarange opened.
* s4db: the source is one store; its live keys are the tree at the mount root.
* ConduitFlatFileDB: the source is one data directory; each data file is one file at the
  mount root, under its own name, holding its uncompressed stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from desfs.errors import FormatError
from desfs.format import conduit, datas3t2
from desfs.namespace.layout import Hidden, Layout

DATAS3T2_ROOT = "datas3t/"  # where datas3t2 keeps every dataset of a bucket
S4DB_INDEX = "index.idx"
_DATASET = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def detect_store(objects: Iterable[str], prefixes: Iterable[str]) -> Layout | None:
    """The store a root listing (delimiter "/") shows, or None (DES, or nothing known)."""
    keys = set(objects)
    if S4DB_INDEX in keys:
        return Layout.S4DB
    if DATAS3T2_ROOT in set(prefixes):
        return Layout.DATAS3T2
    if any(conduit.parse_data_file_name(key) is not None for key in keys):
        return Layout.CONDUIT
    return None


def dataset_of(prefix: str, base: str) -> str | None:
    """ "datas3t/demo/" -> "demo" (with `base` "datas3t/"); None for any other prefix."""
    if not prefix.startswith(base) or not prefix.endswith("/"):
        return None
    name = prefix[len(base) : -1]
    return name if _DATASET.fullmatch(name) else None


def dataranges_prefix(base: str, dataset: str) -> str:
    if not _DATASET.fullmatch(dataset):
        raise FormatError(f"datas3t2 dataset name {dataset!r} is not [A-Za-z0-9_-]+")
    return f"{base}{dataset}/dataranges/"


@dataclass(frozen=True, slots=True)
class Datarange:
    """A complete datarange: both objects listed. `name` is its directory in the mount."""

    name: str  # "<first:020d>-<last:020d>"
    first: int
    last: int
    tar_key: str
    index_key: str


def pair_dataranges(keys: Iterable[str]) -> tuple[list[Datarange], list[Hidden]]:
    """The dataranges of one dataset's listing, in key order, and what was left out.

    A TAR without its index (or the reverse) is an upload not completed: left out. A
    datarange overlapping an earlier one (by first key, then the shorter) is left out too,
    so a datapoint is shown once; datas3t2's database, not the bucket, knows which won.
    """
    tars: dict[tuple[int, int], str] = {}
    indices: dict[tuple[int, int], str] = {}
    hidden: list[Hidden] = []
    for key in keys:
        try:
            parsed = datas3t2.parse_datarange_key(key)
        except FormatError as exc:
            hidden.append(Hidden(key, str(exc)))
            continue
        if parsed is not None:
            found = tars if parsed.kind == "tar" else indices
            found[(parsed.first, parsed.last)] = key
    for span in sorted(tars.keys() ^ indices.keys()):
        key = tars.get(span) or indices[span]
        hidden.append(Hidden(key, "no TAR or no index beside it (an upload not completed)"))
    kept: list[Datarange] = []
    for first, last in sorted(tars.keys() & indices.keys()):
        if kept and first <= kept[-1].last:
            hidden.append(Hidden(tars[first, last], f"overlaps datarange {kept[-1].name}"))
            continue
        name = f"{first:020d}-{last:020d}"
        kept.append(Datarange(name, first, last, tars[first, last], indices[first, last]))
    return kept, hidden


def conduit_files(keys: Iterable[str]) -> list[str]:
    """The data files of a data directory's listing, by number (then .dat before .dat.zst)."""
    named = [(conduit.parse_data_file_name(key), key) for key in keys]
    return [key for parsed, key in sorted((p, k) for p, k in named if p is not None)]
