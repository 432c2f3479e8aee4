"""From individual runs to figures: medians per (condition, workload, state) and ratios.

A run counts when it finished with the right bytes. A condition whose runs all timed out
has no median, but it is known to be slower than the timeout, so a ratio against it is a
lower bound ("≥").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

REQUEST_FIELDS = ("total", "get", "head", "list", "other", "bytes", "open_gets", "data_gets")


@dataclass(frozen=True, slots=True)
class Cell:
    seconds: float | None  # median of the valid runs
    valid: int
    total: int
    timeout: bool  # no valid run and at least one timed out
    error: str | None  # the first error, if any run failed
    requests: dict[str, float] | None  # medians of the request counters
    cpu_seconds: float | None
    peak_rss: int | None  # the highest VmHWM seen
    bytes: int


@dataclass(frozen=True, slots=True)
class Ratio:
    value: float | None
    lower_bound: bool = False  # the other side timed out: the true ratio is at least this

    def show(self) -> str:
        if self.value is None:
            return "–"
        return f"{'≥' if self.lower_bound else ''}{self.value:.2f}×"


def condition_tag(run: dict[str, Any]) -> str:
    if run["latency_ms"] is None:
        return f"{run['peer']}@local"
    return f"{run['peer']}@s3-{run['latency_ms']}ms"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _valid(run: dict[str, Any]) -> bool:
    return run["seconds"] is not None and not run["bad"]


def make_cell(runs: list[dict[str, Any]]) -> Cell:
    good = [r for r in runs if _valid(r)]
    requests = None
    with_requests = [r["requests"] for r in good if r["requests"] is not None]
    if with_requests:
        requests = {
            k: float(statistics.median(q[k] for q in with_requests)) for k in REQUEST_FIELDS
        }
    cpu = [r["cpu_seconds"] for r in good if r["cpu_seconds"] is not None]
    rss = [r["peak_rss"] for r in runs if r["peak_rss"] is not None]
    errors = [r["error"] for r in runs if r["error"]]
    return Cell(
        seconds=_median([r["seconds"] for r in good]),
        valid=len(good),
        total=len(runs),
        timeout=not good and any(r["timeout"] for r in runs),
        error=errors[0] if errors else None,
        requests=requests,
        cpu_seconds=_median(cpu),
        peak_rss=max(rss) if rss else None,
        bytes=good[0]["bytes"] if good else 0,
    )


Table = dict[tuple[str, str, str], Cell]  # (condition tag, workload, state) -> cell


def aggregate(runs: list[dict[str, Any]]) -> Table:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        key = (condition_tag(run), run["workload"], run["state"])
        groups.setdefault(key, []).append(run)
    return {key: make_cell(group) for key, group in groups.items()}


def speed_ratio(ours: Cell | None, theirs: Cell | None, timeout: float) -> Ratio:
    """How many times faster `ours` is than `theirs`: t_theirs / t_ours (> 1: ours is faster)."""
    if ours is None or theirs is None or ours.seconds is None or ours.seconds <= 0:
        return Ratio(None)
    if theirs.seconds is None:
        return Ratio(timeout / ours.seconds, lower_bound=True) if theirs.timeout else Ratio(None)
    return Ratio(theirs.seconds / ours.seconds)
