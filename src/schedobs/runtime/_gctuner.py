"""An opt-in tuner of CPython's garbage-collector thresholds (the seed's dynamic GOGC, translated).

Go's GOGC trades memory for fewer collections.  CPython's counterpart is the
generation-0 threshold: how many net allocations trigger a young collection
(700 by default).  Each collection stops the running Python thread; when many
happen, they show up as a spread between the median and the tail of schedule
latency.

Every ``interval`` seconds the tuner reads the runtime's schedule-latency
histogram over the last interval.  If ``p99 / p50`` exceeds ``target_spread``
it doubles threshold 0 (fewer, larger young collections), up to ``maximum``;
if the spread is below a quarter of the target it halves it, down to the value
it started from.  It needs an instrumented runtime (the latency histogram).

It is off unless started, and ``benchmarks/bench_tenancy.py`` measures whether
it helps: it is a knob with a measured effect, not a promise.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from ._periodic import Periodic

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["GCTuner"]


def _quantile(q: float, bounds: tuple[int, ...], counts: list[int]) -> float:
    total = sum(counts)
    if not total:
        return 0.0
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            upper = bounds[i] if i < len(bounds) else bounds[-1]
            lower = 0 if i == 0 else bounds[i - 1]
            return lower + (upper - lower) * (rank - seen) / c
        seen += c
    return float(bounds[-1])


class GCTuner(Periodic):
    """Adjusts ``gc`` threshold 0 from ``runtime``'s schedule-latency spread."""

    _thread_name = "schedobs-gc-tuner"

    def __init__(
        self,
        runtime: Runtime,
        *,
        interval: float = 1.0,
        target_spread: float = 20.0,
        maximum: int = 100_000,
    ) -> None:
        if not runtime.instrumented:
            raise ValueError("the GC tuner reads schedule latency: use an instrumented runtime")
        if interval <= 0 or target_spread <= 1 or maximum < 1:
            raise ValueError("interval > 0, target_spread > 1 and maximum >= 1 are required")
        self.runtime = runtime
        self.interval = interval
        self.target = target_spread
        self.original = gc.get_threshold()
        self.minimum = self.original[0]
        self.maximum = max(maximum, self.minimum)
        self.threshold = self.minimum
        #: Threshold changes made.
        self.adjustments = 0
        self._last: list[int] | None = None
        self._init_thread()
        if runtime.metrics is not None:
            from schedobs.contract import GC_THRESHOLD

            runtime.metrics.register_callback(lambda: [(GC_THRESHOLD, {}, self.threshold)])

    def close(self) -> None:
        """Stop and restore the thresholds found at start."""
        super().close()
        gc.set_threshold(*self.original)

    def step(self) -> int:
        """One decision; returns threshold 0."""
        latency = self.runtime.stats().latency
        counts = [sum(v) for v in zip(*(lc.bucket_counts for lc in latency.values()), strict=True)]
        bounds = next(iter(latency.values())).bounds_ns if latency else ()
        previous, self._last = self._last, counts
        if previous is None or not bounds:
            return self.threshold
        delta = [a - b for a, b in zip(counts, previous, strict=True)]
        if sum(delta) < 100:
            return self.threshold  # too little to judge
        p50 = _quantile(0.5, bounds, delta)
        p99 = _quantile(0.99, bounds, delta)
        spread = p99 / p50 if p50 > 0 else 0.0
        new = self.threshold
        if spread > self.target:
            new = min(self.threshold * 2, self.maximum)
        elif spread < self.target / 4:
            new = max(self.threshold // 2, self.minimum)
        if new != self.threshold:
            self.threshold = new
            self.adjustments += 1
            gc.set_threshold(new, *gc.get_threshold()[1:])
        return self.threshold
