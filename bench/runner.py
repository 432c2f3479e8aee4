"""Running every workload on every peer: cold (page cache dropped, peer freshly mounted), then warm.

A cold run starts from nothing the peer kept: the page cache is dropped, the peer is
mounted anew (ratarmount's index folder is emptied first, so it indexes as on a first
mount), and the store's counters are reset. The warm run repeats the workload on the same
mount at once; for W1 it is a remount without dropping the page cache (ratarmount keeps
its index). Each run is recorded with its time, bytes, S3 requests and the daemon's CPU
seconds and peak RSS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import profiling
from bench.config import REPO, BenchConfig
from bench.dataset import Dataset
from bench.mounts import Mount, MountError, ProcStats, drop_caches, with_timeout
from bench.peers import Peer
from bench.s3env import RequestSummary, Store, summarize
from bench.workloads import WORKLOADS, Plan, check_root, spec

Log = Callable[[str], None]
KILL_WAIT = 15.0


@dataclass(slots=True)
class Run:
    peer: str
    family: str
    source: str
    latency_ms: int | None
    workload: str
    rep: int
    state: str  # cold | warm
    seconds: float | None = None  # None: failed or timed out
    bytes: int = 0
    ops: int = 0
    checked: int = 0
    bad: list[str] = field(default_factory=list)
    error: str | None = None
    timeout: bool = False
    requests: RequestSummary | None = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    load_1m: float = 0.0  # the machine's 1-minute load average when the run was recorded

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Context:
    config: BenchConfig
    dataset: Dataset
    plan: Plan
    store: Store
    env: dict[str, str]  # the bench's environment, for the peers' processes
    log: Log
    profile: frozenset[str] = frozenset()  # workloads to run under py-spy (desfs peers)
    py_spy: Path | None = None


class Condition:
    """One peer at one latency: its mountpoint, its log, and the runs it produced."""

    def __init__(self, ctx: Context, peer: Peer, latency_ms: int | None) -> None:
        self.ctx = ctx
        self.peer = peer
        self.latency_ms = latency_ms
        tag = peer.name if latency_ms is None else f"{peer.name}-s3-{latency_ms}ms"
        self.tag = tag
        self.mountpoint = ctx.config.out / "mnt" / tag
        self.log_path = ctx.config.out / "logs" / f"{tag}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.runs: list[Run] = []

    def new_run(self, workload: str, rep: int, state: str) -> Run:
        p = self.peer
        run = Run(p.name, p.family, p.source, self.latency_ms, workload, rep, state)
        run.load_1m = os.getloadavg()[0]
        self.runs.append(run)
        return run

    def mount(self) -> Mount:
        return Mount(self.peer, self.mountpoint, self.log_path, self.ctx.env)

    def reset_counts(self) -> None:
        if self.peer.source == "s3":
            self.ctx.store.proxy.reset_counts()

    def record_requests(self, run: Run) -> None:
        if self.peer.source == "s3":
            run.requests = summarize(self.ctx.store.proxy.requests)


QUIET_IDLE = 0.75  # share of CPU time idle over one sample that counts as quiet
QUIET_SAMPLE = 2.0
QUIET_WAIT = 60.0


def wait_quiet(log: Callable[[str], None]) -> None:
    """Start a peer on a quiet machine: the upload, the store's own start and the previous
    peer's teardown would otherwise bill whichever peer comes next."""
    began = time.monotonic()
    while time.monotonic() - began < QUIET_WAIT:
        if _idle_share(QUIET_SAMPLE) >= QUIET_IDLE:
            return
    log(f"the machine did not quieten in {QUIET_WAIT:.0f} s; going on")


def _idle_share(seconds: float) -> float:
    def ticks() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    idle0, all0 = ticks()
    time.sleep(seconds)
    idle1, all1 = ticks()
    return (idle1 - idle0) / max(1, all1 - all0)


def run_condition(ctx: Context, peer: Peer, latency_ms: int | None) -> list[Run]:
    wait_quiet(ctx.log)
    cond = Condition(ctx, peer, latency_ms)
    if latency_ms is not None:
        ctx.store.proxy.latency = latency_ms / 1000
    started = time.monotonic()
    long_runs: set[str] = set()
    for rep in range(ctx.config.reps):
        for workload in WORKLOADS:
            if workload in long_runs:
                continue  # a run past slow_run is long enough to stand alone
            if rep > 0 and time.monotonic() - started > ctx.config.condition_budget:
                continue
            if workload == "W1":
                run_w1(cond, rep)
            else:
                run_workload(cond, workload, rep)
            latest = [r for r in cond.runs if r.workload == workload and r.rep == rep]
            if _is_long(latest, ctx.config.slow_run):
                long_runs.add(workload)
    ctx.store.proxy.latency = 0.0
    load = os.getloadavg()[0]
    took = time.monotonic() - started
    ctx.log(f"{cond.tag}: done in {took:.0f}s, load {load:.1f}; {_brief(cond.runs)}")
    return cond.runs


def _is_long(runs: list[Run], slow_run: float) -> bool:
    cold = [r for r in runs if r.state == "cold"]
    return any(r.timeout or (r.seconds or 0.0) > slow_run for r in cold)


