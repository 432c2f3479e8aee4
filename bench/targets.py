"""The issue's targets, each judged on figures from the same run: met, missed, or n/a."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.aggregate import Cell, Ratio, Table, speed_ratio
from bench.config import DAYS, DESFS_CACHE_BYTES, DESFS_INDEX_BYTES, DESFS_PREFETCH_CAP, MiB

S3_TARGET_MS = 20
RSS_SLACK = 100 * MiB


@dataclass(frozen=True, slots=True)
class Verdict:
    group: str
    target: str
    measured: str
    status: str  # met | missed | n/a


@dataclass(frozen=True, slots=True)
class Facts:
    """What the targets need besides the table."""

    desfs: str  # the primary desfs peer name, e.g. desfs-des2
    timeout: float
    delivered: dict[str, int]  # workload -> bytes handed to the reader
    w3_shard_bytes: int
    w3_files: int
    w4_files: int
    latencies: tuple[int, ...]
    floors: dict[str, dict[str, float]]  # latency ms (as text) -> the store's floor there


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "missed")


class Judge:
    def __init__(self, table: Table, facts: Facts) -> None:
        self.table = table
        self.facts = facts
        self.verdicts: list[Verdict] = []

    def cell(self, peer: str, where: str, workload: str, state: str = "cold") -> Cell | None:
        return self.table.get((f"{peer}@{where}", workload, state))

    def seconds(self, peer: str, where: str, workload: str, state: str = "cold") -> float | None:
        cell = self.cell(peer, where, workload, state)
        return None if cell is None else cell.seconds

    def add(self, group: str, target: str, measured: str, ok: bool | None) -> None:
        self.verdicts.append(Verdict(group, target, measured, _status(ok)))

    def at_least(
        self, group: str, workload: str, where: str, peer: str, state: str, floor: float = 1.0
    ) -> None:
        ours = self.cell(self.facts.desfs, where, workload, state)
        ratio = speed_ratio(ours, self.cell(peer, where, workload, state), self.facts.timeout)
        wanted = "as fast as" if floor == 1.0 else f"{floor:g}× as fast as"
        target = f"{workload} {state}: desfs at least {wanted} {peer}"
        self.add(group, target, f"{ratio.show()} {peer}'s speed", _ge(ratio, floor))

    def vs_native(self, group: str, workload: str, state: str, floor: float) -> None:
        ours = self.cell(self.facts.desfs, "local", workload, state)
        native = self.cell("native", "local", workload, state)
        ratio = _of_native(ours, native)
        target = f"{workload} {state}: at least {floor}× native"
        self.add(group, target, f"{ratio.show()} native", _ge(ratio, floor))

    def mount_time(self, group: str, where: str, ceiling: float) -> None:
        seconds = self.seconds(self.facts.desfs, where, "W1")
        shown = "–" if seconds is None else f"{seconds:.3f} s"
        self.add(
            group, f"W1 cold: mount to first ls under {ceiling:.2f} s", shown, _lt(seconds, ceiling)
        )

    def of_floor(
        self,
        group: str,
        target: str,
        rate: float | None,
        floor: float | None,
        share: float,
        unit: str,
    ) -> None:
        """A desfs rate against the store's own floor measured in the same run."""
        if rate is None or not floor:
            self.add(group, target, "–", None)
            return
        shown = f"{rate:.1f} {unit} = {rate / floor:.2f}× the floor ({floor:.1f} {unit})"
        self.add(group, target, shown, rate / floor >= share)


def _ge(ratio: Ratio, floor: float) -> bool | None:
    return None if ratio.value is None else ratio.value >= floor


def _lt(value: float | None, ceiling: float) -> bool | None:
    return None if value is None else value < ceiling


def _of_native(ours: Cell | None, native: Cell | None) -> Ratio:
    """Speed as a fraction of native: t_native / t_ours."""
    if ours is None or native is None or ours.seconds is None or native.seconds is None:
        return Ratio(None)
    return Ratio(native.seconds / ours.seconds)


ANCHOR = "squashfuse_ll"


def local_targets(judge: Judge) -> None:
    group = "Local source, cold"
    for workload in ("W2", "W3", "W4", "W6", "W7"):
        judge.at_least(group, workload, "local", ANCHOR, "cold")
    judge.vs_native(group, "W5", "cold", 0.6)
    judge.mount_time(group, "local", 0.15)
    group = "Local source, warm"
    judge.at_least(group, "W2", "local", ANCHOR, "warm", 0.5)
    for workload in ("W3", "W4", "W7"):
        judge.at_least(group, workload, "local", ANCHOR, "warm")


