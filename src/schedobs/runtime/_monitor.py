"""The monitor (Go's ``sysmon``) and the timer heap.

One background thread that needs no P; it decides when, the scheduler decides
what:

- **retake**: every tick it asks :meth:`Scheduler.retake` to hand a P whose M
  has been in a blocking call longer than the threshold to another M when
  there is work for it (the rule is the scheduler's), so one blocked task
  never stalls the others;
- **preempt**: a P whose scheduling tick has not moved for 10 ms is running
  one task too long; the task is flagged and yields at its next checkpoint;
- **timers**: sleeping tasks are made runnable when their deadline passes.

Its tick starts at 20 µs and doubles after a run of quiet ticks, up to 10 ms,
as Go's does.  With no P busy and no timer pending it sleeps until kicked (a
P starting work kicks it), so an idle runtime costs no CPU.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import TYPE_CHECKING

from ._processor import P_IDLE, P_RUNNING

if TYPE_CHECKING:
    from ._sched import Scheduler
    from ._task import Task

__all__ = ["Monitor"]

_MIN_DELAY_NS = 20_000
_MAX_DELAY_NS = 10_000_000
_QUIET_TICKS_BEFORE_BACKOFF = 20


class Monitor:
    """The runtime's monitor thread."""

    def __init__(
        self,
        sched: Scheduler,
        *,
        syscall_threshold_ns: int = _MIN_DELAY_NS,
        preempt_after_ns: int = 10_000_000,
    ) -> None:
        self._sched = sched
        self._threshold = syscall_threshold_ns
        self._preempt_after = preempt_after_ns
        self._cond = threading.Condition(threading.Lock())
        self._timers: list[tuple[int, int, Task]] = []
        self._seq = itertools.count()
        self._kicked = False
        self._stopped = False
        #: True while waiting longer than a millisecond (or indefinitely).
        self.asleep = True
        #: True while waiting with no timeout: nothing to watch, no timer pending.
        self.parked = False
        self.preempt_flags = 0
        self.ticks = 0
        self._seen: dict[int, tuple[int, int]] = {}  # P id -> (schedtick, first seen ns)
        self.thread = threading.Thread(target=self._run, name=f"{sched.name}-sysmon", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    def kick_if_asleep(self) -> None:
        """Shorten a long sleep: a P started work or a task entered a blocking call."""
        if self.asleep:
            with self._cond:
                self._kicked = True
                self.parked = False  # about to wake: not parked any more
                self._cond.notify()

    def add_timer(self, deadline_ns: int, task: Task) -> None:
        """Make ``task`` runnable at ``deadline_ns`` (on the runtime's clock)."""
        with self._cond:
            heapq.heappush(self._timers, (deadline_ns, next(self._seq), task))
            if self._timers[0][2] is task:
                self._kicked = True
                self.parked = False
                self._cond.notify()

    def _stop_requested(self) -> bool:
        return self._stopped

    def pending_timers(self) -> int:
        with self._cond:
            return len(self._timers)

    # --- the loop ----------------------------------------------------------------

    def _active(self) -> bool:
        return any(p.status != P_IDLE for p in self._sched.procs)

    def _run(self) -> None:
        delay = _MIN_DELAY_NS
        quiet = 0
        sched = self._sched
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = sched.clock()
                active = self._active()
                wait_ns: int | None = delay if active else None
                if self._timers:
                    until = max(self._timers[0][0] - now, 0)
                    wait_ns = until if wait_ns is None else min(wait_ns, until)
                self.asleep = wait_ns is None or wait_ns > 1_000_000
                self.parked = wait_ns is None and not self._kicked
                if not self._kicked and wait_ns != 0:
                    self._cond.wait(None if wait_ns is None else wait_ns / 1e9)
                kicked, self._kicked = self._kicked, False
                self.asleep = False
                self.parked = False
                if self._stop_requested():
                    return
                now = sched.clock()
                due: list[Task] = []
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
            self.ticks += 1
            for task in due:
                sched.make_runnable(task)
            acted = sched.retake(now, self._threshold) + self._preempt(now)
            if acted or kicked:
                delay = _MIN_DELAY_NS
                quiet = 0
            else:
                quiet += 1
                if quiet > _QUIET_TICKS_BEFORE_BACKOFF:
                    delay = min(delay * 2, _MAX_DELAY_NS)

    def _preempt(self, now: int) -> int:
        flagged = 0
        seen = self._seen
        for p in self._sched.procs:
            if p.status != P_RUNNING:
                seen.pop(p.id, None)
                continue
            tick = p.schedtick
            last = seen.get(p.id)
            if last is None or last[0] != tick:
                seen[p.id] = (tick, now)
                continue
            if now - last[1] >= self._preempt_after:
                m = p.m
                g = m.curg if m is not None else None
                if g is not None and not g.preempt:
                    g.preempt = True
                    self.preempt_flags += 1
                    flagged += 1
        return flagged
