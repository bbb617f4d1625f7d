"""Schedule latency as an M counts it: cheap on the hot path, binned in batches.

Counts stay exact: every observation is binned once, into the rows of the
queue the task waited in (global or local), by the owning M only.  How a value
gets there depends on the build (:mod:`schedobs._compiled`), because the
cheapest way differs by a factor of ten between them:

- **interpreted**, the M appends ``now - ready_ns`` to a buffer (``record``).
  Binning each value on the spot cost ~3,700 CPU instructions per task (a
  ``bisect`` over Python ints goes through generic rich comparisons, plus the
  sum and min/max updates), a fifth of a trivial task's whole cost; the append
  is ~650.  The fold bins the buffer with C loops: sort, one ``bisect_right``
  per bucket bound, ``sum``, first and last element.
- **compiled**, the M calls :meth:`LatencyRecorder.add`, which bins on the spot
  in native code into a small batch (a binary search over the bounds, a count
  below 256, so no integer object is made, and native sum/min/max): ~25 ns,
  against ~100 ns for boxing, appending, sorting and bisecting the same value.

The M folds every 61st scheduling round (a branch its loop already has, so at
most 61 values wait), before it may go idle, and when it exits.  Values reach
the rows within 61 rounds of their M, or as soon as it idles.  Readers see a
consistent-enough prefix (a row mid-fold may show a bucket before its sum);
the next read sees the rest.

::

    M loop ──record[source](v)──► pending[source] ─┐
           ──add(source, v)─────► batches[source] ─┴─fold() every 61 rounds──► rows[source]
                                                          (buckets, sum, min, max)
"""

from __future__ import annotations

import importlib.machinery
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Final

from ._runqueue import FROM_GLOBAL, FROM_LOCAL

__all__ = ["NATIVE", "LatencyRecorder"]

_NO_MIN: Final = 1 << 62  # "no observation yet" for the min slot

#: Whether this module runs compiled, so that :meth:`LatencyRecorder.add` is the
#: cheap path (a compiled module is loaded from an extension module's file).
NATIVE: Final = __file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))

#: ``(latency_ns, time_ns, trace_id, span_id)``
Exemplar = tuple[int, int, int, int]


class LatencyRecorder:
    """One M's schedule-latency histogram rows and the values not yet folded in.

    ``rows[source]`` holds bucket counts (``len(bounds) + 1``, the last one the
    overflow), then the sum, min and max, all in nanoseconds.  Only the owning
    M writes; any thread may read.  Lists, not tuples, throughout: compiled, a
    tuple indexed by a variable is rebuilt as an object on every access.
    """

    __slots__ = (
        "batch_global",
        "batch_local",
        "bounds",
        "exemplars",
        "first_bucket",
        "i_max",
        "i_min",
        "i_sum",
        "pending",
        "record",
        "rows",
    )

    def __init__(self, bounds: tuple[int, ...]) -> None:
        self.bounds = bounds
        n = len(bounds) + 1
        self.i_sum, self.i_min, self.i_max = n, n + 1, n + 2
        self.rows: list[list[int]] = [[0] * n + [0, _NO_MIN, 0], [0] * n + [0, _NO_MIN, 0]]
        self.pending: list[list[int]] = [[], []]
        #: ``record[source](latency_ns)``: the interpreted hot path's whole cost.
        self.record: list[Callable[[int], None]] = [self.pending[0].append, self.pending[1].append]
        #: What :meth:`add` binned since the last fold, per source (two fields, not
        #: a list: compiled, a field is read directly).
        self.batch_global = _Batch(n)
        self.batch_local = _Batch(n)
        #: Per bit length ``k`` of a positive value, the first bucket any value of
        #: ``k`` bits can fall in (the number of bounds below ``2**(k-1)``).
        self.first_bucket = [bisect_left(bounds, 1 << (k - 1)) if k else 0 for k in range(65)]
        #: Per source and bucket, the latest latency taken in a sampled trace:
        #: ``(latency_ns, time_ns, trace_id, span_id)`` (see ``exemplar``).
        self.exemplars: list[list[Exemplar | None]] = [[None] * n, [None] * n]

    def add(self, source: int, latency_ns: int) -> None:
        """Bin one value now (the compiled hot path; :data:`NATIVE`)."""
        batch = self.batch_local if source else self.batch_global
        # The first bucket a value of this many bits can fall in, then up past
        # every bound below it: one step at most for bounds at least 2x apart,
        # as the contract's are (native integer operations when compiled).
        bounds = self.bounds
        last = len(bounds)
        bits = latency_ns.bit_length()
        bucket = self.first_bucket[bits] if latency_ns > 0 and bits <= 64 else 0
        while bucket < last and latency_ns > bounds[bucket]:
            bucket += 1
        batch.counts[bucket] += 1
        batch.values += 1
        batch.total += latency_ns
        if latency_ns < batch.low:
            batch.low = latency_ns
        if latency_ns > batch.high:
            batch.high = latency_ns

    def exemplar(self, source: int, latency_ns: int, trace_id: int, span_id: int) -> None:
        """Keep ``latency_ns`` as its bucket's exemplar (the owning M only)."""
        bucket = bisect_left(self.bounds, latency_ns)
        self.exemplars[source][bucket] = (latency_ns, time.time_ns(), trace_id, span_id)

    def fold(self) -> None:
        """Move everything recorded since the last fold into the rows (the owning M only)."""
        for source, batch in ((FROM_GLOBAL, self.batch_global), (FROM_LOCAL, self.batch_local)):
            if batch.values:
                self._fold_batch(batch, self.rows[source])
            if self.pending[source]:
                self._fold_pending(source)

    def _fold_batch(self, batch: _Batch, row: list[int]) -> None:
        counts = batch.counts
        for i in range(len(counts)):
            if counts[i]:
                row[i] += counts[i]
                counts[i] = 0
        self._merge(row, batch.total, batch.low, batch.high)
        batch.values = batch.total = batch.high = 0
        batch.low = _NO_MIN

    def _fold_pending(self, source: int) -> None:
        pending = self.pending[source]
        batch = sorted(pending)
        pending.clear()
        row = self.rows[source]
        bounds = self.bounds
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
        self._merge(row, sum(batch), batch[0], batch[-1])

    def _merge(self, row: list[int], total: int, low: int, high: int) -> None:
        row[self.i_sum] += total
        if low < row[self.i_min]:
            row[self.i_min] = low
        if high > row[self.i_max]:
            row[self.i_max] = high


class _Batch:
    """Values :meth:`LatencyRecorder.add` binned since the last fold, for one source.

    The M folds at least every 61 values, so a count stays below 256, the
    integers CPython keeps made: incrementing one allocates nothing.  The other
    fields are native integers when compiled.
    """

    __slots__ = ("counts", "high", "low", "total", "values")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.values = 0
        self.total = 0
        self.low = _NO_MIN
        self.high = 0
