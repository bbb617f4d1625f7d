"""Series handles: the hot-path recording calls.

Each handle is bound to one series (one attribute set) of one contract metric,
like ``prometheus_client``'s ``.labels(...)`` children.  Resolving attributes
once and keeping the handle makes each recording a few list operations on the
calling thread's own row (see :mod:`schedobs._shards`): about 0.2 µs, against 5 to 9 µs
for an OpenTelemetry SDK ``Histogram.record``.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from operator import add

from schedobs._shards import Row, Shards

from . import _exemplars as _ex
from ._batch import DEFAULT_SIZE, LatencyBatch
from ._exemplars import Exemplar
from ._points import CounterPoint, GaugePoint, HistogramPoint
from ._spec import LATENCY_BOUNDARIES_MS

__all__ = ["LatencyHistogram", "QueueLengthGauge", "RejectionCounter"]

_log = logging.getLogger("schedobs")

_BOUNDS = LATENCY_BOUNDARIES_MS
_NBUCKETS = len(_BOUNDS) + 1
# Row layout of a latency histogram: bucket counts, then sum, min, max.
_SUM = _NBUCKETS
_MIN = _NBUCKETS + 1
_MAX = _NBUCKETS + 2
_INF = math.inf
# Each bound in milliseconds with its value in seconds (see observe_many_seconds).
_BOUND_PAIRS = tuple((bound, bound / 1000.0) for bound in _BOUNDS)


def _fold_histogram(into: Row, row: Row) -> None:
    into[:_MIN] = map(add, into[:_MIN], row[:_MIN])  # counts and sum, in C
    if row[_MIN] < into[_MIN]:
        into[_MIN] = row[_MIN]
    if row[_MAX] > into[_MAX]:
        into[_MAX] = row[_MAX]


def _fold_sum(into: Row, row: Row) -> None:
    into[0] += row[0]


class LatencyHistogram:
    """One series of ``scheduler.schedule.latency``.

    Obtain it from :meth:`SchedulerMetrics.latency`; call :meth:`observe` from
    any thread.
    """

    __slots__ = (
        "_batches", "_drop", "_exemplars", "_local", "_shards", "attributes", "start_ns",
    )  # fmt: skip

    def __init__(self, attributes: Mapping[str, str], drop: Callable[[float], None]) -> None:
        self.attributes = attributes
        self.start_ns = time.time_ns()
        self._shards = Shards([0] * _NBUCKETS + [0.0, _INF, -_INF], _fold_histogram)
        self._local = self._shards.local
        self._drop = drop
        # Copied on change, never changed in place: a snapshot iterates it unlocked.
        self._batches: tuple[LatencyBatch, ...] = ()
        # Per bucket, the latest exemplar as (value, time_ns, trace_id, span_id):
        # written whole, read whole, so no lock.
        self._exemplars: list[tuple[float, int, int, int] | None] = [None] * _NBUCKETS

    def observe(self, ms: float) -> None:
        """Record one schedule latency of ``ms`` milliseconds.

        NaN, infinite and negative values are not aggregated: they are counted in
        ``schedobs.observations.dropped`` instead (a clock step must never take a
        scheduler down).  A value that is not a real number raises ``TypeError``.
        """
        try:
            if 0.0 <= ms < _INF:
                try:
                    row = self._local.row
                except AttributeError:
                    row = self._shards.new_row()
                # Sum first: a number type that cannot be added to a float fails
                # here, before any bucket has been touched.
                row[_SUM] += ms
                bucket = bisect_left(_BOUNDS, ms)
                row[bucket] += 1
                if ms < row[_MIN]:
                    row[_MIN] = ms
                if ms > row[_MAX]:
                    row[_MAX] = ms
                var = _ex.context_var
                if var is not None:
                    context = var.get(None)
                    if context:  # an empty OpenTelemetry context has no span: the common case
                        ids = _ex.sampled_ids(context)
                        if ids is not None:  # a tuple: made into an Exemplar when read
                            self._exemplars[bucket] = (ms, time.time_ns(), *ids)
                return
        except TypeError:
            raise TypeError(
                f"latency must be a real number of milliseconds, got {type(ms).__name__}: {ms!r}"
            ) from None
        self._drop(ms)

    def observe_signed(self, ms: float, *, trace_id: int = 0, span_id: int = 0) -> None:
        """Record a latency whose two ends were read on different hosts' clocks.

        Unlike :meth:`observe`, a negative value is kept: once both clocks are
        corrected, what is left below zero is the corrections' error, and it is
        recorded as measured — counted in the lowest bucket (whose bound it is
        below) and as the series' min — rather than dropped.  The sum alone adds
        it as 0: in OpenMetrics and Prometheus a histogram's sum is a counter,
        which must never fall (a scraper rejects the exposition, and ``rate()``
        would read a fall as a reset).  Callers count such values themselves
        (``scheduler.schedule.unresolved``).  NaN and infinities are still
        counted as dropped.  ``trace_id``/``span_id`` name the trace the task ran in, for
        the bucket's exemplar (the observing thread's context may not be it);
        without them the current sampled span is used, as by :meth:`observe`.
        """
        try:
            finite = -_INF < ms < _INF
        except TypeError:
            raise TypeError(
                f"latency must be a real number of milliseconds, got {type(ms).__name__}: {ms!r}"
            ) from None
        if not finite:
            self._drop(ms)
            return
        try:
            row = self._local.row
        except AttributeError:
            row = self._shards.new_row()
        if ms > 0.0:
            row[_SUM] += ms
        bucket = bisect_left(_BOUNDS, ms)
        row[bucket] += 1
        if ms < row[_MIN]:
            row[_MIN] = ms
        if ms > row[_MAX]:
            row[_MAX] = ms
        var = _ex.context_var
        if var is None:  # exemplars are off
            return
        if trace_id:
            self._exemplars[bucket] = (ms, time.time_ns(), trace_id, span_id)
            return
        context = var.get(None)
        ids = _ex.sampled_ids(context) if context else None
        if ids is not None:
            self._exemplars[bucket] = (ms, time.time_ns(), *ids)

    def batch(self, size: int = DEFAULT_SIZE, owner: object = None) -> LatencyBatch:
        """A :class:`LatencyBatch` for one producer's hot path (values in seconds).

        Every snapshot of this series first flushes it.  ``owner`` (an event
        loop, a thread): once it no longer exists, the next snapshot flushes the
        batch a last time and forgets it; otherwise :meth:`LatencyBatch.close` does.
        """
        made = LatencyBatch(self, size, owner)
        self._batches = (*self._batches, made)
        return made

    def forget_batch(self, batch: LatencyBatch) -> None:
        """Stop flushing ``batch`` at snapshots (see :meth:`LatencyBatch.close`)."""
        self._batches = tuple(b for b in self._batches if b is not batch)

    def observe_many_seconds(self, values: Iterable[float]) -> None:
        """Record latencies given in **seconds**, binned together (see ``_batch``).

        The same buckets, min and max as one :meth:`observe` of ``v * 1000`` per
        value, without exemplars.
        """
        secs = sorted(values)
        if not secs:
            return
        total = sum(secs)
        # NaN makes the total NaN; sorted, the first value is the least one.
        if not (secs[0] >= 0.0 and total < _INF):
            for value in secs:
                self.observe(value * 1000.0)
            return
        try:
            row = self._local.row
        except AttributeError:
            row = self._shards.new_row()
        row[_SUM] += total * 1000.0
        n = len(secs)
        below = 0
        # Only the buckets that get values are visited (latencies crowd into a few): the
        # least value not yet counted goes where observe() puts it, the first bound
        # >= v * 1000, and that bucket's values end at the bound's split, found in
        # seconds (no product per value) and then moved, rarely, past any value whose
        # product rounds to the other side of the bound (v * 1000 is monotonic in v).
        while below < n:
            bucket = bisect_left(_BOUNDS, secs[below] * 1000.0)
            if bucket == _NBUCKETS - 1:  # past the last bound: the rest
                row[bucket] += n - below
                break
            bound, bound_s = _BOUND_PAIRS[bucket]
            upto = bisect_right(secs, bound_s, below)
            while upto < n and secs[upto] * 1000.0 <= bound:
                upto += 1
            while upto > below and secs[upto - 1] * 1000.0 > bound:
                upto -= 1
            row[bucket] += upto - below
            below = upto
        low, high = secs[0] * 1000.0, secs[-1] * 1000.0
        if low < row[_MIN]:
            row[_MIN] = low
        if high > row[_MAX]:
            row[_MAX] = high

    def snapshot(self) -> HistogramPoint:
        """The cumulative state of this series."""
        if self._batches:
            for batch in self._batches:
                batch.flush()
                if batch.orphaned:
                    self.forget_batch(batch)
        row = self._shards.merged()
        buckets = tuple(map(int, row[:_NBUCKETS]))
        count = sum(buckets)
        return HistogramPoint(
            attributes=self.attributes,
            start_ns=self.start_ns,
            count=count,
            sum=float(row[_SUM]),
            bucket_counts=buckets,
            min=float(row[_MIN]) if count else 0.0,
            max=float(row[_MAX]) if count else 0.0,
            exemplars=(
                tuple(None if e is None else Exemplar(*e) for e in self._exemplars)
                if any(self._exemplars)
                else ()
            ),
        )


class RejectionCounter:
    """One series of ``scheduler.rejected_tasks`` (one reason, maybe one tenant)."""

    __slots__ = ("_local", "_shards", "attributes", "start_ns")

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self.attributes = attributes
        self.start_ns = time.time_ns()
        self._shards = Shards([0], _fold_sum)
        self._local = self._shards.local

    def add(self, count: int = 1) -> None:
        """Count ``count`` refused tasks (default one)."""
        if type(count) is not int or count < 0:
            raise _bad_count(count)
        try:
            row = self._local.row
        except AttributeError:
            row = self._shards.new_row()
        row[0] += count

    def snapshot(self) -> CounterPoint:
        """The cumulative count of this series."""
        return CounterPoint(self.attributes, self.start_ns, int(self._shards.merged()[0]))


def _bad_count(count: object) -> Exception:
    if type(count) is not int:
        return TypeError(f"count must be an int, got {type(count).__name__}: {count!r}")
    return ValueError(f"count must be >= 0, got {count}")


class QueueLengthGauge:
    """One series of ``scheduler.queue.length``: set a value, or give a callback.

    With a callback, the value is read at collection time, which costs the
    scheduler nothing between collections.  A callback that raises or returns a
    bad value is logged once and its point is left out of that collection.
    """

    __slots__ = ("_callback", "_complained", "_sources", "_value", "attributes")

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self.attributes = attributes
        self._value = 0
        self._callback: Callable[[], int] | None = None
        self._complained = False
        # Several schedulers sharing one name (pools created one per request, say)
        # each add a source; the series reports their sum.  Replaced whole, never
        # mutated, so a collection reads a consistent tuple without a lock.
        self._sources: tuple[Callable[[], int], ...] = ()

    def add_source(self, source: Callable[[], int]) -> Callable[[], None]:
        """Add ``source()`` to the value read at each collection; returns the call that
        removes it again (idempotent).  The series reports the sum of its sources."""
        if not callable(source):
            raise TypeError(f"source must be callable, got {type(source).__name__}")
        self._sources = (*self._sources, source)

        def remove() -> None:
            self._sources = tuple(s for s in self._sources if s is not source)

        self.set_callback(self._sum)
        return remove

    def _sum(self) -> int:
        return sum(source() for source in self._sources)

    def set(self, value: int) -> None:
        """Set the current number of waiting tasks."""
        _check_length(value)
        self._value = value

    def set_callback(self, callback: Callable[[], int] | None) -> None:
        """Read the value from ``callback()`` at each collection (``None`` removes it)."""
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._callback = callback

    def snapshot(self) -> GaugePoint | None:
        """The current value, or ``None`` if the callback failed."""
        callback = self._callback
        if callback is None:
            return GaugePoint(self.attributes, self._value)
        try:
            value = callback()
            _check_length(value)
        except Exception:
            if not self._complained:
                self._complained = True
                _log.exception(
                    "queue-length callback for %s failed; its point is left out "
                    "(logged once per series)",
                    dict(self.attributes),
                )
            return None
        return GaugePoint(self.attributes, value)


def _check_length(value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"queue length must be an int, got {type(value).__name__}: {value!r}")
    if value < 0:
        raise ValueError(f"queue length must be >= 0, got {value}")
