"""bench/out/results.json and bench/out/report.md from the runs of one bench run."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.aggregate import Cell, Table, aggregate, speed_ratio
from bench.targets import Verdict
from bench.workloads import TITLES, WORKLOADS

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Meta:
    """Everything about the run that is not a measurement."""

    mode: str
    command: str
    started: str
    seconds: float
    reps: int
    timeout: float
    latencies: tuple[int, ...]
    primary: str  # e.g. desfs-des2
    versions: dict[str, str]
    skipped: dict[str, str]
    notes: tuple[str, ...]
    dataset: dict[str, Any]
    peers_local: tuple[str, ...]
    peers_s3: tuple[str, ...]
    # latency ms (as text, as JSON keeps it) -> the store's floor measured in the run
    floors: dict[str, dict[str, float]] = field(default_factory=dict)


def write_json(
    path: Path, meta: Meta, runs: list[dict[str, Any]], verdicts: list[dict[str, Any]]
) -> None:
    table = aggregate(runs)
    medians = [
        {"condition": tag, "workload": w, "state": s, **_cell_dict(cell)}
        for (tag, w, s), cell in sorted(table.items())
    ]
    document = {"meta": asdict(meta), "targets": verdicts, "medians": medians, "runs": runs}
    path.write_text(json.dumps(document, indent=1, default=str))


def _cell_dict(cell: Cell) -> dict[str, Any]:
    return {
        "seconds": cell.seconds,
        "valid_runs": cell.valid,
        "runs": cell.total,
        "timeout": cell.timeout,
        "error": cell.error,
        "requests": cell.requests,
        "cpu_seconds": cell.cpu_seconds,
        "peak_rss": cell.peak_rss,
    }


def _seconds(cell: Cell | None, timeout: float, reps: int) -> str:
    if cell is None:
        return "–"
    if cell.seconds is None:
        return f">{timeout:.0f} s (timeout)" if cell.timeout else "failed"
    text = f"{cell.seconds:.3f}" if cell.seconds < 10 else f"{cell.seconds:.1f}"
    if cell.valid != cell.total:
        return text + f" ({cell.valid}/{cell.total} ok)"
    return text + (f" (n={cell.total})" if cell.total < reps else "")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(columns: list[str]) -> list[str]:
    return [_row(columns), _row(["---"] * len(columns))]


class Writer:
    def __init__(self, meta: Meta, table: Table) -> None:
        self.meta = meta
        self.table = table
        self.lines: list[str] = []

    def cell(self, peer: str, where: str, workload: str, state: str) -> Cell | None:
        return self.table.get((f"{peer}@{where}", workload, state))

    def times(self, peers: tuple[str, ...], where: str, state: str) -> None:
        """Median seconds, with the speed as a fraction of native (t_native / t_peer)."""
        self.lines += _header(["workload", *peers])
        for workload in WORKLOADS:
            native = self.cell("native", "local", workload, state)
            row = [workload]
            for peer in peers:
                cell = self.cell(peer, where, workload, state)
                text = _seconds(cell, self.meta.timeout, self.meta.reps)
                if peer != "native" and workload != "W1":
                    text += _of_native(native, cell, self.meta.timeout)
                row.append(text)
            self.lines.append(_row(row))
        self.lines.append("")

    def speedups(self, ours: str, peers: tuple[str, ...], where: str) -> None:
        """t_peer / t_desfs per workload, cold and warm: above 1 means desfs is faster."""
        others = [p for p in peers if p != ours]
        self.lines += _header(
            ["workload", *[f"{p} cold" for p in others], *[f"{p} warm" for p in others]]
        )
        for workload in WORKLOADS:
            row = [workload]
            for state in ("cold", "warm"):
                ours_cell = self.cell(ours, where, workload, state)
                for peer in others:
                    theirs = self.cell(peer, where, workload, state)
                    row.append(speed_ratio(ours_cell, theirs, self.meta.timeout).show())
            self.lines.append(_row(row))
        self.lines.append("")

    def requests(self, peers: tuple[str, ...], where: str) -> None:
        self.lines += _header(["workload", *peers])
        for workload in WORKLOADS:
            row = [workload]
            for peer in peers:
                parts = [_requests(self.cell(peer, where, workload, s)) for s in ("cold", "warm")]
                row.append(" / ".join(parts))
            self.lines.append(_row(row))
        self.lines.append("")

    def resources(self, peers: list[tuple[str, str]]) -> None:
        columns = [f"{p} {w.removeprefix('s3-')}" for p, w in peers if p != "native"]
        self.lines += _header(["workload", *columns])
        for workload in WORKLOADS:
            row = [workload]
            for peer, where in peers:
                if peer == "native":
                    continue
                row.append(_resources(self.cell(peer, where, workload, "cold")))
            self.lines.append(_row(row))
        self.lines.append("")


def _of_native(native: Cell | None, cell: Cell | None, timeout: float) -> str:
    """ " (0.52× native)": t_native / t_peer; a peer that timed out is at most native/timeout."""
    if native is None or native.seconds is None or cell is None:
        return ""
    if cell.seconds is None:
        return f" (≤{native.seconds / timeout:.2f}× native)" if cell.timeout else ""
    return f" ({native.seconds / cell.seconds:.2f}× native)"


def _requests(cell: Cell | None) -> str:
    if cell is None or cell.requests is None:
        return "–"
    q = cell.requests
    text = f"{q['get']:.0f}G {q['head']:.0f}H {q['list']:.0f}L {q['bytes'] / MiB:.1f}MiB"
    return text if not q["other"] else text + f" {q['other']:.0f}other"


def _resources(cell: Cell | None) -> str:
    if cell is None or cell.peak_rss is None:
        return "–"
    cpu = "–" if cell.cpu_seconds is None else f"{cell.cpu_seconds:.2f}s"
    return f"{cpu} / {cell.peak_rss / MiB:.0f} MiB"


def write_markdown(
    path: Path, meta: Meta, runs: list[dict[str, Any]], verdicts: list[Verdict]
) -> None:
    table = aggregate(runs)
    out = Writer(meta, table)
    out.lines += _intro(meta, runs)
    out.lines += _targets(verdicts)
    out.lines += ["## Local source", "", "Median seconds, cold (page cache dropped, fresh mount);"]
    out.lines += ["in parentheses the speed as a fraction of native (t_native / t_peer).", ""]
    out.times(meta.peers_local, "local", "cold")
    out.lines += [
        "Warm (the same workload again on the same mount; W1: a remount, page cache kept):",
        "",
    ]
    out.times(meta.peers_local, "local", "warm")
    out.lines += [
        f"{meta.primary} speed relative to each peer (t_peer / t_desfs; above 1: desfs is faster):",
        "",
    ]
    out.speedups(meta.primary, meta.peers_local, "local")
    for latency in meta.latencies:
        _s3_section(out, meta, latency)
    out.lines += ["## Daemon CPU seconds and peak RSS (cold runs)", ""]
    out.lines += [
        "CPU: utime + stime of the mount process during the workload (W1: since its start);"
    ]
    out.lines += ["peak RSS: its VmHWM at the end of the workload.", ""]
    pairs = [(p, "local") for p in meta.peers_local]
    pairs += [(p, f"s3-{lat}ms") for lat in meta.latencies for p in meta.peers_s3]
    out.resources(pairs)
    path.write_text("\n".join(out.lines) + "\n")


def _s3_section(out: Writer, meta: Meta, latency: int) -> None:
    where = f"s3-{latency}ms"
    out.lines += [f"## S3 at {latency} ms per request", ""]
    out.lines += [
        "Median seconds, cold; in parentheses the speed as a fraction of native (local disk).",
        "",
    ]
    out.times(meta.peers_s3, where, "cold")
    out.lines += ["Warm:", ""]
    out.times(meta.peers_s3, where, "warm")
    out.lines += [f"{meta.primary} speed relative to each peer (t_peer / t_desfs):", ""]
    out.speedups(meta.primary, meta.peers_s3, where)
    out.lines += [
        "Requests seen by the proxy, cold / warm (G = GET, H = HEAD, L = LIST, body bytes):",
        "",
    ]
    out.requests(meta.peers_s3, where)


BUSY_LOAD = 3.0  # the bench itself keeps about 2 of the 2 cores busy


def _load_note(runs: list[dict[str, Any]]) -> list[str]:
    loads = [r["load_1m"] for r in runs if r.get("load_1m")]
    if not loads:
        return ["- The machine's load average was not recorded in this run."]
    peak = max(loads)
    text = (
        f"- 1-minute load average during the runs: median {statistics.median(loads):.1f}, "
        f"max {peak:.1f}."
    )
    if peak > BUSY_LOAD:
        text += " **Other work shared the machine: compare figures with care.**"
    return [text]


def _intro(meta: Meta, runs: list[dict[str, Any]]) -> list[str]:
    d = meta.dataset
    lines = [
        f"# desfs benchmark — {meta.mode} mode",
        "",
        f"Run {meta.started} with `{meta.command}`, {meta.seconds / 60:.1f} minutes in all.",
        "",
        "## Setup",
        "",
        f"- Dataset: {d['small_files']} small files ({d['small_bytes'] / MiB:.0f} MiB, median "
        f"{d['median_size'] / 1024:.1f} KiB, 0 B to {d['max_size'] / 1024:.0f} KiB) over "
        f"{d['days']} days × {d['shards']} shards, and {d['big_files']} files of "
        f"{d['big_size'] / MiB:.0f} MiB. {d['note']}",
        f"- W3 reads {d['w3_files']} files ({d['w3_bytes'] / MiB:.1f} MiB); W4 {d['w4_files']} "
        f"random files; W6 {d['w6_reads']} preads; W7 4 × {d['w7_files'] // 4} files.",
        f"- Each figure is the median of {meta.reps} repetition(s), except where `(n=…)` "
        f"gives fewer; a run is cut after {meta.timeout:.0f} s and shown as a timeout.",
        f"- The primary desfs peer (the one the targets are judged on) is `{meta.primary}`.",
        f"- Packed sizes: {d['packed']}.",
    ]
    lines += [f"- {note}" for note in meta.notes]
    lines += _load_note(runs)
    if meta.skipped:
        lines += ["", "Skipped peers:", ""]
        lines += [f"- {peer}: {why}" for peer, why in meta.skipped.items()]
    lines += ["", "Versions:", "", *_header(["component", "version"])]
    lines += [_row([k, v]) for k, v in sorted(meta.versions.items())]
    lines += ["", "Workloads:", ""]
    lines += [f"- {w}: {TITLES[w]}" for w in WORKLOADS]
    return [*lines, ""]


def _targets(verdicts: list[Verdict]) -> list[str]:
    lines = ["## Targets", "", *_header(["group", "target", "measured", "status"])]
    lines += [_row([v.group, v.target, v.measured, f"**{v.status}**"]) for v in verdicts]
    met = sum(v.status == "met" for v in verdicts)
    missed = sum(v.status == "missed" for v in verdicts)
    return [*lines, "", f"{met} met, {missed} missed, {len(verdicts) - met - missed} n/a.", ""]