def _brief(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        if run.rep == 0 and run.state == "cold":
            shown = "ERR" if run.seconds is None else f"{run.seconds:.2f}"
            parts.append(f"{run.workload}={shown}")
    return " ".join(parts)


def _cold_start(cond: Condition) -> None:
    if cond.peer.index_dir is not None:
        shutil.rmtree(cond.peer.index_dir, ignore_errors=True)
        cond.peer.index_dir.mkdir(parents=True)
    drop_caches()
    cond.reset_counts()


def run_w1(cond: Condition, rep: int) -> None:
    """Mount to first ls: cold (nothing cached), then warm (a remount, page cache kept)."""
    _cold_start(cond)
    for state in ("cold", "warm"):
        run = cond.new_run("W1", rep, state)
        cond.reset_counts()
        mount = cond.mount()
        try:
            _time_mount(cond, mount, run)
        except (MountError, OSError) as exc:
            run.error = str(exc)[-500:]
        finally:
            mount.stop()
        if run.seconds is None:
            return


def _time_mount(cond: Condition, mount: Mount, run: Run) -> None:
    timeout = cond.ctx.config.run_timeout
    started = time.perf_counter()
    mount.start()
    names = with_timeout(lambda: os.listdir(mount.root), timeout)
    run.seconds = time.perf_counter() - started
    run.ops = len(names)
    cond.record_requests(run)
    _record_stats(run, mount.stats(), None)
    run.bad = with_timeout(lambda: check_root(cond.peer, mount.root, cond.ctx.plan), timeout)
    run.checked = 2


def run_workload(cond: Condition, workload: str, rep: int) -> None:
    _cold_start(cond)
    mount = cond.mount()
    try:
        mount.start()
    except (MountError, OSError) as exc:
        cond.new_run(workload, rep, "cold").error = f"mount: {exc}"[-500:]
        mount.stop()
        return
    try:
        work = spec(workload, cond.ctx.plan, cond.ctx.dataset, cond.peer, mount.root)
        spec_path = cond.ctx.config.out / "spec.json"
        spec_path.write_text(json.dumps(work))
        for state in ("cold", "warm"):
            run = cond.new_run(workload, rep, state)
            cond.reset_counts()
            before = mount.stats()
            profiler = _start_profile(cond, mount, workload, rep, state)
            try:
                _run_worker(cond, mount, spec_path, run)
            finally:
                _stop_profile(cond, profiler, workload, state)
            cond.record_requests(run)
            _record_stats(run, mount.stats(), before)
            if run.seconds is None:
                break
    finally:
        mount.stop()


def _profile_path(cond: Condition, workload: str, state: str) -> Path:
    return cond.ctx.config.out / "profiles" / f"{cond.tag}-{workload}-{state}"


def _start_profile(
    cond: Condition, mount: Mount, workload: str, rep: int, state: str
) -> subprocess.Popen[bytes] | None:
    ctx = cond.ctx
    wanted = workload in ctx.profile and cond.peer.family == "desfs"
    if not wanted or rep != 0 or ctx.py_spy is None or mount.pid is None:
        return None
    base = _profile_path(cond, workload, state)
    base.parent.mkdir(parents=True, exist_ok=True)
    return profiling.start(ctx.py_spy, mount.pid, base.with_suffix(".raw"))


def _stop_profile(
    cond: Condition, proc: subprocess.Popen[bytes] | None, workload: str, state: str
) -> None:
    if proc is None:
        return
    profiling.stop(proc)
    base = _profile_path(cond, workload, state)
    raw = base.with_suffix(".raw")
    if raw.exists():
        base.with_suffix(".txt").write_text(profiling.summarize(raw))
        cond.ctx.log(f"profile: {base.with_suffix('.txt')}")


def _record_stats(run: Run, after: ProcStats | None, before: ProcStats | None) -> None:
    if after is None:
        return
    run.cpu_seconds = after.cpu_seconds - (before.cpu_seconds if before else 0.0)
    run.peak_rss = after.peak_rss


def _run_worker(cond: Condition, mount: Mount, spec_path: Path, run: Run) -> None:
    """The worker with a timeout; on a timeout the mount is torn down so the worker can die."""
    command = [sys.executable, "-m", "bench.worker", str(spec_path)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=cond.ctx.env
    )
    try:
        out, err = proc.communicate(timeout=cond.ctx.config.run_timeout)
    except subprocess.TimeoutExpired:
        run.timeout = True
        run.error = f"timed out after {cond.ctx.config.run_timeout:.0f}s"
        proc.kill()
        try:
            proc.communicate(timeout=KILL_WAIT)
        except subprocess.TimeoutExpired:
            mount.stop()  # a reader stuck in the mount returns once it is gone
            proc.communicate(timeout=KILL_WAIT)
        return
    if proc.returncode != 0:
        run.error = err.decode(errors="replace").strip()[-500:]
        return
    result = json.loads(out)
    run.seconds = result["seconds"]
    run.bytes = result["bytes"]
    run.ops = result["ops"]
    run.checked = result["checked"]
    run.bad = result["bad"]
    if run.bad:
        run.error = f"sha256 or listing mismatch: {run.bad[:3]}"
