"""Schedule latency as an M counts it: append on the hot path, fold in batches.

Per task, the M's loop only appends ``now - ready_ns`` to a buffer of the
queue the task waited in (global or local).  Binning each value on the spot
cost ~3,700 CPU instructions per task (a ``bisect`` over Python ints goes
through generic rich comparisons, plus the sum and min/max updates), a fifth of
a trivial task's whole cost; the append is ~650.  The M folds its buffers into
the histogram rows in batches, where the work is C loops: sort, one
``bisect_right`` per bucket bound, ``sum``, first and last element.  It folds
every 61st scheduling round (a branch its loop already has, so at most 61
values wait), before it may go idle, and when it exits.

Counts stay exact — every observation is binned once — and reach the rows
within 61 rounds of their M, or as soon as it idles.  Readers see a
consistent-enough prefix (a row mid-fold may show a bucket before its sum);
the next read sees the rest.

::

    M loop ──append──► pending[source] ──fold() every 61 rounds──► rows[source]
                                                                 (buckets, sum, min, max)
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable

from ._runqueue import FROM_GLOBAL, FROM_LOCAL

__all__ = ["LatencyRecorder"]

_NO_MIN = 1 << 62  # "no observation yet" for the min slot

#: ``(latency_ns, time_ns, trace_id, span_id)``
Exemplar = tuple[int, int, int, int]


class LatencyRecorder:
    """One M's schedule-latency histogram rows and the values not yet folded in.

    ``rows[source]`` holds bucket counts (``len(bounds) + 1``, the last one the
    overflow), then the sum, min and max, all in nanoseconds.  Only the owning
    M writes; any thread may read.
    """

    __slots__ = ("bounds", "exemplars", "i_max", "i_min", "i_sum", "pending", "record", "rows")

    def __init__(self, bounds: tuple[int, ...]) -> None:
        self.bounds = bounds
        n = len(bounds) + 1
        self.i_sum, self.i_min, self.i_max = n, n + 1, n + 2
        self.rows = ([0] * n + [0, _NO_MIN, 0], [0] * n + [0, _NO_MIN, 0])
        self.pending: tuple[list[int], list[int]] = ([], [])
        #: ``record[source](latency_ns)``: the hot path's whole cost.
        self.record: tuple[Callable[[int], None], Callable[[int], None]] = (
            self.pending[0].append,
            self.pending[1].append,
        )
        #: Per source and bucket, the latest latency taken in a sampled trace:
        #: ``(latency_ns, time_ns, trace_id, span_id)`` (see ``exemplar``).
        self.exemplars: tuple[list[Exemplar | None], list[Exemplar | None]] = (
            [None] * n,
            [None] * n,
        )

    def exemplar(self, source: int, latency_ns: int, trace_id: int, span_id: int) -> None:
        """Keep ``latency_ns`` as its bucket's exemplar (the owning M only)."""
        bucket = bisect_left(self.bounds, latency_ns)
        self.exemplars[source][bucket] = (latency_ns, time.time_ns(), trace_id, span_id)

    def fold(self) -> None:
        """Bin the pending values into the rows (called by the owning M only)."""
        bounds = self.bounds
        for source in (FROM_GLOBAL, FROM_LOCAL):
            pending = self.pending[source]
            if not pending:
                continue
            batch = sorted(pending)
            pending.clear()
            row = self.rows[source]
            total = len(batch)
            # Bucket i counts bounds[i-1] < d <= bounds[i]: positions in the
            # sorted batch, one bisect per bound, stopping once all are placed.
            placed = 0
            for i, bound in enumerate(bounds):
                if placed == total:
                    break
                upto = bisect_right(batch, bound, placed)
                row[i] += upto - placed
                placed = upto
            row[len(bounds)] += total - placed  # beyond the last bound: the overflow bucket
            row[self.i_sum] += sum(batch)
            if batch[0] < row[self.i_min]:
                row[self.i_min] = batch[0]
            if batch[-1] > row[self.i_max]:
                row[self.i_max] = batch[-1]
