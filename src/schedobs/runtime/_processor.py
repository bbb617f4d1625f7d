"""P: a logical processor.  An M must hold a P to run tasks; there are ``procs`` of them.

A P owns a bounded local run queue and a ``runnext`` slot (the task made
runnable most recently by the task running on this P, run next for locality,
as Go does for a goroutine that starts or wakes another).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._machine import M
    from ._task import Task

__all__ = ["P_IDLE", "P_RUNNING", "P_SYSCALL", "P"]

P_IDLE: Final = 0  # in the idle list, no M
P_RUNNING: Final = 1  # held by an M that runs tasks
P_SYSCALL: Final = 2  # its M is in a blocking call; the monitor may retake it


class P:
    """A processor: its local queue, its ``runnext`` slot, its state and its M."""

    __slots__ = (
        "group",
        "id",
        "m",
        "retiring",
        "runnext",
        "runq",
        "schedtick",
        "status",
        "syscall_since",
    )

    def __init__(self, pid: int) -> None:
        self.id = pid
        self.runq: deque[Task] = deque()
        self.runnext: Task | None = None
        self.status = P_IDLE
        self.m: M | None = None
        #: Incremented on every scheduling round; the monitor compares it between
        #: ticks to see a task running too long, without a clock read per task.
        self.schedtick = 0
        self.syscall_since = 0
        #: Set when the pool shrinks: the P leaves at its M's next check.
        self.retiring = False
        #: Placement group (a NUMA node, say): stealing tries the same group first.
        self.group = 0

    def queued(self) -> int:
        """Runnable tasks waiting on this P (local queue plus ``runnext``)."""
        return len(self.runq) + (self.runnext is not None)

    def __repr__(self) -> str:
        return f"<P{self.id} status={self.status} queued={self.queued()}>"
