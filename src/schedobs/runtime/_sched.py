"""The scheduler: the one owner of a runtime's scheduling state and of every operation on it.

Ms (threads) and the monitor never move tasks or processors themselves; they
call the operations here, as trio's run loop calls ``Runner.reschedule`` and
``task_exited``.  Each rule therefore lives in one place, and every way a task
becomes runnable ends in :meth:`Scheduler.runnable`::

    submit ─────────────► global queue (outside) / runnext (from a running task)
    make_runnable ──────► runnext of the waker's P, else the global queue
    runnable (a yield) ─► the tail of the yielding M's P
    preempt ────────────► the global queue
    find_runnable ──────► global batch ─► steal half ─► release the P ─► park
    entersyscall / exitsyscall / handoff_locked: the P of a blocked M moves on
    close / maybe_finish / drain_at_exit: nothing accepted is dropped

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

import enum
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from schedobs._shards import Shards

from ._errors import RejectedError
from ._latency import seconds_clock
from ._monitor import Monitor
from ._ops import tls
from ._processor import P_IDLE, P_RUNNING, P_SYSCALL, P
from ._runqueue import FROM_GLOBAL, FROM_LOCAL, LOCAL_CAPACITY, steal_half, take_batch
from ._stats import RuntimeHooks, RuntimeStats, latency_bounds, merge_latency
from ._task import SyscallState, Task, TaskState, record_syscall

if TYPE_CHECKING:
    from ._machine import M
    from ._runtime import Runtime

__all__ = ["RESCAN", "Rescan", "Scheduler"]

#: A system call this long loses its P even when others could take its global work.
LONG_SYSCALL_NS: Final = 10_000_000

_RUNNABLE: Final[TaskState] = TaskState.RUNNABLE
_RUNNING: Final[TaskState] = TaskState.RUNNING
_WAITING: Final[TaskState] = TaskState.WAITING
_SYSCALL: Final[TaskState] = TaskState.SYSCALL
_log: Final = logging.getLogger("schedobs")


class Rescan(enum.Enum):
    """``find_runnable``'s answer when the M holds a P again: look at its queues first."""

    RESCAN = 0


RESCAN: Final = Rescan.RESCAN


def _sum_rows(into: list[float], row: list[float]) -> None:
    into[0] += row[0]


