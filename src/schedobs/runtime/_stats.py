"""A point-in-time picture of a runtime, and the hook interface instrumentation plugs into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ._processor import P_IDLE

if TYPE_CHECKING:
    from ._machine import M
    from ._sched import Scheduler

__all__ = ["LatencyCounts", "RuntimeHooks", "RuntimeStats", "collect"]


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


def collect(sched: Scheduler) -> RuntimeStats:
    """Read ``sched`` without stopping it (each figure exact, microseconds apart)."""
    procs = sched.procs
    ms = list(sched.all_ms)
    queued_local = sum(p.queued() for p in procs)
    queued_global = len(sched.global_queue)
    live_ms = [m for m in ms if not m.exited]
    syscall = sum(1 for m in live_ms if m.in_syscall)
    spinning = sum(1 for m in live_ms if m.spinning)
    running = sum(1 for m in live_ms if m.curg is not None and not m.in_syscall)
    idle_threads = max(len(live_ms) - syscall - spinning - running, 0)
    submitted = sched.submitted()
    completed = sum(m.completed for m in ms)
    runnable = queued_local + queued_global
    waiting = max(submitted - completed - runnable - running - syscall, 0)
    with sched.lock:
        rejected = dict(sched.rejected)
    monitor = sched.monitor
    return RuntimeStats(
        processors=sched.nprocs,
        processors_idle=sum(1 for p in procs if p.status == P_IDLE and not p.retiring),
        threads_running=running,
        threads_spinning=spinning,
        threads_syscall=syscall,
        threads_idle=idle_threads,
        tasks_runnable=runnable,
        tasks_running=running,
        tasks_syscall=syscall,
        tasks_waiting=waiting,
        queued_global=queued_global,
        queued_local=queued_local,
        submitted=submitted,
        completed=completed,
        rejected_queue_full=rejected["queue_full"],
        rejected_shutdown=rejected["shutdown"],
        steals=sum(m.steals for m in ms),
        stolen_tasks=sum(m.stolen for m in ms),
        handoffs=sched.handoffs,
        preemptions=sum(m.preemptions for m in ms),
        preempt_flags=monitor.preempt_flags,
        long_running=sum(m.long_running for m in ms),
        threads_created=sched.threads_created,
        monitor_ticks=monitor.ticks,
        scale_outs=sched.scale_outs,
        scale_ins=sched.scale_ins,
        latency=_latency(sched.latency_bounds, ms),
    )


def _latency(bounds: tuple[int, ...] | None, ms: list[M]) -> dict[str, LatencyCounts]:
    if bounds is None:
        return {}
    n = len(bounds) + 1
    out: dict[str, LatencyCounts] = {}
    for source, queue in ((0, "global"), (1, "local")):
        counts = [0] * n
        total = 0
        low = high = None
        for m in ms:
            if m.latency is None:
                continue
            # A copy first: the M keeps writing; what we read is a consistent
            # enough prefix and the next read sees the rest.
            row = list(m.latency.rows[source])
            for i in range(n):
                counts[i] += row[i]
            if sum(row[:n]):
                total += row[n]
                low = row[n + 1] if low is None else min(low, row[n + 1])
                high = row[n + 2] if high is None else max(high, row[n + 2])
        # Exemplars: per bucket, the newest any M kept.
        kept: list[tuple[int, int, int, int] | None] = [None] * n
        for m in ms:
            if m.latency is not None:
                for i, e in enumerate(m.latency.exemplars[source]):
                    if e is not None and (kept[i] is None or e[1] > kept[i][1]):  # type: ignore[index]
                        kept[i] = e
        out[queue] = LatencyCounts(
            bounds, tuple(counts), total, low or 0, high or 0,
            tuple(kept) if any(kept) else (),
        )  # fmt: skip
    return out
