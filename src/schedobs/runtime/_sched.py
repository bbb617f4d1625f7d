"""The scheduler's shared state and its slow paths: idle lists, wake-ups, hand-off.

Go's rules, kept (``runtime/proc.go``):

- an M runs tasks only while it holds a P; at most ``procs`` Ps exist;
- ``wakep``: when work appears and a P is idle, start one *spinning* M unless
  one is already spinning (it will find the work, and wake the next one if it
  was the last spinner) — so a burst of submissions costs one wake-up;
- an M that finds no work releases its P, re-checks every queue (a submitter
  may have seen no idle P a moment ago), then parks;
- ``handoff``: a P taken from an M blocked in a system call goes to another M
  if there is work for it, else to the idle list.

The lock guards the idle lists, the spinning count and P state transitions.
The fast paths (running the next task, submitting) never take it.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._processor import P_IDLE, P_RUNNING, P_SYSCALL, P

if TYPE_CHECKING:
    from ._machine import M
    from ._monitor import Monitor
    from ._task import Task

__all__ = ["Scheduler"]


class Scheduler:
    """All Ps and Ms of one runtime and the rules that move them."""

    def __init__(
        self,
        procs: int,
        max_threads: int,
        name: str,
        make_m: Callable[[Scheduler, int], M],
    ) -> None:
        self.name = name
        self.nprocs = procs
        self.max_threads = max_threads
        self.lock = threading.Lock()
        self.global_queue: deque[Task] = deque()
        # Replaced, never mutated, when the pool resizes: readers iterate a snapshot.
        self.groups = 1
        self.procs = [P(i) for i in range(procs)]
        self._next_pid = procs
        self.idle_ps: list[P] = list(reversed(self.procs))
        self.idle_ms: list[M] = []
        self.p_waiters: list[M] = []  # Ms back from a syscall, waiting for any P
        self.all_ms: list[M] = []
        self.nmspinning = 0
        self.stopping = False
        self.monitor: Monitor | None = None
        self._make_m = make_m
        self._mids = itertools.count()
        self.rng = random.Random()
        # Counters written under the lock (slow paths only).
        self.handoffs = 0
        self.threads_created = 0

    # --- wake-ups ---------------------------------------------------------------

    def wakep(self) -> None:
        """Start a spinning M on an idle P, if there is one and nobody spins yet."""
        if not self.idle_ps or self.nmspinning:
            return  # the common case, decided without the lock
        with self.lock:
            if not self.idle_ps or self.nmspinning or self.stopping:
                return
            p = self.idle_ps.pop()
            self.nmspinning += 1
            if not self._startm_locked(p, spinning=True):
                self.nmspinning -= 1
                self.idle_ps.append(p)

    def _startm_locked(self, p: P, spinning: bool) -> bool:
        """Give ``p`` to an idle M (or a new one); ``False`` if the thread cap is reached."""
        p.status = P_RUNNING
        if self.idle_ms:
            m = self.idle_ms.pop()
            m.nextp = p
            m.spinning = spinning
            p.m = m
            m.unpark()
        else:
            if len(self.all_ms) >= self.max_threads:
                p.status = P_IDLE
                return False
            m = self._make_m(self, next(self._mids))
            m.nextp = p
            m.spinning = spinning
            p.m = m
            self.all_ms.append(m)
            self.threads_created += 1
            m.start()
        monitor = self.monitor
        if monitor is not None:
            monitor.kick_if_asleep()
        return True

    def take_idle_p_locked(self, m: M) -> P | None:
        """Hand an idle P to ``m`` (caller holds the lock), or ``None`` if none is idle."""
        if not self.idle_ps:
            return None
        p = self.idle_ps.pop()
        p.status = P_RUNNING
        p.m = m
        m.p = p
        return p

    def put_idle_p_locked(self, p: P) -> None:
        """``p`` has no M: give it to an M waiting after a syscall, else to the idle list."""
        p.m = None
        if p.retiring:
            self._drop_locked(p)
            return
        if self.p_waiters:
            m = self.p_waiters.pop(0)
            p.status = P_RUNNING
            p.m = m
            m.nextp = p
            m.unpark()
            return
        p.status = P_IDLE
        self.idle_ps.append(p)

    # --- elastic pool ------------------------------------------------------------------

    def resize(self, n: int) -> None:
        """Grow to or shrink towards ``n`` Ps.  Busy Ps leave at their M's next check."""
        with self.lock:
            active = [p for p in self.procs if not p.retiring]
            if n > len(active):
                fresh = [P(self._next_pid + i) for i in range(n - len(active))]
                for p in fresh:
                    p.group = p.id % self.groups
                self._next_pid += len(fresh)
                self.procs = [*self.procs, *fresh]
                self.idle_ps.extend(fresh)
            else:
                for p in sorted(active, key=lambda q: q.id)[n:]:
                    p.retiring = True
                    if p in self.idle_ps:
                        self.idle_ps.remove(p)
                        self._drop_locked(p)
            self.nprocs = n
        self.wakep()

    def _drop_locked(self, p: P) -> None:
        """Remove a retiring P; whatever waited on it moves to the global queue."""
        if p.runnext is not None:
            self.global_queue.append(p.runnext)
            p.runnext = None
        while p.runq:
            try:
                self.global_queue.append(p.runq.popleft())
            except IndexError:
                break
        p.status = P_IDLE
        p.m = None
        self.procs = [q for q in self.procs if q is not p]

    def has_work(self) -> bool:
        """Whether any queue holds a runnable task (racy; for decisions that re-check)."""
        if self.global_queue:
            return True
        return any(p.runq or p.runnext is not None for p in self.procs)

    # --- system-call hand-off ------------------------------------------------------

    def handoff_locked(self, p: P) -> None:
        """Retake ``p`` from its M blocked in a system call and put it to work."""
        p.status = P_IDLE
        p.m = None
        self.handoffs += 1
        if p.retiring:
            self._drop_locked(p)
            return
        has_work = bool(p.runq) or p.runnext is not None or bool(self.global_queue)
        if has_work and self._startm_locked(p, spinning=False):
            return
        self.put_idle_p_locked(p)

    def reacquire_after_syscall(self, m: M, p: P) -> P | None:
        """An M returns from a system call: its own P if still reserved, else an idle one."""
        with self.lock:
            if p.status == P_SYSCALL and p.m is m:
                p.status = P_RUNNING
                return p
            return self.take_idle_p_locked(m)

    # --- lifecycle -------------------------------------------------------------------

    def set_groups(self, groups: int) -> None:
        """Assign Ps round-robin to ``groups`` placement groups."""
        self.groups = groups
        for p in self.procs:
            p.group = p.id % groups

    def start_warm(self, n: int) -> None:
        """Pre-start ``n`` Ms that park idle, so the first tasks skip thread creation."""
        with self.lock:
            for _ in range(max(0, min(n, self.max_threads - len(self.all_ms)))):
                m = self._make_m(self, next(self._mids))
                self.all_ms.append(m)
                self.threads_created += 1
                m.start()

    def stop(self) -> None:
        """Make every M exit once the queues are empty (they drain first)."""
        with self.lock:
            self.stopping = True
            parked = list(self.idle_ms) + list(self.p_waiters)
            self.idle_ms.clear()
            self.p_waiters.clear()
        for m in parked:
            m.nextp = None
            m.unpark()

    def random_victims(self, me: P) -> list[P]:
        """Every other P, starting at a random one (the steal order); with placement
        groups, the thief's own group first."""
        procs = self.procs  # a snapshot: resize() replaces the list, never mutates it
        n = len(procs)
        if n == 1:
            return []
        start = self.rng.randrange(n)
        order = [procs[(start + i) % n] for i in range(n) if procs[(start + i) % n] is not me]
        if self.groups > 1:  # stable: the random order holds within each part
            order.sort(key=lambda victim: victim.group != me.group)
        return order
