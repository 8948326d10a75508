"""The rows that bench/trains.py prints: a workload, one run's or several seeds' figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    label: str
    mrs: int = 80
    gap: float = 0.25
    p_bad: float = 0.1
    runners: int = 4
    flaky: float = 0.0
    flaky_retries: int = 0
    seed: int = 1


def merge_results(results: list["Result"]) -> "Result":
    """Seeds pooled into one row: means of per-seed figures, like the discrete-event model."""
    first = results[0]
    pooled = Result(first.workload, first.mode, [], 0, 0, 0, 0, 0, 0.0)
    for result in results:
        pooled.ttm += result.ttm
        pooled.pipelines += result.pipelines
        pooled.api_requests += result.api_requests
        pooled.merged += result.merged
        pooled.bad_merged += result.bad_merged
        pooled.good_not_merged += result.good_not_merged
        pooled.real_seconds += result.real_seconds
    pooled.seeds = len(results)
    pooled.per_seed = [(statistics.fmean(r.ttm) if r.ttm else float("nan"), _p90(r.ttm)) for r in results]
    return pooled


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))] if values else float("nan")


@dataclass
class Result:
    workload: Workload
    mode: str
    ttm: list[float]
    pipelines: int
    api_requests: int
    merged: int
    bad_merged: int
    good_not_merged: int
    real_seconds: float
    seeds: int = 1
    per_seed: list[tuple[float, float]] = field(default_factory=list)

    def row(self, model: str = "- | - | -") -> str:
        if self.per_seed:  # the mean over seeds of each seed's mean and p90
            mean = statistics.fmean(m for m, _ in self.per_seed)
            p90 = statistics.fmean(p for _, p in self.per_seed)
        else:
            mean = statistics.fmean(self.ttm) if self.ttm else float("nan")
            p90 = _p90(self.ttm)
        per = max(self.merged, 1)
        return (f"| {self.workload.label} | {self.mode} | {self.seeds} | {mean:.2f} | {p90:.2f} | {self.pipelines / per:.2f} | "
                f"{self.api_requests / per:.1f} | {self.merged} | {self.bad_merged} | {self.good_not_merged} | "
                f"{model} | {self.real_seconds:.0f} |")
