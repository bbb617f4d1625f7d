"""A deterministic workload with known expected values, shared by the end-to-end tests."""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

from schedobs.contract import LATENCY_BOUNDARIES_MS, Registry, SchedulerMetrics

# Values on, between and beyond the bucket bounds, per (queue, tenant) series.
LATENCIES: dict[tuple[str, str], list[float]] = {
    ("global", "gold"): [0.005, 0.01, 0.3, 0.3, 7.5, 12.0, 9_999.0, 20_000.0],
    ("local", "bronze"): [0.02 * i for i in range(1, 200)],
}
REJECTIONS: dict[tuple[str, str | None], int] = {
    ("queue_full", "bronze"): 17,
    ("quota_exceeded", "bronze"): 3,
    ("shutdown", None): 1,
}
QUEUES = {"global": 5, "local": 12}


@dataclass
class Expected:
    name: str
    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    sums: dict[tuple[str, str], float] = field(default_factory=dict)

    def cumulative(self, key: tuple[str, str]) -> list[int]:
        out, running = [], 0
        for c in self.counts[key]:
            running += c
            out.append(running)
        return out


def record(registry: Registry, name: str = "e2e", kind: str = "custom") -> Expected:
    m = SchedulerMetrics(name, kind=kind, registry=registry)
    expected = Expected(name)
    for (queue, tenant), values in LATENCIES.items():
        h = m.latency(queue=queue, tenant=tenant)
        counts = [0] * (len(LATENCY_BOUNDARIES_MS) + 1)
        for v in values:
            h.observe(v)
            counts[bisect_left(LATENCY_BOUNDARIES_MS, v)] += 1
        expected.counts[(queue, tenant)] = counts
        expected.sums[(queue, tenant)] = math.fsum(values)
    for (reason, tenant), n in REJECTIONS.items():
        for _ in range(n):
            m.reject(reason, tenant=tenant)
    for queue, n in QUEUES.items():
        m.set_queue_length(n, queue=queue)
    return expected
