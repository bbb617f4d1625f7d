"""Schedule latency as an M counts it: cheap on the hot path, binned in batches.

Counts stay exact: every observation is binned once, into the rows of the
queue the task waited in (global or local), by the owning M only.

**Time stamps.**  A task is stamped when it becomes runnable and when its M
starts it, two reads per task, on the runtime's clock in *seconds, as a float*
(:func:`seconds_clock`): ``time.perf_counter()`` reads the same clock as
``perf_counter_ns()`` but its result is made from the float free list and
unboxed compiled by one load, where an ``int`` of nanoseconds since boot is a
two-digit object allocated, converted and freed each time.  Resolution is the
double's: a latency is exact to the nanosecond while the clock reads less than
about 25 days (``perf_counter`` counts from boot), within 2 ns at 100 days.
Rows stay in integer nanoseconds: a value counts in the bucket its nearest
nanosecond falls in (compiled, each value is rounded as it is binned;
interpreted, a fold rounds its batch's sum, minimum and maximum once).

How a value reaches the rows depends on the build (:mod:`schedobs._compiled`),
because the cheapest way differs by a factor of ten between them:

- **interpreted**, the M appends ``now - ready`` to a buffer (``record``).
  Binning each value on the spot cost ~3,700 CPU instructions per task (a
  ``bisect`` over Python numbers goes through generic rich comparisons, plus
  the sum and min/max updates), a fifth of a trivial task's whole cost; the
  append is ~650.  The fold bins the buffer with C loops: sort, one
  ``bisect_left`` per bucket, ``sum``, first and last element.
- **compiled**, the M calls :meth:`LatencyRecorder.add`, which bins on the spot
  in native code into a small batch (the value's nearest nanosecond and
  native sum/min/max).  Tasks that waited in one queue one after another
  waited about as long, so most values fall in the bucket of the value
  before: they only lengthen that *run* (two compares of native integers).
  A value outside it counts the run and finds its own bucket (a table
  lookup by its bit length and a compare; a count below 256, so no integer
  object is made).  ~75 CPU instructions a value in a run, ~380 outside one
  (binning every value cost ~330 before runs).

The M folds every 61st scheduling round (a branch its loop already has, so at
most 61 values wait), before it may go idle, and when it exits.  Values reach
the rows within 61 rounds of their M, or as soon as it idles.  Readers see a
consistent-enough prefix (a row mid-fold may show a bucket before its sum);
the next read sees the rest.

::

    M loop ──record[source](s)──► pending[source] ─┐
           ──add(source, s)─────► batches[source] ─┴─fold() every 61 rounds──► rows[source]
                                                          (buckets, sum, min, max in ns)
"""

from __future__ import annotations

import importlib.machinery
import math
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Final

from schedobs._compiled import i64

from ._runqueue import FROM_GLOBAL, FROM_LOCAL

__all__ = ["NATIVE", "LatencyRecorder", "seconds_clock"]

_NO_MIN: Final = 1 << 62  # "no observation yet" for a row's min slot

#: Whether this module runs compiled, so that :meth:`LatencyRecorder.add` is the
#: cheap path (a compiled module is loaded from an extension module's file).
NATIVE: Final = __file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def seconds_clock(clock: Callable[[], int]) -> Callable[[], float]:
    """The runtime clock ``clock`` (nanoseconds) read in seconds, as tasks are stamped.

    The default clock, ``time.perf_counter_ns``, becomes ``time.perf_counter``
    (the same clock, read without an integer object); any other is divided
    (an injected test clock keeps its exact nanoseconds: a difference of two
    stamps rounds back to the difference of the two readings)."""
    if clock is time.perf_counter_ns:
        return time.perf_counter

    def seconds() -> float:
        return clock() / 1e9

    return seconds


#: The largest magnitude a value is counted at, in ns (146 years): a native 64-bit
#: integer holds it, and no wait is that long.
_MAX_NS: Final = (1 << 62) - 1
_MAX_NS_FLOAT: Final = 4.6e18  # just below 2**62, so that the conversion cannot overflow
#: Beyond every value :func:`to_ns` gives, either way: the open edge of a run in
#: the first or the overflow bucket.
_RUN_EDGE: Final = 1 << 62


