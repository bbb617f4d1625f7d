"""A point-in-time picture of a runtime, and the hook interface instrumentation plugs into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RuntimeHooks", "RuntimeStats"]


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


class RuntimeHooks(Protocol):
    """What a runtime reports to its instrumentation.

    A runtime without hooks takes no time stamps and makes no calls: the
    instrumentation costs nothing unless it is used.
    """

    def thread_recorders(self) -> tuple[Callable[[int], None], Callable[[int], None]]:
        """Called once on each M's thread as it starts: two recorders of schedule
        latency in integer ns, for tasks that waited in the global queue and in a
        local queue.  The M calls them from its hot loop, on that thread only."""
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
