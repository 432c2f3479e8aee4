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
    w4_files: int
    latencies: tuple[int, ...]


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "missed")


class Judge:
    def __init__(self, table: Table, facts: Facts) -> None:
        self.table = table
        self.facts = facts
        self.verdicts: list[Verdict] = []

    def cell(self, peer: str, where: str, workload: str, state: str = "cold") -> Cell | None:
        return self.table.get((f"{peer}@{where}", workload, state))

    def add(self, group: str, target: str, measured: str, ok: bool | None) -> None:
        self.verdicts.append(Verdict(group, target, measured, _status(ok)))

    def at_least(self, group: str, workload: str, where: str, peer: str, state: str) -> None:
        ours = self.cell(self.facts.desfs, where, workload, state)
        ratio = speed_ratio(ours, self.cell(peer, where, workload, state), self.facts.timeout)
        target = f"{workload} {state}: desfs at least as fast as {peer}"
        shown = f"{ratio.show()} {peer}'s speed"
        if where != "local" and workload != "W1":
            shown += f"; with the cold mount (W1) added: {self.with_mount(workload, where, peer)}"
        self.add(group, target, shown, _ge(ratio, 1.0))

    def with_mount(self, workload: str, where: str, peer: str) -> str:
        """The same ratio with each side's cold mount time added (ratarmount pays at mount)."""
        sums = []
        for name in (self.facts.desfs, peer):
            mount, work = self.cell(name, where, "W1"), self.cell(name, where, workload)
            if mount is None or work is None or mount.seconds is None or work.seconds is None:
                return "–"
            sums.append(mount.seconds + work.seconds)
        return f"{sums[1] / sums[0]:.2f}×"

    def vs_native(self, group: str, workload: str, state: str, floor: float) -> None:
        ours = self.cell(self.facts.desfs, "local", workload, state)
        native = self.cell("native", "local", workload, state)
        ratio = _of_native(ours, native)
        target = f"{workload} {state}: at least {floor}× native"
        self.add(group, target, f"{ratio.show()} native", _ge(ratio, floor))

    def mount_time(self, group: str, where: str) -> None:
        cell = self.cell(self.facts.desfs, where, "W1")
        seconds = None if cell is None else cell.seconds
        shown = "–" if seconds is None else f"{seconds:.3f} s"
        self.add(group, "W1 cold: mount to first ls under 1 s", shown, _lt(seconds, 1.0))


def _ge(ratio: Ratio, floor: float) -> bool | None:
    return None if ratio.value is None else ratio.value >= floor


def _lt(value: float | None, ceiling: float) -> bool | None:
    return None if value is None else value < ceiling


def _of_native(ours: Cell | None, native: Cell | None) -> Ratio:
    """Speed as a fraction of native: t_native / t_ours."""
    if ours is None or native is None or ours.seconds is None or native.seconds is None:
        return Ratio(None)
    return Ratio(native.seconds / ours.seconds)


def local_targets(judge: Judge) -> None:
    group = "Local source, cold"
    judge.at_least(group, "W2", "local", "squashfuse", "cold")
    for workload in ("W3", "W4"):
        judge.at_least(group, workload, "local", "ratarmount", "cold")
        judge.at_least(group, workload, "local", "squashfuse", "cold")
    judge.vs_native(group, "W5", "cold", 0.5)
    judge.at_least(group, "W6", "local", "squashfuse", "cold")
    judge.mount_time(group, "local")
    for workload in ("W3", "W4"):
        judge.vs_native("Local source, warm", workload, "warm", 0.5)


def _fetched(judge: Judge, workload: str, where: str, factor: float) -> None:
    cell = judge.cell(judge.facts.desfs, where, workload)
    wanted = judge.facts.delivered[workload]
    if cell is None or cell.requests is None or not wanted:
        judge.add(judge_group(where), f"{workload}: fetched at most {factor}× delivered", "–", None)
        return
    share = cell.requests["bytes"] / wanted
    target = f"{workload} cold: fetched at most {factor}× the bytes delivered"
    judge.add(judge_group(where), target, f"{share:.2f}×", share <= factor)


def judge_group(where: str) -> str:
    return f"S3 at {where.removeprefix('s3-')}"


def s3_targets(judge: Judge) -> None:
    where = f"s3-{S3_TARGET_MS}ms"
    group = judge_group(where)
    for workload in ("W3", "W7"):
        judge.at_least(group, workload, where, "ratarmount", "cold")
        _fetched(judge, workload, where, 1.5)
    cell = judge.cell(judge.facts.desfs, where, "W4")
    floor = 0.9 / (S3_TARGET_MS / 1000)
    rate = None if cell is None or cell.seconds is None else judge.facts.w4_files / cell.seconds
    shown = "–" if rate is None else f"{rate:.1f} files/s (target {floor:.0f})"
    judge.add(
        group,
        "W4 cold: at least 0.9 / latency files/s",
        shown,
        None if rate is None else rate >= floor,
    )
    _fetched(judge, "W4", where, 2.0)
    judge.at_least(group, "W5", where, "ratarmount", "cold")
    judge.at_least(group, "W6", where, "s3fs", "cold")
    judge.at_least(group, "W2", where, "ratarmount", "cold")
    judge.mount_time(group, where)


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
    request_targets(judge)
    memory_targets(judge)
    return judge.verdicts


def as_dicts(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [
        {"group": v.group, "target": v.target, "measured": v.measured, "status": v.status}
        for v in verdicts
    ]
