"""The runtime's hooks implemented with the metric contract.

Everything is read at collection time from :class:`RuntimeStats`, once per
collection: the Ms count schedule latency into their own rows with the
contract's bucket bounds (no call per task), and the adapter reports the sums
as pre-aggregated histograms, like the runtime's counters and gauges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from schedobs.contract import (
    COMPLETED_TASKS,
    HANDOFFS,
    LATENCY_BOUNDARIES_MS,
    PREEMPTIONS,
    PROCESSOR_STATE,
    PROCESSORS,
    QUEUE_LENGTH,
    SCALE_DIRECTION,
    SCALE_EVENTS,
    SCHEDULE_LATENCY,
    SCHEDULER_QUEUE,
    STEALS,
    TASK_STATE,
    TASKS,
    THREAD_STATE,
    THREADS,
    Exemplar,
    HistogramValue,
    Observation,
    SchedulerMetrics,
)

from ._stats import RuntimeStats

__all__ = ["ContractHooks"]


class ContractHooks:
    """Feeds a :class:`~schedobs.contract.SchedulerMetrics` from a runtime."""

    def __init__(self, metrics: SchedulerMetrics) -> None:
        if metrics.kind != "gmp":
            raise ValueError(f"a GMP runtime reports scheduler.kind=gmp, got {metrics.kind!r}")
        self.metrics = metrics
        # Series for every refusal the runtime can make, at zero from the start
        # (so rate() and absent() work before the first refusal).
        metrics.rejections("shutdown")
        metrics.rejections("queue_full")

    def latency_bounds_ns(self) -> tuple[int, ...]:
        # Every contract bound is a whole number of nanoseconds.
        return tuple(round(b * 1_000_000) for b in LATENCY_BOUNDARIES_MS)

    def rejected(self, reason: str, tenant: str | None) -> None:
        self.metrics.reject(reason, tenant=tenant)

    def bind(self, stats: Callable[[], RuntimeStats]) -> None:
        def observe() -> Iterator[Observation]:
            s = stats()
            for queue, lat in s.latency.items():
                value: HistogramValue = (
                    lat.bucket_counts, lat.sum_ns / 1e6, lat.min_ns / 1e6, lat.max_ns / 1e6,
                )  # fmt: skip
                if lat.exemplars:
                    value = (*value, _exemplars(lat.exemplars))
                yield SCHEDULE_LATENCY, {SCHEDULER_QUEUE: queue}, value
            yield QUEUE_LENGTH, {SCHEDULER_QUEUE: "global"}, s.queued_global
            yield QUEUE_LENGTH, {SCHEDULER_QUEUE: "local"}, s.queued_local
            yield PROCESSORS, {PROCESSOR_STATE: "busy"}, s.processors - s.processors_idle
            yield PROCESSORS, {PROCESSOR_STATE: "idle"}, s.processors_idle
            for state, n in (
                ("running", s.threads_running),
                ("spinning", s.threads_spinning),
                ("syscall", s.threads_syscall),
                ("idle", s.threads_idle),
            ):
                yield THREADS, {THREAD_STATE: state}, n
            for state, n in (
                ("runnable", s.tasks_runnable),
                ("running", s.tasks_running),
                ("syscall", s.tasks_syscall),
                ("waiting", s.tasks_waiting),
            ):
                yield TASKS, {TASK_STATE: state}, n
            yield STEALS, {}, s.steals
            yield HANDOFFS, {}, s.handoffs
            yield PREEMPTIONS, {}, s.preemptions
            yield COMPLETED_TASKS, {}, s.completed
            if s.scale_outs or s.scale_ins:
                yield SCALE_EVENTS, {SCALE_DIRECTION: "out"}, s.scale_outs
                yield SCALE_EVENTS, {SCALE_DIRECTION: "in"}, s.scale_ins

        self.metrics.register_callback(observe)

    def close(self) -> None:
        # The series stay registered: a stopped runtime's final counts remain
        # visible to scrapes.  ``runtime.metrics.close()`` removes them.
        pass


def _exemplars(
    kept: tuple[tuple[int, int, int, int] | None, ...],
) -> tuple[Exemplar | None, ...]:
    """The runtime's exemplars (ns) as the contract's (ms)."""
    return tuple(None if e is None else Exemplar(e[0] / 1e6, e[1], e[2], e[3]) for e in kept)
