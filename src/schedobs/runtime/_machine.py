"""M: an OS thread that runs tasks while it holds a P.

The schedule loop, per round (Go's ``schedule``/``findRunnable``)::

    every 61st round: global queue first (so it is never starved)
    runnext ─► local queue ─► global queue (a fair batch) ─► steal half of a
    random victim ─► release the P, re-check everything ─► park

Executing a task: a plain callable runs to completion in the submitter's
context; a generator or coroutine is stepped until it yields an operation
(see :mod:`._ops`), which decides whether it is re-queued, parked on a timer,
runs a blocking call here, or parks until woken.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from bisect import bisect_left
from typing import TYPE_CHECKING

from ._ops import Blocking, Checkpoint, Gosched, Park, Sleep, tls
from ._processor import P_SYSCALL, P
from ._runqueue import LOCAL_CAPACITY, steal_half, take_batch
from ._task import CALLABLE, SyscallState, Task, TaskState, record_syscall

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._sched import Scheduler

__all__ = ["M"]

_RUNNABLE = TaskState.RUNNABLE
_RUNNING = TaskState.RUNNING
_WAITING = TaskState.WAITING
_SYSCALL = TaskState.SYSCALL
_DONE = TaskState.DONE
_now = time.perf_counter_ns
_Context = contextvars.Context
_NO_MIN = 1 << 62  # "no observation yet" for the min slot
_NO_OP = object()  # "no operation yet": _step takes the first step itself


def _pin(cpu: int) -> None:
    """Pin the calling thread to ``cpu`` where the OS allows it (Linux); else nothing."""
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is not None:
        with contextlib.suppress(OSError):  # a CPU outside our cpuset: run unpinned
            setaffinity(0, {cpu})


class M:
    """A machine: one OS thread of the runtime."""

    __slots__ = (
        "_park",
        "completed",
        "curg",
        "exited",
        "id",
        "in_syscall",
        "latency_rows",
        "long_running",
        "nextp",
        "p",
        "preemptions",
        "runtime",
        "sched",
        "spinning",
        "steals",
        "stolen",
        "thread",
    )

    def __init__(self, sched: Scheduler, mid: int, runtime: Runtime) -> None:
        self.sched = sched
        self.runtime = runtime
        self.id = mid
        self.p: P | None = None
        self.nextp: P | None = None
        self.spinning = False
        self.curg: Task | None = None
        self.in_syscall = False
        self.exited = False
        # Counters: written by this thread only, summed by readers.
        self.completed = 0
        self.steals = 0
        self.stolen = 0
        self.preemptions = 0
        self.long_running = 0
        #: Schedule latency counted by this M, per source (0 global, 1 local):
        #: bucket counts, then sum, min and max in ns.  Written only by this M.
        self.latency_rows: tuple[list[int], list[int]] | None = None
        if runtime._latency_bounds is not None:
            n = len(runtime._latency_bounds) + 1
            self.latency_rows = (
                [0] * n + [0, _NO_MIN, 0],
                [0] * n + [0, _NO_MIN, 0],
            )
        self._park = threading.Lock()
        self._park.acquire()
        self.thread = threading.Thread(target=self._main, name=f"{sched.name}-M{mid}", daemon=True)

    # --- parking -----------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def unpark(self) -> None:
        """Wake this M (exactly once per park: the waker removed it from an idle list)."""
        self._park.release()

    def _park_until_p(self) -> bool:
        """Park as an idle M until handed a P; ``False`` when the runtime stops."""
        self._park.acquire()
        p = self.nextp
        self.nextp = None
        if p is None:
            return False
        self.p = p
        p.m = self
        return True

    # --- the loop ---------------------------------------------------------------------

    def _main(self) -> None:
        tls.m = self
        try:
            cpus = self.runtime._pin_cpus
            if cpus:
                _pin(cpus[self.id % len(cpus)])
            p = self.nextp
            self.nextp = None
            if p is not None:
                self.p = p
                p.m = self
                self._schedule()
            elif self._park_warm():  # a warm M: parked idle until handed a P
                self._schedule()
        finally:
            self.exited = True
            tls.m = None
            self.runtime._m_exited(self)

    def _schedule(self) -> None:
        sched = self.sched
        runtime = self.runtime
        gq = sched.global_queue
        timed = runtime._timed
        rows = self.latency_rows
        bounds = runtime._latency_bounds
        nb = len(bounds) + 1 if bounds is not None else 0  # index of the sum slot
        now = _now
        while True:
            p = self.p
            if p is None:
                if not self._acquire_p():
                    return
                p = self.p
                assert p is not None
            local = p.runq
            tick = p.schedtick = p.schedtick + 1
            g: Task | None = None
            if tick % 61 == 0:
                if p.retiring:  # the pool shrank: hand this P back, find another
                    self._retire(p)
                    continue
                if gq:
                    g = take_batch(gq, local, sched.nprocs)
                    if g is not None and self.spinning:
                        self._reset_spinning()
            if g is None:
                g = p.runnext
                if g is not None:
                    p.runnext = None
                else:
                    try:
                        g = local.popleft()
                    except IndexError:
                        g = self._find_runnable()
                        if g is None:
                            return
                        # Only a search can leave this M spinning: check here,
                        # not on every round.
                        if self.spinning:
                            self._reset_spinning()
            if timed:
                # Inlined histogram update (a call would cost a quarter more).
                d = now() - g.ready_ns
                row = rows[g.source]  # type: ignore[index]
                row[bisect_left(bounds, d)] += 1  # type: ignore[arg-type]
                row[nb] += d
                if d < row[nb + 1]:
                    row[nb + 1] = d
                if d > row[nb + 2]:
                    row[nb + 2] = d
            self.curg = g
            g.state = _RUNNING
            if g.form == CALLABLE:
                future = g.future
                if future is not None and not future.set_running_or_notify_cancel():
                    g.fn = g.args = g.kwargs = None
                    g.result_value = g.exc = None
                    g.state = _DONE  # cancelled before it started
                else:
                    ctx = g.ctx
                    if ctx is None:  # the submitter's context was empty
                        ctx = _Context()
                    try:
                        kwargs = g.kwargs
                        if kwargs is None:
                            result = ctx.run(g.fn, *g.args)  # type: ignore[arg-type, misc]
                        else:
                            result = ctx.run(g.fn, *g.args, **kwargs)  # type: ignore[arg-type, misc]
                    except BaseException as exc:
                        g._finish(None, exc)
                    else:
                        if future is None and g.waiters is None:
                            # The common case, inlined: nothing to notify.
                            g.result_value = result
                            g.exc = None
                            g.fn = g.args = None
                            g.state = _DONE
                            # A joiner may have registered between the check
                            # and the state write: look again (see Task._finish).
                            if g.has_waiters():
                                g._notify()
                        else:
                            g._finish(result, None)
                    if g.preempt:
                        self.long_running += 1
                self.completed += 1
            elif g.throw is None and g.ext is None:
                # One coroutine/generator step inline: the common outcome (a
                # yield that re-queues the task) costs no method call.
                value = g.resume
                if value is not None:
                    g.resume = None
                try:
                    op = g.ctx.run(g.send, value)  # type: ignore[union-attr]
                except StopIteration as stop:
                    g._finish(stop.value, None)
                    self.completed += 1
                except BaseException as exc:
                    g._finish(None, exc)
                    self.completed += 1
                else:
                    if (op is None or type(op) is Gosched) and not g.preempt:
                        g.state = _RUNNABLE
                        if len(local) < LOCAL_CAPACITY:
                            if timed:  # source and ready_ns are read only when timed
                                g.source = 1
                                g.ready_ns = now()
                            local.append(g)
                        else:
                            # Local queue full: the yielding task alone goes to
                            # the global queue, as Go's Gosched always does
                            # (moving half the queue would churn every yield).
                            if timed:
                                g.source = 0
                                g.ready_ns = now()
                            gq.append(g)
                    else:
                        self._step(g, op)
            else:
                self._step(g)

    # --- slow paths ---------------------------------------------------------------------

    def _park_warm(self) -> bool:
        """Wait in the idle-M list (without taking a P) until work hands us one."""
        sched = self.sched
        with sched.lock:
            if sched.stopping:
                return False
            sched.idle_ms.append(self)
        return self._park_until_p()

    def _acquire_p(self) -> bool:
        """Get any P (after a system call gave ours away), parking if none is free."""
        sched = self.sched
        with sched.lock:
            if sched.take_idle_p_locked(self) is not None:
                return True
            if sched.stopping:
                return False
            sched.idle_ms.append(self)
        return self._park_until_p()

    def _retire(self, p: P) -> None:
        sched = self.sched
        with sched.lock:
            self.p = None
            sched.put_idle_p_locked(p)  # a retiring P is dropped there

    def _reset_spinning(self) -> None:
        """A spinning M found work: stop spinning; if it was the last, wake another."""
        sched = self.sched
        self.spinning = False
        with sched.lock:
            sched.nmspinning -= 1
            last = sched.nmspinning == 0
        if last:
            sched.wakep()

    def _find_runnable(self) -> Task | None:
        """Global queue, then stealing, then release the P and park.  ``None``: stop."""
        # The schedule loop leaves curg set to the last task (one write saved per
        # task); it is cleared here, before this M can look idle.
        self.curg = None
        sched = self.sched
        runtime = self.runtime
        while True:
            p = self.p
            assert p is not None
            g = take_batch(sched.global_queue, p.runq, max(sched.nprocs, 1))
            if g is not None:
                return g
            if not self.spinning:
                busy = sched.nprocs - len(sched.idle_ps)
                if 2 * sched.nmspinning < busy:
                    with sched.lock:
                        sched.nmspinning += 1
                    self.spinning = True
            if self.spinning:
                for victim in sched.random_victims(p):
                    before = len(p.runq)
                    g = steal_half(victim.runq, p.runq)
                    if g is not None:
                        self.steals += 1
                        self.stolen += 1 + len(p.runq) - before
                        return g
            with sched.lock:
                if sched.global_queue:
                    continue
                sched.put_idle_p_locked(p)
                self.p = None
                was_spinning = self.spinning
                if was_spinning:
                    self.spinning = False
                    sched.nmspinning -= 1
            # Closing: the last M to go idle stops the runtime.  Checked after
            # the P is released, so shutdown() (which sets the flag, then looks
            # for busy Ps) and this M cannot both miss each other.
            if runtime._closing:
                runtime._maybe_finish()
            # The P is released: a submitter that saw no idle P a moment ago did
            # not wake anyone, so look once more before sleeping.
            if sched.has_work():
                with sched.lock:
                    if not sched.stopping and sched.take_idle_p_locked(self) is not None:
                        if was_spinning:
                            sched.nmspinning += 1
                            self.spinning = True
                        continue
            with sched.lock:
                if sched.stopping:
                    return None
                sched.idle_ms.append(self)
            if not self._park_until_p():
                return None

    # --- coroutine and generator tasks ------------------------------------------------------

    def _requeue_local(self, g: Task) -> None:
        """A yield: the tail of the local queue, or the global queue if it is full."""
        g.state = _RUNNABLE
        p = self.p
        assert p is not None
        local = len(p.runq) < LOCAL_CAPACITY
        if self.runtime._timed:
            g.source = 1 if local else 0
            g.ready_ns = _now()
        if local:
            p.runq.append(g)
        else:
            self.sched.global_queue.append(g)

    def _preempted(self, g: Task) -> None:
        """The monitor flagged ``g``: it goes to the global queue (Go does the same)."""
        self.preemptions += 1
        g.preempt = False
        g.state = _RUNNABLE
        g.source = 0
        if self.runtime._timed:
            g.ready_ns = _now()
        self.sched.global_queue.append(g)

    def _step(self, g: Task, op: object = _NO_OP) -> None:
        """Step ``g`` until it parks, re-queues or ends; start with ``op`` if the
        schedule loop already took the first step."""
        coro = g.coro
        ctx = g.ctx
        assert ctx is not None  # coroutine and generator tasks always carry one
        ext = g.ext
        if ext is not None:
            if ext.syscall_state is SyscallState.READY:
                record_syscall(g, SyscallState.IDLE)
            if op is _NO_OP:
                self._check_deadline(g)
        while True:
            if op is _NO_OP:
                try:
                    exc = g.throw
                    if exc is not None:
                        g.throw = None
                        op = ctx.run(coro.throw, exc)
                    else:
                        value = g.resume
                        g.resume = None
                        op = ctx.run(coro.send, value)
                except StopIteration as stop:
                    g._finish(stop.value, None)
                    self.completed += 1
                    return
                except BaseException as exc:
                    g._finish(None, exc)
                    self.completed += 1
                    return
            kind = type(op)
            if op is None or kind is Gosched:
                if g.preempt:
                    self._preempted(g)
                else:
                    self._requeue_local(g)
                return
            if kind is Checkpoint:
                if g.preempt:
                    self._preempted(g)
                    return
                if ext is not None:
                    self._check_deadline(g)
                op = _NO_OP
                continue
            if isinstance(op, Sleep):
                g.state = _WAITING
                self.runtime._sleep(g, op.seconds)
                return
            if isinstance(op, Blocking):
                if not self._blocking_call(g, op):
                    return  # no P after the call: g went to the global queue
                op = _NO_OP
                continue
            if isinstance(op, Park):
                g.state = _WAITING
                if op.register(g):
                    return
                g.state = _RUNNING
                op = _NO_OP
                continue
            g.throw = TypeError(
                f"a schedobs runtime task awaited or yielded {op!r}; only runtime operations "
                "can suspend it: gosched, sleep, blocking and checkpoint (await or yield "
                "them), channel and wait-group operations (await them, in async def tasks)"
            )
            op = _NO_OP

    @staticmethod
    def _check_deadline(g: Task) -> None:
        """Past its deadline, a task gets ``TimeoutError`` thrown in (once)."""
        ext = g.ext
        if ext is not None and ext.deadline_ns and g.throw is None and _now() > ext.deadline_ns:
            ext.deadline_ns = 0
            g.throw = TimeoutError("the task ran past its timeout (cancelled at a checkpoint)")

    # --- system calls ----------------------------------------------------------------------------

    def entersyscall(self, g: Task) -> P:
        """Mark the start of a blocking call: the P stays ours unless the monitor retakes it."""
        p = self.p
        assert p is not None
        g.state = _SYSCALL
        record_syscall(g, SyscallState.PREPARE)
        self.in_syscall = True
        p.syscall_since = _now()
        p.status = P_SYSCALL
        monitor = self.sched.monitor
        if monitor is not None:
            monitor.kick_if_asleep()
        record_syscall(g, SyscallState.BLOCKED)
        return p

    def _exitsyscall(self, g: Task, p: P) -> bool:
        """Back from the call: reacquire a P (``True``) or report that none is free."""
        record_syscall(g, SyscallState.RESUMED)
        self.in_syscall = False
        q = self.sched.reacquire_after_syscall(self, p)
        if q is not None:
            self.p = q
            g.state = _RUNNING
            record_syscall(g, SyscallState.IDLE)
            return True
        self.p = None
        return False

    def _blocking_call(self, g: Task, op: Blocking) -> bool:
        p = self.entersyscall(g)
        ctx = g.ctx
        assert ctx is not None  # only coroutine and generator tasks get here
        try:
            g.resume = ctx.run(op.fn, *op.args, **op.kwargs)
        except BaseException as exc:
            g.throw = exc
        if self._exitsyscall(g, p):
            return True
        # No P is free: the task waits in the global queue (a coroutine can
        # move to another M); this M becomes idle.
        record_syscall(g, SyscallState.READY)
        self.runtime._make_runnable(g, from_m=False)
        return False

    def exitsyscall_inline(self, g: Task, p: P) -> None:
        """End of a ``with syscall():`` block in a plain callable: wait here for a P.

        The callable's frame lives on this thread, so the task cannot move: the
        M waits for a P rather than queueing the task.
        """
        if self._exitsyscall(g, p):
            return
        record_syscall(g, SyscallState.READY)
        sched = self.sched
        with sched.lock:
            q = sched.take_idle_p_locked(self)
            if q is None:
                sched.p_waiters.append(self)
        if q is None:
            self._park_until_p()
        g.state = _RUNNING
        record_syscall(g, SyscallState.IDLE)

    def __repr__(self) -> str:
        return f"<M{self.id} p={self.p.id if self.p else None} spinning={self.spinning}>"
