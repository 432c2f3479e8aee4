"""One workload run in a child process: `python -m bench.worker SPEC.json` prints a JSON result.

A separate process keeps a hung mount from hanging the bench (the parent kills it after a
timeout). The clock covers only the reads; the sha256 checks of the sampled files run after
it stops, on bytes kept from the timed reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

CHUNK = 1024 * 1024
PREAD_SIZE = 4096
FIND_TIMEOUT = 600.0


def _read_group(
    group: list[list[str]], kept: list[tuple[str, str, bytes]], sizes: list[int]
) -> None:
    total = 0
    for path, expected in group:
        with open(path, "rb") as handle:
            data = handle.read()
        total += len(data)
        if expected:
            kept.append((path, expected, data))
    sizes.append(total)


def run_read(spec: dict[str, Any]) -> dict[str, Any]:
    """Small files: each group read in order by its own thread (one group = one reader)."""
    groups: list[list[list[str]]] = spec["groups"]
    kept: list[tuple[str, str, bytes]] = []
    sizes: list[int] = []
    threads = [threading.Thread(target=_read_group, args=(g, kept, sizes)) for g in groups]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if len(sizes) != len(groups):
        raise RuntimeError("a reader thread failed")
    bad = [p for p, sha, data in kept if hashlib.sha256(data).hexdigest() != sha]
    files = sum(len(g) for g in groups)
    return _result(seconds, sum(sizes), files, len(kept), bad)


def run_sequential(spec: dict[str, Any]) -> dict[str, Any]:
    buffer = bytearray(spec["size"])
    view = memoryview(buffer)
    started = time.perf_counter()
    done = 0
    with open(spec["path"], "rb", buffering=0) as handle:
        while done < len(buffer):
            got = handle.readinto(view[done : done + CHUNK])
            if not got:
                break
            done += got
    seconds = time.perf_counter() - started
    bad = [] if hashlib.sha256(view[:done]).hexdigest() == spec["sha256"] else [spec["path"]]
    return _result(seconds, done, 1, 1, bad)


def run_pread(spec: dict[str, Any]) -> dict[str, Any]:
    offsets: list[int] = spec["offsets"]
    checks: dict[str, str] = spec["checks"]  # str(index) -> sha256 of that block
    kept: dict[int, bytes] = {}
    total = 0
    fd = os.open(spec["path"], os.O_RDONLY)
    try:
        started = time.perf_counter()
        for index, offset in enumerate(offsets):
            block = os.pread(fd, PREAD_SIZE, offset)
            total += len(block)
            if str(index) in checks:
                kept[index] = block
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
    bad = [
        f"{spec['path']}@{offsets[i]}"
        for i, block in kept.items()
        if hashlib.sha256(block).hexdigest() != checks[str(i)]
    ]
    return _result(seconds, total, len(offsets), len(kept), bad)


def run_find(spec: dict[str, Any]) -> dict[str, Any]:
    root: str = spec["root"]
    started = time.perf_counter()
    done = subprocess.run(["find", root], capture_output=True, timeout=FIND_TIMEOUT, check=True)
    seconds = time.perf_counter() - started
    lines = done.stdout.decode(errors="replace").splitlines()
    listed = {line[len(root) + 1 :] for line in lines if line.startswith(root + "/")}
    missing = [p for p in spec["expected"] if p not in listed]
    bad = [f"not listed: {p}" for p in missing[:5]]
    for path, sha in spec["samples"]:
        with open(path, "rb") as handle:
            if hashlib.sha256(handle.read()).hexdigest() != sha:
                bad.append(path)
    result = _result(seconds, 0, len(lines), len(spec["samples"]) + 1, bad)
    result["missing"] = len(missing)
    return result


def _result(seconds: float, size: int, ops: int, checked: int, bad: list[str]) -> dict[str, Any]:
    return {"seconds": seconds, "bytes": size, "ops": ops, "checked": checked, "bad": bad}


RUNNERS = {"read": run_read, "sequential": run_sequential, "pread": run_pread, "find": run_find}


def main() -> int:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    result = RUNNERS[spec["kind"]](spec)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
