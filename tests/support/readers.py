"""Reader processes for load and lifecycle tests: they read files through a mount and
check every byte.

    python -m tests.support.readers MANIFEST --mode random|walk --seconds S --seed N
    python -m tests.support.readers MANIFEST --mode stream --path PATH [--passes N]

MANIFEST is a JSON list of `[path, sha256, size]`, files of one shard listed together and
in container order. `random` reads files picked at random (one pick in BIG_SHARE among the
files over 1 MiB), `walk` reads runs of consecutive files (as `cp -r` does), both until
the time is up; `stream` reads the one file PATH `passes` times in chunks, printing
`progress <bytes>` after each chunk of the first pass, so a test can stop or kill it
mid-read, or stop the mount under it.
Each ends with one JSON line: reads, bytes, bad (paths whose bytes were wrong) and errors
(failed reads by errno name). Wrong bytes are never an error: they are `bad`, which a test
must never see. Tests start readers and collect their results with `start` and `result`.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024
WALK_RUN = 40  # files per walk
BIG_SHARE = 16
REPO = Path(__file__).resolve().parents[2]

Row = tuple[str, str, int]  # path, sha256, size


# -- the test side -------------------------------------------------------------------------


def write_manifest(where: Path, rows: list[Row]) -> Path:
    where.write_text(json.dumps([list(row) for row in rows]))
    return where


def start(manifest: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.support.readers", str(manifest), *args]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)


def wait_progress(proc: subprocess.Popen[str], timeout: float) -> None:
    """Wait until a stream reader has read its first chunk (it is then mid-file)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"reader {proc.args!r} made no progress in {timeout}s"
    line = proc.stdout.readline()
    assert line.startswith("progress "), f"reader {proc.args!r} said {line!r}"


def result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The reader's final report; a reader still running after `timeout` is hung."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"reader {proc.args!r} hung: still running after {timeout}s") from None
    assert proc.returncode == 0, f"reader exited {proc.returncode}: {out}"
    found: dict[str, Any] = json.loads(out.splitlines()[-1])
    return found


def assert_clean(report: dict[str, Any]) -> None:
    assert report["bad"] == [], f"wrong bytes reported as success: {report['bad']}"
    assert report["errors"] == {}, f"read errors: {report['errors']}"
    assert report["reads"] > 0


# -- the reader process --------------------------------------------------------------------


@dataclass
class Tally:
    reads: int = 0
    bytes: int = 0
    bad: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def report(self) -> str:
        return json.dumps(
            {"reads": self.reads, "bytes": self.bytes, "bad": self.bad, "errors": self.errors}
        )


def read_one(path: str, digest: str, tally: Tally, chunk: int, progress: bool) -> bool:
    """Read `path` whole and check it; False when the read failed."""
    hasher = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb", buffering=0) as stream:
            while block := stream.read(chunk):
                hasher.update(block)
                size += len(block)
                if progress:
                    print(f"progress {size}", flush=True)
            # Out of the page cache, so that reading it again goes to the daemon again.
            os.posix_fadvise(stream.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        tally.errors[errno.errorcode.get(exc.errno or 0, str(exc.errno))] += 1
        return False
    tally.reads += 1
    tally.bytes += size
    if hasher.hexdigest() != digest:
        tally.bad.append(path)
    return True


def run(manifest: list[Row], mode: str, seconds: float, seed: int) -> Tally:
    rng = random.Random(seed)
    big = [row for row in manifest if row[2] > CHUNK] or manifest
    tally = Tally()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if mode == "random":
            picks = [rng.choice(big if rng.randrange(BIG_SHARE) == 0 else manifest)]
        else:
            first = rng.randrange(len(manifest))
            picks = manifest[first : first + WALK_RUN]
        for path, digest, _ in picks:
            read_one(path, digest, tally, CHUNK, progress=False)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest")
    parser.add_argument("--mode", choices=("random", "walk", "stream"), required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path")
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=256 * 1024)
    args = parser.parse_args()
    with open(args.manifest) as stream:
        manifest: list[Row] = [(path, digest, size) for path, digest, size in json.load(stream)]
    if args.mode == "stream":
        tally = Tally()
        digest = next(row[1] for row in manifest if row[0] == args.path)
        for done in range(args.passes):
            # Progress of the first pass only: nobody reads the pipe after that.
            if not read_one(args.path, digest, tally, args.chunk, progress=done == 0):
                break
    else:
        tally = run(manifest, args.mode, args.seconds, args.seed)
    print(tally.report(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