def cpu_targets(judge: Judge) -> None:
    """Daemon CPU per small file of W3 (one shard in name order), open included."""
    for state in ("cold", "warm"):
        cell = judge.cell(judge.facts.desfs, "local", "W3", state)
        cpu = None if cell is None else cell.cpu_seconds
        per_file = None if cpu is None else 1e6 * cpu / judge.facts.w3_files
        shown = "–" if per_file is None else f"{per_file:.0f} µs"
        ok = None if per_file is None else per_file <= 100 if state == "cold" else None
        wanted = "at most 100 µs" if state == "cold" else "(reported)"
        judge.add("CPU", f"W3 {state}: daemon CPU per small file {wanted}", shown, ok)


def _fetched(judge: Judge, workload: str, where: str, factor: float) -> None:
    cell = judge.cell(judge.facts.desfs, where, workload)
    wanted = judge.facts.delivered[workload]
    target = f"{workload} cold: fetched at most {factor}× the bytes delivered"
    if cell is None or cell.requests is None or not wanted:
        judge.add(judge_group(where), target, "–", None)
        return
    share = cell.requests["bytes"] / wanted
    judge.add(judge_group(where), target, f"{share:.2f}×", share <= factor)


def judge_group(where: str) -> str:
    return f"S3 at {where.removeprefix('s3-')}"


def s3_targets(judge: Judge) -> None:
    where = f"s3-{S3_TARGET_MS}ms"
    group = judge_group(where)
    floor = judge.facts.floors.get(str(S3_TARGET_MS), {})
    seconds = judge.seconds(judge.facts.desfs, where, "W4")
    rate = None if seconds is None else judge.facts.w4_files / seconds
    judge.of_floor(
        group,
        "W4 cold: at least 0.95× the bare GET loop",
        rate,
        floor.get("small_gets_per_s"),
        0.95,
        "files/s",
    )
    for workload in ("W3", "W7"):
        judge.at_least(group, workload, where, "ratarmount", "cold")
    judge.at_least(group, "W5", where, "ratarmount", "cold")
    seconds = judge.seconds(judge.facts.desfs, where, "W5")
    rate = None if seconds is None else judge.facts.delivered["W5"] / MiB / seconds
    judge.of_floor(
        group,
        "W5 cold: at least 0.8× the parallel GET throughput",
        rate,
        floor.get("parallel_mib_per_s"),
        0.8,
        "MiB/s",
    )
    judge.at_least(group, "W6", where, "s3fs", "cold", 2.0)
    for workload in ("W3", "W4", "W5", "W7"):
        _fetched(judge, workload, where, 1.5)
    judge.mount_time(group, where, 0.3 + S3_TARGET_MS / 1000)


def request_targets(judge: Judge) -> None:
    group = "Requests"
    budget = 1 + math.ceil(judge.facts.w3_shard_bytes / DESFS_PREFETCH_CAP)
    for latency in judge.facts.latencies:
        cell = judge.cell(judge.facts.desfs, f"s3-{latency}ms", "W3")
        gets = None if cell is None or cell.requests is None else cell.requests["data_gets"]
        target = f"W3 cold at {latency} ms: GETs after the open at most {budget}"
        shown = "–" if gets is None else f"{gets:.0f} GETs"
        judge.add(group, target, shown, None if gets is None else gets <= budget)
    heads, lists = _desfs_request_maxima(judge)
    limit = 1 + len(DAYS)
    judge.add(group, "no HEAD in any desfs run", f"{heads} HEAD", heads == 0)
    judge.add(
        group,
        f"no per-file LIST: at most {limit} LISTs (root and days) in any desfs run",
        f"at most {lists} LIST per run",
        lists <= limit,
    )


def _desfs_request_maxima(judge: Judge) -> tuple[int, int]:
    heads = 0
    lists = 0
    for (tag, _w, _s), cell in judge.table.items():
        if tag.startswith("desfs-") and cell.requests is not None:
            heads += int(cell.requests["head"])
            lists = max(lists, int(cell.requests["list"]))
    return heads, lists


def memory_targets(judge: Judge) -> None:
    limit = DESFS_CACHE_BYTES + DESFS_INDEX_BYTES + RSS_SLACK
    peaks = [
        cell.peak_rss
        for (tag, _w, _s), cell in judge.table.items()
        if tag.startswith("desfs-") and cell.peak_rss is not None
    ]
    peak = max(peaks) if peaks else None
    shown = "–" if peak is None else f"{peak / MiB:.0f} MiB (limit {limit / MiB:.0f} MiB)"
    target = "peak RSS under cache + index budgets + 100 MiB in every workload"
    judge.add("Memory", target, shown, None if peak is None else peak <= limit)


def judge_all(table: Table, facts: Facts) -> list[Verdict]:
    judge = Judge(table, facts)
    local_targets(judge)
    if S3_TARGET_MS in facts.latencies:
        s3_targets(judge)
    cpu_targets(judge)
    request_targets(judge)
    memory_targets(judge)
    return judge.verdicts


def as_dicts(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [
        {"group": v.group, "target": v.target, "measured": v.measured, "status": v.status}
        for v in verdicts
    ]