def to_ns(seconds: float) -> i64:
    """``seconds`` to the nearest nanosecond (halves up), within ±:data:`_MAX_NS`.

    Per value on the compiled hot path (:meth:`LatencyRecorder.add`), where it
    returns a native 64-bit integer: ``i64()`` truncates, which is the floor of
    a value >= 0 in one native conversion (``math.floor`` is a call and a check
    more); a clock that ran backwards still gets its floor.  NaN raises, as
    ``math.floor`` does."""
    half_up = seconds * 1e9 + 0.5
    if half_up >= _MAX_NS_FLOAT:
        return _MAX_NS
    if half_up <= -_MAX_NS_FLOAT:
        return -_MAX_NS
    return i64(half_up) if half_up >= 0.0 else i64(math.floor(half_up))


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
        "cuts",
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
        #: The bucket bounds in ns, as a list: compiled, a list item is read by index
        #: directly, where a tuple's goes through a generic sequence call.
        self.bounds: list[int] = list(bounds)
        n = len(bounds) + 1
        self.i_sum, self.i_min, self.i_max = n, n + 1, n + 2
        self.rows: list[list[int]] = [[0] * n + [0, _NO_MIN, 0], [0] * n + [0, _NO_MIN, 0]]
        #: Per bound, in seconds, the least value that no longer rounds to a
        #: nanosecond within it: bucket ``i`` holds ``cuts[i-1] <= s < cuts[i]``.
        self.cuts: list[float] = [(bound + 0.5) / 1e9 for bound in bounds]
        self.pending: list[list[float]] = [[], []]
        #: ``record[source](seconds)``: the interpreted hot path's whole cost.
        self.record: list[Callable[[float], None]] = [
            self.pending[0].append,
            self.pending[1].append,
        ]
        #: What :meth:`add` binned since the last fold, per source (two fields, not
        #: a list: compiled, a field is read directly).
        self.batch_global = _Batch(n)
        self.batch_local = _Batch(n)
        #: Per bit length ``k`` of a positive value (ns), the first bucket any value
        #: of ``k`` bits can fall in (the number of bounds below ``2**(k-1)``).
        self.first_bucket = [bisect_left(bounds, 1 << (k - 1)) if k else 0 for k in range(65)]
        #: Per source and bucket, the latest latency taken in a sampled trace:
        #: ``(latency_ns, time_ns, trace_id, span_id)`` (see ``exemplar``).
        self.exemplars: list[list[Exemplar | None]] = [[None] * n, [None] * n]

    def add(self, source: int, latency: float) -> None:
        """Bin one value, in seconds, now (the compiled hot path; :data:`NATIVE`)."""
        batch = self.batch_local if source else self.batch_global
        ns = to_ns(latency)  # a native call and a native integer, compiled
        # Waits in one queue change slowly from task to task, so a value most
        # often falls in the bucket of the one before: then it only extends
        # that run, two native compares and an increment (see _Batch).
        if batch.run_floor < ns <= batch.run_ceiling:
            batch.run += 1
        else:
            self._start_run(batch, ns)
        batch.values += 1
        batch.total += ns
        if ns < batch.low:
            batch.low = ns
        if ns > batch.high:
            batch.high = ns

    def _start_run(self, batch: _Batch, ns: i64) -> None:
        """Count the batch's run so far, then start a run in the bucket of ``ns``."""
        counts = batch.counts
        if batch.run:
            counts[batch.run_bucket] = counts[batch.run_bucket] + batch.run
        # The first bucket a value of this many bits can fall in, then up past
        # every bound below it: one step at most for bounds at least 2x apart,
        # as the contract's are.  (A binary search over float cuts costs more
        # compiled: every probe unboxes a list item.)
        bounds = self.bounds
        last: i64 = len(bounds)
        bucket: i64 = 0
        if ns > 0:
            bucket = self.first_bucket[_bit_length(ns)]
        while bucket < last and ns > bounds[bucket]:
            bucket += 1
        batch.run_bucket = bucket
        batch.run = 1
        # Bucket ``i`` holds ``bounds[i-1] < ns <= bounds[i]``; the first and
        # the overflow bucket reach past every value to_ns can give.
        batch.run_floor = bounds[bucket - 1] if bucket > 0 else -_RUN_EDGE
        batch.run_ceiling = bounds[bucket] if bucket < last else _RUN_EDGE

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
        if batch.run:
            # The run's bucket stays as it is: the next value is likely in it too.
            counts[batch.run_bucket] = counts[batch.run_bucket] + batch.run
            batch.run = 0
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
        cuts = self.cuts
        total = len(batch)
        # Bucket i counts cuts[i-1] <= s < cuts[i]: positions in the sorted
        # batch, one bisect per cut, stopping once all are placed.
        placed = 0
        for i, cut in enumerate(cuts):
            if placed == total:
                break
            upto = bisect_left(batch, cut, placed)
            row[i] += upto - placed
            placed = upto
        row[len(cuts)] += total - placed  # beyond the last bound: the overflow bucket
        self._merge(row, to_ns(sum(batch)), to_ns(batch[0]), to_ns(batch[-1]))

    def _merge(self, row: list[int], total: int, low: int, high: int) -> None:
        row[self.i_sum] += total
        if low < row[self.i_min]:
            row[self.i_min] = low
        if high > row[self.i_max]:
            row[self.i_max] = high


def _bit_length(ns: i64) -> i64:
    """``ns.bit_length()`` for ``0 < ns < 2**63``, natively: six compares (the
    method is a call from compiled code)."""
    bits: i64 = 1
    if ns >= 1 << 32:
        ns >>= 32
        bits += 32
    if ns >= 1 << 16:
        ns >>= 16
        bits += 16
    if ns >= 1 << 8:
        ns >>= 8
        bits += 8
    if ns >= 1 << 4:
        ns >>= 4
        bits += 4
    if ns >= 1 << 2:
        ns >>= 2
        bits += 2
    if ns >= 1 << 1:
        bits += 1
    return bits


class _Batch:
    """Values :meth:`LatencyRecorder.add` binned since the last fold, for one source.

    The latest values that fell in one bucket are a *run*: ``run`` of them in
    bucket ``run_bucket``, which holds ``run_floor < ns <= run_ceiling``; a run
    reaches ``counts`` when a value falls elsewhere or at the fold.  The M
    folds at least every 61 values, so a count stays below 256, the integers
    CPython keeps made: adding to one allocates nothing.  The other fields are
    native integers (nanoseconds) when compiled.
    """

    __slots__ = (
        "counts",
        "high",
        "low",
        "run",
        "run_bucket",
        "run_ceiling",
        "run_floor",
        "total",
        "values",
    )

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.values: i64 = 0
        self.total: i64 = 0
        self.low: i64 = _NO_MIN
        self.high: i64 = 0
        self.run: i64 = 0
        self.run_bucket: i64 = 0
        # An empty range until the first value starts a run.
        self.run_floor: i64 = 0
        self.run_ceiling: i64 = 0
