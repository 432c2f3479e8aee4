"""py-spy on a daemon during one workload run, and a plain-text summary of where time went.

`py-spy record --threads --format raw` samples the threads that are running (not those
waiting in epoll, a socket or a thread pool) and writes collapsed stacks ("thread;frame;
frame count"). Samples × the sampling interval is the daemon's busy time; the rest of the
wall time it waited (for FUSE requests or the store). The summary gives, per thread, the
busy seconds and the leaf frames that took most of them, plus the frames in the most
samples (inclusive), which is enough to tell FUSE round trips, Python handler cost,
storage requests and decompression apart.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

RATE = 250
STOP_TIMEOUT = 60.0
TOP = 30


def start(py_spy: Path, pid: int, out: Path) -> subprocess.Popen[bytes]:
    command = [
        str(py_spy), "record", "--pid", str(pid), "--rate", str(RATE), "--threads",
        "--format", "raw", "--output", str(out), "--nonblocking",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # let it attach before the workload starts
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _stacks(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _short(frame: str) -> str:
    """ "name (module/path.py:12)" -> "name (path.py)"."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0].rsplit("/", 2)
    return f"{name} ({'/'.join(file[-2:])})" if where else name


def summarize(path: Path) -> str:
    stacks = _stacks(path)
    total = sum(stacks.values()) or 1
    threads: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        thread = stack[0]
        threads[thread] += count
        leaves.setdefault(thread, Counter())[_short(stack[-1])] += count
        for frame in {_short(f) for f in stack[1:]}:
            inclusive[frame] += count
    lines = [f"{total} busy samples at {RATE} Hz = {total / RATE:.2f} s busy", ""]
    for thread, count in threads.most_common(6):
        busy = f"{count / RATE:.2f} s, {100 * count / total:.1f}% of samples"
        lines.append(f"{thread}: {busy}; top leaf frames:")
        for frame, n in leaves[thread].most_common(8):
            lines.append(f"    {100 * n / total:5.1f}%  {frame}")
    lines += ["", "frames in the most samples (inclusive):"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(TOP)]
    return "\n".join(lines) + "\n"
