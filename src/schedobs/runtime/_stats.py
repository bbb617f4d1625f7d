"""A point-in-time picture of a runtime, and the hook interface instrumentation plugs into."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from schedobs._checks import is_int

if TYPE_CHECKING:
    from ._latency import LatencyRecorder

__all__ = ["LatencyCounts", "RuntimeHooks", "RuntimeStats", "latency_bounds", "merge_latency"]


@dataclass(frozen=True)
class LatencyCounts:
    """Cumulative schedule latency of the tasks that waited in one kind of queue.

    ``bucket_counts[i]`` counts latencies ``d`` (ns) with
    ``bounds_ns[i-1] < d <= bounds_ns[i]``; the last bucket is the overflow.
    ``count`` equals ``sum(bucket_counts)``; ``min_ns``/``max_ns`` are 0 while empty.
    """

    bounds_ns: tuple[int, ...]
    bucket_counts: tuple[int, ...]
    sum_ns: int
    min_ns: int
    max_ns: int
    #: Per bucket, the latest latency taken in a sampled trace, as
    #: ``(latency_ns, time_ns, trace_id, span_id)``, or ``None`` (empty: none kept).
    exemplars: tuple[tuple[int, int, int, int] | None, ...] = ()

    @property
    def count(self) -> int:
        return sum(self.bucket_counts)


@dataclass(frozen=True)
class RuntimeStats:
    """Counts of a runtime at one moment; counters are cumulative since it started.

    Gauges are read without stopping the runtime, so they are each exact but
    may be a few microseconds apart.
    """

    processors: int
    processors_idle: int
    threads_running: int
    threads_spinning: int
    threads_syscall: int
    threads_idle: int
    tasks_runnable: int
    tasks_running: int
    tasks_syscall: int
    tasks_waiting: int
    queued_global: int
    queued_local: int
    submitted: int
    completed: int
    rejected_queue_full: int
    rejected_shutdown: int
    steals: int
    stolen_tasks: int
    handoffs: int
    preemptions: int
    preempt_flags: int
    long_running: int
    threads_created: int
    monitor_ticks: int
    #: Times the processor pool grew and shrank (``Runtime.resize``, by hand or
    #: by an :class:`Autoscaler`).
    scale_outs: int
    scale_ins: int
    #: Schedule latency by the queue the tasks waited in (``global``, ``local``);
    #: empty unless the runtime has hooks.
    latency: dict[str, LatencyCounts]


class RuntimeHooks(Protocol):
    """What a runtime reports to its instrumentation.

    A runtime without hooks takes no time stamps and makes no calls: the
    instrumentation costs nothing unless it is used.
    """

    def latency_bounds_ns(self) -> tuple[int, ...]:
        """Histogram bucket upper bounds (inclusive, ns) for schedule latency.

        Each M counts latencies into its own rows with these bounds (no call per
        task); :attr:`RuntimeStats.latency` adds the rows up when read.
        """
        ...

    def rejected(self, reason: str, tenant: str | None) -> None:
        """A task was refused (``queue_full`` or ``shutdown``)."""
        ...

    def bind(self, stats: Callable[[], RuntimeStats]) -> None:
        """Called once: ``stats()`` reads the runtime at collection time."""
        ...

    def close(self) -> None:
        """The runtime has shut down."""
        ...


def latency_bounds(hooks: RuntimeHooks) -> tuple[int, ...]:
    """``hooks.latency_bounds_ns()`` as the Ms count with it: a tuple of positive,
    strictly increasing integers (any iterable of them is taken)."""
    read: Callable[[], Iterable[object]] = hooks.latency_bounds_ns
    given = tuple(read())
    bounds = tuple(b for b in given if is_int(b) and b > 0)
    if len(bounds) != len(given) or any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ValueError(
            "RuntimeHooks.latency_bounds_ns() must give positive, strictly increasing "
            f"integers (nanoseconds), got {given!r}"
        )
    return bounds


def merge_latency(
    bounds: tuple[int, ...] | None, recorders: Sequence[LatencyRecorder | None]
) -> dict[str, LatencyCounts]:
    """The schedule-latency counts of every M's recorder, merged per queue."""
    if bounds is None:
        return {}
    ms = [r for r in recorders if r is not None]
    n = len(bounds) + 1
    out: dict[str, LatencyCounts] = {}
    for source, queue in ((0, "global"), (1, "local")):
        counts = [0] * n
        total = 0
        low = high = None
        for recorder in ms:
            # A copy first: the M keeps writing; what we read is a consistent
            # enough prefix and the next read sees the rest.
            row = list(recorder.rows[source])
            for i in range(n):
                counts[i] += row[i]
            if sum(row[:n]):
                total += row[n]
                low = row[n + 1] if low is None else min(low, row[n + 1])
                high = row[n + 2] if high is None else max(high, row[n + 2])
        # Exemplars: per bucket, the newest any M kept.
        kept: list[tuple[int, int, int, int] | None] = [None] * n
        for recorder in ms:
            for i, e in enumerate(recorder.exemplars[source]):
                if e is not None and (kept[i] is None or e[1] > kept[i][1]):  # type: ignore[index]
                    kept[i] = e
        out[queue] = LatencyCounts(
            bounds, tuple(counts), total, low or 0, high or 0,
            tuple(kept) if any(kept) else (),
        )  # fmt: skip
    return out
