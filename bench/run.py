"""`python -m bench.run --mode quick|full`: build the data, run every peer, write the report.

`make bench` runs the full mode (about 20 minutes), `make bench-quick` the quick one (about
3 minutes). Results go to bench/out/results.json and bench/out/report.md, rewritten after
every peer so an interrupted run still leaves a report of what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.artifacts import PACKINGS, build, dataset_key, s3_prefix, upload
from bench.config import BIG_FILES, BUCKET, DAYS, MODES, REPO, SHARDS_PER_DAY, BenchConfig
from bench.dataset import Dataset, load_manifest
from bench.mounts import force_unmount
from bench.peers import Lineup, lineup
from bench.report import Meta, write_json, write_markdown
from bench.runner import Context, run_condition
from bench.s3env import STORES, calibrate, measure_floor, running_store
from bench.targets import Facts, as_dicts, judge_all
from bench.tools import prepare
from bench.workloads import WORKLOADS, Plan, delivered, make_plan

NOTES = (
    "Every peer is mounted read-only by its own command in the foreground; CPU and RSS are "
    "those of that process.",
    "Cold: `sync; echo 3 > /proc/sys/vm/drop_caches`, then a fresh mount. ratarmount's index "
    "folder is emptied before each cold mount, so a cold ratarmount indexes its tars as on a "
    "first mount (W1 cold includes that); W1 warm is a remount that keeps the index.",
    "squashfuse_ll and squashfuse (the package's low-level and high-level binaries) mount "
    "one image made by `mksquashfs` with its defaults (gzip, 128 KiB blocks); squashfuse_ll "
    "is the local anchor of the targets.",
    "Each peer starts once the machine is quiet (at least 75 % of CPU time idle over 2 s; "
    "at most 60 s of waiting), so no peer pays for the upload or the one before it.",
    "s3fs and rclone run with their defaults plus read-only and path-style addressing; "
    "rclone with `--vfs-cache-mode off` (its default).",
    "S3 is Ceph RGW (tests/support/rgw.py: one monitor, one in-memory OSD, the beast "
    "frontend with tcp_nodelay) behind the counting proxy of tests/support/s3proxy.py, with "
    "TCP_NODELAY set on the proxy's sockets (without it every GET with a body waits ~40 ms "
    "for a delayed ACK); `--store moto` runs the same against a moto server instead.",
)
REPEAT_NOTE = (
    "A workload whose first cold run took longer than {slow:.0f} s (or timed out) is not "
    "repeated, and a peer that has used {budget:.0f} s at one latency skips its remaining "
    "repetitions; such figures show (n=…). Long runs are averages over hundreds of requests."
)
QUICK_NOTE = (
    "Quick mode scales the dataset down (2,000 small files, big files of 16 MiB, W4 100 "
    "files, W6 400 preads), runs one repetition, and only the 20 ms latency."
)


def _log_to(path: Path) -> Any:
    def log(message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, file=sys.stderr, flush=True)
        with open(path, "a") as handle:
            handle.write(line + "\n")

    return log


def parse(argv: list[str] | None) -> tuple[BenchConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--fresh", action="store_true", help="rebuild the dataset")
    parser.add_argument("--peers", help="comma-separated peer names to run (default: all)")
    parser.add_argument("--reps", type=int, help="override the repetitions")
    parser.add_argument("--latencies", help="override, e.g. 0,20 (milliseconds)")
    parser.add_argument("--store", choices=STORES, default="rgw", help="the S3 store (rgw)")
    parser.add_argument(
        "--rewrite-report",
        action="store_true",
        help="only rewrite report.md and results.json from the runs in results.json",
    )
    parser.add_argument(
        "--profile",
        help="workloads to run under py-spy on desfs peers, e.g. W4,W6; the report then "
        "goes to profile-report.md, since sampling slows the daemon",
    )
    args = parser.parse_args(argv)
    config = MODES[args.mode]
    if args.reps:
        config = dataclasses.replace(config, reps=args.reps)
    if args.latencies:
        latencies = tuple(int(x) for x in args.latencies.split(","))
        config = dataclasses.replace(config, latencies_ms=latencies)
    return config, args


def dataset_facts(config: BenchConfig, dataset: Dataset, plan: Plan) -> dict[str, Any]:
    sizes = [f.size for f in dataset.small]
    packed = {
        name: sum(p.stat().st_size for p in (dataset.root / name).rglob("*") if p.is_file())
        for name in PACKINGS
    }
    return {
        "small_files": len(sizes),
        "small_bytes": sum(sizes),
        "median_size": statistics.median(sizes),
        "max_size": max(sizes),
        "days": len(DAYS),
        "shards": SHARDS_PER_DAY,
        "big_files": BIG_FILES,
        "big_size": config.big_size,
        "note": QUICK_NOTE if config.mode == "quick" else "",
        "w3_files": len(plan.w3),
        "w3_bytes": sum(f.size for f in plan.w3),
        "w4_files": len(plan.w4),
        "w6_reads": len(plan.w6_offsets),
        "w7_files": sum(len(g) for g in plan.w7),
        "packed": ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in packed.items()),
    }


def calibration_keys(dataset: Dataset) -> dict[str, str]:
    small = max(dataset.small, key=lambda f: (f.size, f.name))
    big = sorted(dataset.big, key=lambda f: f.name)[0]
    container = next(p for p in sorted((dataset.root / "des2").glob("*.des")))
    return {
        f"one small-file object ({small.size // 1024} KiB)": f"files/{small.path}",
        f"one DES container ({container.stat().st_size / 2**20:.0f} MiB)": (
            f"{s3_prefix('des2')}/{container.name}"
        ),
        f"one big file ({big.size / 2**20:.0f} MiB)": f"files/{big.path}",
    }


def _floors(
    store: Any, dataset: Dataset, config: BenchConfig, log: Any
) -> tuple[str, dict[str, dict[str, float]]]:
    """The store's own floor at each latency, measured now: the limit every S3 figure of
    this run is to be read against. Returns the note and the figures by latency."""
    small = [f"files/{f.path}" for f in sorted(dataset.small, key=lambda f: f.name)[:50]]
    big = f"files/{sorted(dataset.big, key=lambda f: f.name)[0].path}"
    parts = []
    floors: dict[str, dict[str, float]] = {}
    for latency in config.latencies_ms:
        floor = measure_floor(store, BUCKET, small, big, latency)
        log(f"floor at {latency} ms: {floor}")
        floors[str(latency)] = dataclasses.asdict(floor)
        parts.append(
            f"at {latency} ms, {floor.small_gets_per_s:.0f} small GETs/s (one thread, one "
            f"after another), {floor.stream_mib_per_s:.0f} MiB/s in one GET, "
            f"{floor.parallel_mib_per_s:.0f} MiB/s in 8 MiB ranges 8 at a time"
        )
    note = "The store's floor through the proxy, measured in this run: " + "; ".join(parts)
    return note + ".", floors


def peer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    return env


class Results:
    """The runs so far, and the two report files rewritten from them."""

    def __init__(self, config: BenchConfig, meta: Meta, plan: Plan, prefix: str) -> None:
        self.prefix = prefix
        self.config = config
        self.meta = meta
        self.plan = plan
        self.runs: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def write(self) -> None:
        from bench.aggregate import aggregate

        meta = dataclasses.replace(self.meta, seconds=time.monotonic() - self.started)
        facts = Facts(
            desfs=meta.primary,
            timeout=self.config.run_timeout,
            delivered={w: delivered(w, self.plan) for w in WORKLOADS},
            w3_shard_bytes=sum(f.size for f in self.plan.w3),
            w3_files=len(self.plan.w3),
            w4_files=len(self.plan.w4),
            latencies=self.config.latencies_ms,
            floors=self.meta.floors,
        )
        verdicts = judge_all(aggregate(self.runs), facts)
        out = self.config.out
        write_json(out / f"{self.prefix}results.json", meta, self.runs, as_dicts(verdicts))
        write_markdown(out / f"{self.prefix}report.md", meta, self.runs, verdicts)


def run_all(ctx: Context, peers: Lineup, results: Results, wanted: set[str] | None) -> None:
    conditions: list[tuple[Any, int | None]] = [(p, None) for p in peers.local]
    conditions += [(p, lat) for lat in ctx.config.latencies_ms for p in peers.s3]
    for peer, latency in conditions:
        if wanted is not None and peer.name not in wanted:
            continue
        results.runs += [r.as_dict() for r in run_condition(ctx, peer, latency)]
        results.write()


def cleanup_mounts(config: BenchConfig) -> None:
    base = config.out / "mnt"
    if base.exists():
        for path in base.iterdir():
            if os.path.ismount(path):
                force_unmount(path)


def rewrite(config: BenchConfig) -> int:
    """Judge and write again from stored runs (after a change to the report code)."""
    document = json.loads((config.out / "results.json").read_text())
    stored = document["meta"]
    fields = {f.name for f in dataclasses.fields(Meta)}
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields
    }
    meta = Meta(**values)
    dataset = load_manifest(config.data, config.data / "manifest.json", dataset_key(config))
    if dataset is None:
        raise SystemExit("the dataset of this mode is gone: run the bench again")
    results = Results(config, meta, make_plan(config, dataset), "")
    results.runs = document["runs"]
    results.started -= meta.seconds
    results.write()
    return 0


def main(argv: list[str] | None = None) -> int:
    config, args = parse(argv)
    if args.rewrite_report:
        return rewrite(config)
    config.out.mkdir(parents=True, exist_ok=True)
    log = _log_to(config.out / "bench.log")
    log(f"bench {config.mode}: preparing tools")
    tools = prepare(log)
    dataset = build(config, args.fresh, log)
    plan = make_plan(config, dataset)
    notes = list(NOTES)
    notes.append(REPEAT_NOTE.format(slow=config.slow_run, budget=config.condition_budget))
    if os.geteuid() != 0:
        notes.append("Not run as root: the page cache could not be dropped; cold runs are warmer.")
    wanted = set(args.peers.split(",")) if args.peers else None
    cleanup_mounts(config)
    with running_store(args.store) as store:
        upload(dataset, store.server.client(), log)
        costs = calibrate(store, BUCKET, calibration_keys(dataset))
        log("store ms per ranged GET: " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))
        notes.append(
            f"Store ({store.kind}) cost per ranged 4 KiB GET at 0 ms, through the proxy "
            "(median ms): "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in costs.items())
            + ". At 20 ms every request costs the latency plus this."
        )
        floor_note, floors = _floors(store, dataset, config, log)
        notes.append(floor_note)
        peers = lineup(config, dataset, tools, store.env(), config.out)
        meta = Meta(
            mode=config.mode,
            command="make bench" if config.mode == "full" else "make bench-quick",
            started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            seconds=0.0,
            reps=config.reps,
            timeout=config.run_timeout,
            latencies=config.latencies_ms,
            primary=f"desfs-{config.primary}",
            versions=tools.versions,
            skipped=peers.skipped,
            notes=tuple(notes),
            dataset=dataset_facts(config, dataset, plan),
            peers_local=tuple(p.name for p in peers.local),
            peers_s3=tuple(p.name for p in peers.s3),
            floors=floors,
        )
        profile = frozenset(args.profile.split(",")) if args.profile else frozenset()
        results = Results(config, meta, plan, "profile-" if profile else "")
        py_spy = tools.py_spy if tools.has("py-spy") else None
        ctx = Context(config, dataset, plan, store, peer_env(), log, profile, py_spy)
        try:
            run_all(ctx, peers, results, wanted)
        finally:
            cleanup_mounts(config)
            results.write()
    log(f"report: {config.out / (results.prefix + 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
