"""A point-in-time picture of a runtime, and the hook interface instrumentation plugs into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LatencyCounts", "RuntimeHooks", "RuntimeStats"]


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
    #: Elastic pool decisions (0 without an :class:`Autoscaler`).
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