class Scheduler:
    """All Ps, Ms and queues of one runtime, and the operations that move them."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        procs: int,
        max_threads: int,
        max_queued: int | None,
        name: str,
        hooks: RuntimeHooks | None,
        make_m: Callable[[Scheduler, int], M],
        syscall_threshold_ns: int,
        preempt_after_ns: int,
        pin_cpus: Sequence[int],
        groups: int,
        clock: Callable[[], int] = time.perf_counter_ns,
        seed: int | None = None,
    ) -> None:
        #: The :class:`~schedobs.runtime.Runtime` façade (``current_runtime()``).
        self.runtime = runtime
        self.name = name
        self.nprocs = procs
        self.max_threads = max_threads
        self.max_queued = max_queued
        self.pin_cpus = list(pin_cpus)
        self.hooks = hooks
        #: Whether tasks are time-stamped when they become runnable (only when
        #: instrumented: an uninstrumented runtime reads no clock per task).
        self.timed = hooks is not None
        self.latency_bounds: tuple[int, ...] | None = (
            latency_bounds(hooks) if hooks is not None else None
        )
        self.lock = threading.Lock()
        self.global_queue: deque[Task] = deque()
        # Replaced, never mutated, when the pool resizes: readers iterate a snapshot.
        self.procs = [P(i) for i in range(procs)]
        self.groups = 1
        self.set_groups(groups)
        self._next_pid = procs
        self.idle_ps: list[P] = list(reversed(self.procs))
        self.idle_ms: list[M] = []
        self.p_waiters: list[M] = []  # Ms back from a syscall, waiting for any P
        self.all_ms: list[M] = []
        self.nmspinning = 0
        self._make_m = make_m
        self._mids = itertools.count()
        #: Nanoseconds, monotonic: every time stamp of the runtime (latency, timers,
        #: deadlines, system calls).  Injectable, as the seed, for deterministic tests.
        self.clock = clock
        #: The same clock in seconds, read twice per instrumented task (see
        #: :func:`._latency.seconds_clock`: a float costs less to make than an int).
        self.stamp = seconds_clock(clock)
        #: Picks stealing victims (seeded: the same order every run).
        self.rng = random.Random(seed)
        # Lifecycle: closing (no new work from outside), finished (every accepted
        # task done), stopping (Ms exit).
        self.closing = False
        self.finished = threading.Event()
        self.stopping = False
        self.forked = False
        #: This scheduler's entry in the exit and fork registry (see ``_process``).
        self.registration: object = None
        # Counters: created per submitting thread; the rest under the lock.
        self._created = Shards([0], _sum_rows)
        self._created_local = self._created.local
        self.rejected = {"queue_full": 0, "shutdown": 0}
        self.handoffs = 0
        self.threads_created = 0
        self.scale_outs = 0
        self.scale_ins = 0
        self.monitor = Monitor(
            self, syscall_threshold_ns=syscall_threshold_ns, preempt_after_ns=preempt_after_ns
        )

    def start(self, warm_threads: int) -> None:
        """Start the monitor and ``warm_threads`` parked Ms."""
        self.monitor.start()
        if warm_threads:
            with self.lock:
                for _ in range(max(0, min(warm_threads, self.max_threads - len(self.all_ms)))):
                    self._new_m_locked().start()

    def close_unstarted(self) -> None:
        """Never start: finished at once, every submission refused (a runtime made while
        the interpreter exits, when no thread can start)."""
        self.closing = True
        self.finished.set()

    # --- accepting work -------------------------------------------------------------

    def submit(self, g: Task) -> None:
        """Accept a new task: the global queue from outside, or next on the P of the
        running task that starts it (Go's ``newproc``: ``runnext``, for locality)."""
        m = tls.m
        inside = m is not None and m.curg is not None and m.sched is self
        # A task of ours starting another is part of accepted work: allowed
        # while shutdown drains (fan-out code keeps working), not after.
        if self.closing and not (inside and not self.finished.is_set()):
            self.refuse_closed()
        gq = self.global_queue
        if not inside and self.max_queued is not None and len(gq) >= self.max_queued:
            self.refuse("queue_full", f"the global queue holds {self.max_queued} tasks")
        try:
            self._created_local.row[0] += 1
        except AttributeError:
            self._created.new_row()[0] += 1
        if inside:
            self.make_runnable(g, m)
            return
        self.runnable(g)
        if self.idle_ps and not self.nmspinning:
            self.wakep()

    def refuse(self, reason: str, message: str, error: Exception | None = None) -> None:
        """Count a refusal by its contract reason and raise ``error`` (by default a
        :class:`RejectedError` carrying ``reason`` and ``message``)."""
        with self.lock:
            self.rejected[reason] += 1
        if self.hooks is not None:
            self.hooks.rejected(reason, None)
        raise error if error is not None else RejectedError(reason, message)

    def refuse_closed(self) -> None:
        if self.forked:
            raise RuntimeError(
                f"runtime {self.name!r} was created before os.fork(): its threads did not "
                "survive the fork; create a new Runtime in the child process"
            )
        from ._process import interpreter_exiting

        if interpreter_exiting():
            # The standard executors' exact error, for code written against them.
            message = "cannot schedule new futures after interpreter shutdown"
            self.refuse("shutdown", message, RuntimeError(message))
        self.refuse("shutdown", "cannot schedule new tasks after shutdown")

    # --- making tasks runnable ------------------------------------------------------

    def here(self) -> M | None:
        """The calling thread's M if it runs a task of this scheduler on a P it holds."""
        m = tls.m
        if m is not None and m.sched is self and m.curg is not None and not m.in_syscall:
            return m
        return None

    def runnable(self, g: Task, p: P | None = None, next_in_line: bool = False) -> None:
        """The one way a task becomes runnable; every path below ends here.

        - ``p`` and ``next_in_line``: next on ``p`` (Go's ``runnext``: a task started
          or woken by the task running on ``p`` shares its cache); the task that was
          next moves to ``p``'s local tail;
        - ``p`` alone: ``p``'s local tail (a yield; Go's ``runqput``);
        - neither: the global queue (from outside, preemption, a lost P).

        One overflow policy: a task that does not fit in a full local queue goes to
        the global queue (Go moves half the local queue with it; here only the task
        moves, so a yielding task does not churn 128 others on every yield).  The
        caller wakes an M where one may be needed (``wakep``).
        """
        g.state = _RUNNABLE
        timed = self.timed  # ready and source are read only when timed
        if timed:
            g.ready = self.stamp()
        if p is not None:
            if next_in_line:
                if timed:
                    g.source = FROM_LOCAL
                displaced = p.runnext
                p.runnext = g
                if displaced is None:
                    return
                g = displaced  # the previous next moves on to the local tail
            q = p.runq
            if len(q) < LOCAL_CAPACITY:
                if timed:
                    g.source = FROM_LOCAL
                q.append(g)
                return
        if timed:
            g.source = FROM_GLOBAL
        self.global_queue.append(g)

    def make_runnable(self, g: Task, m: M | None = None) -> None:
        """``g`` became runnable (started, woken, timer fired, back from a call): next
        on ``m``'s P when the task running on ``m`` made it so, else the global queue."""
        self.runnable(g, m.p if m is not None and not m.in_syscall else None, True)
        self.wakep()

    def preempt(self, m: M, g: Task) -> None:
        """The monitor flagged ``g`` and it reached a yield point: the global queue (as Go)."""
        m.preemptions += 1
        g.preempt = False
        self.runnable(g)

    def sleep(self, g: Task, seconds: float) -> None:
        """Park ``g`` on the monitor's timer heap: no M is held while it sleeps."""
        g.state = _WAITING
        self.monitor.add_timer(self.clock() + int(seconds * 1e9), g)

    # --- finding work (an M's slow path) ----------------------------------------------

    def fair_round(self, m: M, p: P) -> Task | Rescan | None:
        """Every ``GLOBAL_CHECK_ROUNDS``-th round of ``m`` on ``p``: hand ``p`` back if it
        retires (``RESCAN``: ``m`` has no P now), else take from the global queue
        first, so that a P busy with its own tasks cannot starve it (Go's
        ``schedtick % 61``).  ``None``: nothing there, ``p``'s own queues next."""
        if p.retiring:  # the pool shrank: hand this P back, find another
            self.retire(m, p)
            return RESCAN
        if self.global_queue:
            return self.take_global(m, p)
        return None

    def take_global(self, m: M, p: P) -> Task | None:
        """A fair batch from the global queue into ``p`` (Go's ``globrunqget``)."""
        g = take_batch(self.global_queue, p.runq, max(self.nprocs, 1))
        if g is not None and m.spinning:
            self._reset_spinning(m)
        return g

    def find_runnable(self, m: M) -> Task | Rescan | None:
        """One search after ``m``'s P ran dry: the global queue, then stealing; with
        nothing found, release the P, re-check, park.

        Returns a task to run; :data:`RESCAN` when ``m`` holds a P again (maybe
        another one, handed off with tasks on it), whose own queues the caller
        must look at first, as Go's M goes back to ``schedule()``; or ``None``
        when the runtime stops.
        """
        p = m.p
        assert p is not None
        g = self.take_global(m, p)
        if g is not None:
            return g
        if not m.spinning:
            busy = self.nprocs - len(self.idle_ps)
            if 2 * self.nmspinning < busy:
                with self.lock:
                    self.nmspinning += 1
                m.spinning = True
        if m.spinning:
            for victim in self.random_victims(p):
                before = len(p.runq)
                g = steal_half(victim.runq, p.runq)
                if g is not None:
                    m.steals += 1
                    m.stolen += 1 + len(p.runq) - before
                    self._reset_spinning(m)
                    return g
        with self.lock:
            if self.global_queue:
                return Rescan.RESCAN  # arrived meanwhile: keep the P, search again
            self.put_idle_p_locked(p)
            m.p = None
            was_spinning = m.spinning
            if was_spinning:
                m.spinning = False
                self.nmspinning -= 1
        # Closing: the last M to go idle finishes the runtime.  Checked after the
        # P is released, so close() (which sets the flag, then looks for busy Ps)
        # and this M cannot both miss each other.
        if self.closing:
            self.maybe_finish()
        # The P is released: a submitter that saw no idle P a moment ago did not
        # wake anyone, so look once more before sleeping — for work this M can take:
        # the global queue, and, as Go's, a spinning M goes back to steal from local
        # queues.  Not another P's runnext, which no thief takes (its own M runs it
        # next): counted here, it sent an M round this loop until that M got to it,
        # and compiled, the loop never let go of the GIL, so that M never did.
        if self.global_queue or (was_spinning and self.has_stealable_work()):
            with self.lock:
                if not self.stopping and self.take_idle_p_locked(m) is not None:
                    if was_spinning:
                        self.nmspinning += 1
                        m.spinning = True
                    return Rescan.RESCAN
        if not self._park_idle(m):
            return None
        return Rescan.RESCAN

    def _reset_spinning(self, m: M) -> None:
        """A spinning M found work: stop spinning; if it was the last, wake another."""
        m.spinning = False
        with self.lock:
            self.nmspinning -= 1
            last = self.nmspinning == 0
        if last:
            self.wakep()

    def _park_idle(self, m: M) -> bool:
        """Park ``m`` in the idle list until it is handed a P; ``False``: stop."""
        with self.lock:
            if self.stopping:
                return False
            self.idle_ms.append(m)
        return m.park_until_p()

    def first_p(self, m: M) -> bool:
        """A new M takes the P it was started for, or (a warm M) parks until given one."""
        p = m.nextp
        m.nextp = None
        if p is None:
            return self._park_idle(m)
        m.p = p
        p.m = m
        return True

    def acquire_p(self, m: M) -> bool:
        """Get any P (after a system call gave ours away), parking if none is free."""
        with self.lock:
            if self.take_idle_p_locked(m) is not None:
                return True
            if self.stopping:
                return False
            self.idle_ms.append(m)
        return m.park_until_p()

    def retire(self, m: M, p: P) -> None:
        """``p`` is retiring (the pool shrank): its M hands it back."""
        with self.lock:
            m.p = None
            self.put_idle_p_locked(p)  # a retiring P is dropped there

    # --- idle lists and wake-ups ------------------------------------------------------

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

    def _new_m_locked(self) -> M:
        m = self._make_m(self, next(self._mids))
        self.all_ms.append(m)
        self.threads_created += 1
        return m

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
            m = self._new_m_locked()
            m.nextp = p
            m.spinning = spinning
            p.m = m
            try:
                m.start()
            except RuntimeError:
                # Python 3.12+ refuses new threads once the interpreter is
                # finalizing (our exit drain runs then): as at the thread cap,
                # the Ms that exist take the work.
                self.all_ms.remove(m)
                self.threads_created -= 1
                p.m = None
                p.status = P_IDLE
                return False
        self.monitor.kick_if_asleep()
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

    def has_work(self) -> bool:
        """Whether any queue holds a runnable task (racy; for decisions that re-check)."""
        if self.global_queue:
            return True
        return any(p.runq or p.runnext is not None for p in self.procs)

    def has_stealable_work(self) -> bool:
        """Whether a P's local queue holds a task a thief could take (racy)."""
        return any(p.runq for p in self.procs)

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

    # --- system calls and waits that block a thread -------------------------------------

    def entersyscall(self, m: M, g: Task, *, park: bool) -> P:
        """``g`` on ``m`` starts a blocking call: the P stays reserved for ``m`` unless
        the monitor retakes it after the threshold.

        ``park``: ``g`` waits on another task (a future, a join, a channel): if
        work is queued, the P is handed off at once instead (Go parks such a
        goroutine and its P moves on).
        """
        p = m.p
        assert p is not None
        g.state = _SYSCALL
        record_syscall(g, SyscallState.PREPARE, self.clock)
        m.in_syscall = True
        p.syscall_since = self.clock()
        p.status = P_SYSCALL
        if park and self.wants_p(p):
            with self.lock:
                if p.status == P_SYSCALL and p.m is m:
                    self.handoff_locked(p)
        self.monitor.kick_if_asleep()
        record_syscall(g, SyscallState.BLOCKED, self.clock)
        return p

    def exitsyscall(self, m: M, g: Task, p: P) -> bool:
        """Back from the call: reacquire ``p`` if still reserved, else any idle P
        (``True``), or report that none is free (``m.p`` is then ``None``)."""
        record_syscall(g, SyscallState.RESUMED, self.clock)
        m.in_syscall = False
        with self.lock:
            if p.status == P_SYSCALL and p.m is m:
                p.status = P_RUNNING
                q: P | None = p
            else:
                q = self.take_idle_p_locked(m)
        if q is not None:
            m.p = q
            g.state = _RUNNING
            record_syscall(g, SyscallState.IDLE, self.clock)
            return True
        m.p = None
        record_syscall(g, SyscallState.READY, self.clock)
        return False

    def exitsyscall_here(self, m: M, g: Task, p: P) -> None:
        """End of a blocking section in a plain callable: wait on this thread for a P.

        The callable's frame lives on this thread, so the task cannot move: the
        M waits for a P rather than queueing the task.
        """
        if self.exitsyscall(m, g, p):
            return
        with self.lock:
            q = self.take_idle_p_locked(m)
            if q is None:
                self.p_waiters.append(m)
        if q is None:
            m.park_until_p()
        g.state = _RUNNING
        record_syscall(g, SyscallState.IDLE, self.clock)

    def has_work_for(self, p: P) -> bool:
        """Whether tasks wait that ``p`` would run: on it or in the global queue (racy)."""
        return bool(p.runq or p.runnext is not None or self.global_queue)

    def wants_p(self, p: P) -> bool:
        """Whether someone could use ``p`` now: tasks for it, or an M back from a
        system call waiting for any P (racy; re-checked under the lock)."""
        return self.has_work_for(p) or bool(self.p_waiters)

    def retake(self, now: int, threshold_ns: int) -> int:
        """Take the Ps of system calls older than ``threshold_ns`` from their Ms, where
        someone could use them (the monitor asks, every tick).  Returns how many.

        Go's rule (``retake`` in ``runtime/proc.go``): a P with no local work stays with
        its M while an idle P or a spinning M can take any global work, unless the call
        has lasted ``LONG_SYSCALL_NS``; and a P nobody could use is left alone (another
        thread would only park)."""
        taken = 0
        for p in self.procs:
            if p.status != P_SYSCALL or now - p.syscall_since < threshold_ns:
                continue
            local_work = bool(p.runq) or p.runnext is not None
            if (
                not local_work
                and (self.idle_ps or self.nmspinning)
                and now - p.syscall_since < LONG_SYSCALL_NS
            ):
                continue
            if not self.wants_p(p):
                continue
            with self.lock:
                if p.status == P_SYSCALL:
                    self.handoff_locked(p)
                    taken += 1
        return taken

    def handoff_locked(self, p: P) -> None:
        """Take ``p`` from its M blocked in a system call and put it to work."""
        p.status = P_IDLE
        p.m = None
        self.handoffs += 1
        if p.retiring:
            self._drop_locked(p)
            return
        if self.has_work_for(p) and self._startm_locked(p, spinning=False):
            return
        self.put_idle_p_locked(p)  # also where an M waiting for a P gets it

    # --- statistics ------------------------------------------------------------------------

    def stats(self) -> RuntimeStats:
        """The scheduler's own account of itself, its Ms and its monitor, read without
        stopping anything (each figure exact, microseconds apart)."""
        procs = self.procs
        ms = list(self.all_ms)
        queued_local = sum(p.queued() for p in procs)
        queued_global = len(self.global_queue)
        live_ms = [m for m in ms if not m.exited]
        syscall = sum(1 for m in live_ms if m.in_syscall)
        spinning = sum(1 for m in live_ms if m.spinning)
        running = sum(1 for m in live_ms if m.curg is not None and not m.in_syscall)
        idle_threads = max(len(live_ms) - syscall - spinning - running, 0)
        submitted = self.submitted()
        completed = sum(m.completed for m in ms)
        runnable = queued_local + queued_global
        waiting = max(submitted - completed - runnable - running - syscall, 0)
        with self.lock:
            rejected = dict(self.rejected)
        monitor = self.monitor
        return RuntimeStats(
            processors=self.nprocs,
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
            handoffs=self.handoffs,
            preemptions=sum(m.preemptions for m in ms),
            preempt_flags=monitor.preempt_flags,
            long_running=sum(m.long_running for m in ms),
            threads_created=self.threads_created,
            monitor_ticks=monitor.ticks,
            scale_outs=self.scale_outs,
            scale_ins=self.scale_ins,
            latency=merge_latency(self.latency_bounds, [m.latency for m in ms]),
        )

    # --- the elastic pool -----------------------------------------------------------------

    def set_groups(self, groups: int) -> None:
        """Assign Ps round-robin to ``groups`` placement groups."""
        self.groups = groups
        for p in self.procs:
            p.group = p.id % groups

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
                self.scale_outs += 1
            elif n < len(active):
                for p in sorted(active, key=lambda q: q.id)[n:]:
                    p.retiring = True
                    if p in self.idle_ps:
                        self.idle_ps.remove(p)
                        self._drop_locked(p)
                self.scale_ins += 1
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

    # --- lifecycle ----------------------------------------------------------------------------

    def submitted(self) -> int:
        return int(self._created.merged()[0])

    def completed(self) -> int:
        return sum(m.completed for m in list(self.all_ms))

    def queued(self) -> list[Task]:
        """Every task waiting in a run queue (a snapshot)."""
        tasks = list(self.global_queue)
        for p in self.procs:
            tasks.extend(p.runq)
            if p.runnext is not None:
                tasks.append(p.runnext)
        return tasks

    def close(self, *, cancel_futures: bool) -> None:
        """Refuse work from outside from now on; finish once every accepted task is done."""
        with self.lock:
            self.closing = True
        if cancel_futures:
            for task in self.queued():
                if task.future is not None:
                    task.future.cancel()  # the M that dequeues it ends it unrun
        # With nothing running, no M will pass through its slow path to notice.
        if not any(p.status != P_IDLE for p in self.procs) and not self.has_work():
            self.maybe_finish()
        else:
            self.wakep()

    def maybe_finish(self) -> None:
        """Closing and an M ran out of work: stop once no accepted task is live."""
        if self.finished.is_set() or self.submitted() - self.completed() > 0:
            return
        with self.lock:
            if self.finished.is_set():
                return
            self.finished.set()
        self._stop_ms()
        self.monitor.stop()
        if self.hooks is not None:
            self.hooks.close()

    def _stop_ms(self) -> None:
        """Make every M exit (the queues are empty: nothing is live)."""
        with self.lock:
            self.stopping = True
            parked = list(self.idle_ms) + list(self.p_waiters)
            self.idle_ms.clear()
            self.p_waiters.clear()
        for m in parked:
            m.nextp = None
            m.unpark()

    def join_threads(self, timeout: float) -> None:
        """Wait for the Ms to exit (after :attr:`finished`)."""
        me = threading.current_thread()
        for m in list(self.all_ms):
            if m.thread is not me and m.thread.is_alive():
                m.thread.join(timeout=timeout)

    def stuck(self) -> int:
        """Live tasks that nothing in the runtime can make progress: none is runnable,
        running, in a system call or on a timer, yet some are not done (they wait
        on channels or wait groups).  0 if anything can still move."""
        if self.has_work() or self.monitor.pending_timers():
            return 0
        if any(m.curg is not None or m.in_syscall for m in list(self.all_ms) if not m.exited):
            return 0
        return max(self.submitted() - self.completed(), 0)

    def after_fork_in_child(self) -> None:
        """Only the forking thread exists in the child: refuse work, touch nothing.

        Every M and the monitor are gone, and a lock one of them held at the
        fork stays held forever: fresh locks, and a runtime that says clearly
        it cannot run anything (instead of queueing tasks nothing would run).
        """
        self.lock = threading.Lock()
        self.forked = True
        self.closing = True
        self.finished = threading.Event()
        self.finished.set()
