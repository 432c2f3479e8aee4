"""The seeded dataset: small files over days and shards, a few big files, and their manifest.

Every file's name is chosen so that both desfs packers route it to the shard it belongs to
(Datavision with 3 shard bits, DES with 4 bits), so shard `s` of a day is one container in
both formats, one tar, and one directory of the plain tree. Contents are slices of a text
or JSON corpus (compressible) or random bytes (incompressible), all from one seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.config import BIG_FILES, DAYS, SEED, SHARDS_PER_DAY, BenchConfig, KiB
from desfs.namespace.routing import des_shard_index, shard_from_name

MEDIAN_SIZE = 8 * KiB
SIGMA = 1.1  # log-normal spread: about 2 % of the files reach the 256 KiB clip
MAX_SMALL = 256 * KiB
EMPTY_SHARE = 0.01
DV_BITS = 3  # Datavision shard_bits: 8 possible shards, names use 0..4
DES_BITS = 4  # DES n_bits: 16 possible shards, names use 0..4
_KINDS = (("log", "txt", 0.5), ("rec", "json", 0.25), ("blob", "bin", 0.25))
_CORPUS_BYTES = 1 << 20
_WORDS = 600


@dataclass(frozen=True, slots=True)
class BenchFile:
    day: str
    shard: int
    name: str
    size: int
    sha256: str
    big: bool

    @property
    def path(self) -> str:
        """Path in the plain tree (and in the tars, the squashfs image and the S3 objects)."""
        return f"{self.day}/shard_{self.shard}/{self.name}"


@dataclass(frozen=True, slots=True)
class Dataset:
    root: Path  # data directory of this mode
    files: tuple[BenchFile, ...]

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def small(self) -> tuple[BenchFile, ...]:
        return tuple(f for f in self.files if not f.big)

    @property
    def big(self) -> tuple[BenchFile, ...]:
        return tuple(f for f in self.files if f.big)

    def shard_files(self, day: str, shard: int) -> tuple[BenchFile, ...]:
        """The small files of one shard in name order."""
        chosen = [f for f in self.small if f.day == day and f.shard == shard]
        return tuple(sorted(chosen, key=lambda f: f.name))

    def shard_bytes(self, day: str, shard: int) -> int:
        return sum(f.size for f in self.shard_files(day, shard))

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def routes_to(name: str, shard: int) -> bool:
    """Both packers put `name` into shard number `shard`."""
    return des_shard_index(name, DES_BITS) == shard and shard_from_name(name, DV_BITS) == shard


def routed_name(stem: str, ext: str, shard: int) -> str:
    salt = 0
    while not routes_to(f"{stem}-{salt:x}.{ext}", shard):
        salt += 1
    return f"{stem}-{salt:x}.{ext}"


def _size(rng: random.Random) -> int:
    if rng.random() < EMPTY_SHARE:
        return 0
    return min(MAX_SMALL, int(rng.lognormvariate(math.log(MEDIAN_SIZE), SIGMA)))


def _kind(rng: random.Random) -> tuple[str, str]:
    pick = rng.random()
    for prefix, ext, share in _KINDS:
        if pick < share:
            return prefix, ext
        pick -= share
    return _KINDS[-1][0], _KINDS[-1][1]


def _text_corpus(rng: random.Random) -> bytes:
    words = [
        "".join(rng.choice("etaoinshrdlucmfw") for _ in range(rng.randint(2, 9)))
        for _ in range(_WORDS)
    ]
    lines: list[str] = []
    size = 0
    while size < _CORPUS_BYTES:
        line = f"{size:08d} INFO " + " ".join(rng.choices(words, k=rng.randint(4, 14))) + "\n"
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()


def _json_corpus(rng: random.Random) -> bytes:
    lines: list[str] = []
    size = 0
    while size < _CORPUS_BYTES:
        record = {
            "id": rng.randrange(10**9),
            "station": f"st-{rng.randrange(300):03d}",
            "value": round(rng.gauss(20.0, 5.0), 3),
            "ok": rng.random() < 0.9,
            "tags": rng.sample(["a", "b", "c", "d", "e", "f"], k=rng.randint(0, 3)),
        }
        line = json.dumps(record, sort_keys=True) + "\n"
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()


def _slice(corpus: bytes, offset: int, size: int) -> bytes:
    doubled = corpus + corpus  # a slice may wrap around the corpus end
    parts = [doubled[offset : offset + min(size, len(corpus))]]
    while sum(len(p) for p in parts) < size:
        parts.append(corpus[: size - sum(len(p) for p in parts)])
    return b"".join(parts)[:size]


def _contents(kind: str, size: int, rng: random.Random, corpora: dict[str, bytes]) -> bytes:
    if kind == "blob":
        return rng.randbytes(size)
    corpus = corpora[kind]
    return _slice(corpus, rng.randrange(len(corpus)), size)


def _write(tree: Path, day: str, shard: int, name: str, data: bytes, big: bool) -> BenchFile:
    target = tree / day / f"shard_{shard}" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    return BenchFile(day, shard, name, len(data), digest, big)


def generate(config: BenchConfig, root: Path) -> Dataset:
    """Write the plain tree under `root/tree` and return its manifest."""
    rng = random.Random(SEED)
    corpora = {"log": _text_corpus(rng), "rec": _json_corpus(rng)}
    tree = root / "tree"
    files: list[BenchFile] = []
    shards = [(day, shard) for day in DAYS for shard in range(SHARDS_PER_DAY)]
    for index in range(config.small_files):
        day, shard = shards[index % len(shards)]
        prefix, ext = _kind(rng)
        name = routed_name(f"{prefix}-{index:05d}", ext, shard)
        data = _contents(prefix, _size(rng), rng, corpora)
        files.append(_write(tree, day, shard, name, data, big=False))
    for index in range(BIG_FILES):
        name = routed_name(f"big-{index}", "bin", index % SHARDS_PER_DAY)
        data = rng.randbytes(config.big_size)
        files.append(_write(tree, DAYS[-1], index % SHARDS_PER_DAY, name, data, big=True))
    return Dataset(root, tuple(files))


def save_manifest(dataset: Dataset, path: Path, key: dict[str, object]) -> None:
    document = {"key": key, "files": [asdict(f) for f in dataset.files]}
    path.write_text(json.dumps(document))


def load_manifest(root: Path, path: Path, key: dict[str, object]) -> Dataset | None:
    """The saved manifest when it was made for the same `key`, else None."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if document.get("key") != key:
        return None
    return Dataset(root, tuple(BenchFile(**f) for f in document["files"]))
