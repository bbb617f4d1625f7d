"""M: an OS thread that runs tasks while it holds a P.

The schedule loop, per round (Go's ``schedule``/``findRunnable``)::

    every 61st round: global queue first (so it is never starved)
    runnext ─► local queue ─► Scheduler.find_runnable (global batch ─► steal
    half of a random victim ─► release the P, re-check everything ─► park)

The loop owns no scheduling rule: it takes the next task, counts its schedule
latency, runs it, and calls the scheduler for everything that moves a task
(``find_runnable``, ``runnable`` after a yield, ``preempt``, ``sleep``,
``make_runnable``, system calls) and ``Task.finish`` to end it.

Executing a task: a plain callable runs to completion; a generator or
coroutine is stepped until it yields an operation (see :mod:`._ops`), which
decides whether it is re-queued, parked on a timer, runs a blocking call here,
or parks until woken.

Contexts: a task carries its submitter's ``contextvars`` context, or none when
that was empty.  A task without one runs directly in this M's *clean* context
(no ``Context.run`` per step, ~0.13 µs saved).  If it sets a variable there,
it keeps a copy of the context as its own (a coroutine resumes in it
anywhere), and the M starts over in a fresh clean context, so nothing leaks
from one task to the next.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from schedobs.contract import exemplars as _ex

from ._drive import drive
from ._latency import NATIVE, LatencyRecorder, to_ns
from ._ops import GOSCHED, Blocking, Checkpoint, Park, Sleep, tls
from ._runqueue import GLOBAL_CHECK_ROUNDS
from ._sched import RESCAN, Rescan
from ._task import SyscallState, Task, TaskState, record_syscall

if TYPE_CHECKING:
    from ._processor import P
    from ._sched import Scheduler

__all__ = ["M"]

_RUNNABLE: Final[TaskState] = TaskState.RUNNABLE
_RUNNING: Final[TaskState] = TaskState.RUNNING
_WAITING: Final[TaskState] = TaskState.WAITING
# Final aliases of what the hot path names from interpreted modules: compiled,
# a Final is a static, any other module-level name a dictionary lookup per use.
_GOSCHED: Final = GOSCHED
_drive: Final = drive
# Schedule latency: compiled, binned on the spot; interpreted, appended (see _latency).
_NATIVE_LATENCY: Final = NATIVE


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
        "latency",
        "long_running",
        "nextp",
        "p",
        "preemptions",
        "sched",
        "spinning",
        "steals",
        "stolen",
        "thread",
    )

    def __init__(self, sched: Scheduler, mid: int) -> None:
        self.sched = sched
        self.id = mid
        self.p: P | None = None
        self.nextp: P | None = None
        self.spinning = False
        #: The task whose code runs on this thread now (None between tasks).
        self.curg: Task | None = None
        self.in_syscall = False
        self.exited = False
        # Counters: written by this thread only, summed by readers.
        self.completed = 0
        self.steals = 0
        self.stolen = 0
        self.preemptions = 0
        self.long_running = 0
        #: Schedule latency counted by this M (instrumented runtimes only).
        bounds = sched.latency_bounds
        self.latency = LatencyRecorder(bounds) if bounds is not None else None
        self._park = threading.Lock()
        self._park.acquire()
        self.thread = threading.Thread(target=self._main, name=f"{sched.name}-M{mid}", daemon=True)

    # --- parking -----------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def unpark(self) -> None:
        """Wake this M (exactly once per park: the waker removed it from an idle list)."""
        self._park.release()

    def park_until_p(self) -> bool:
        """Sleep until handed a P (``nextp``); ``False`` when the runtime stops."""
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
        sched = self.sched
        try:
            cpus = sched.pin_cpus
            if cpus:
                _pin(cpus[self.id % len(cpus)])
            if sched.first_p(self):
                # Each pass runs in a fresh clean context until a task dirties it.
                while True:
                    clean = contextvars.Context()
                    if not clean.run(self._schedule, clean):
                        break
        finally:
            if self.latency is not None:
                self.latency.fold()
            self.exited = True
            self.curg = None
            tls.m = None

    def _schedule(self, clean: contextvars.Context) -> bool:
        """Run tasks in ``clean``, the context this M runs them in; ``True`` when a task
        set a variable there (start a fresh one), ``False`` when the runtime stops.

        The order is the scheduler's: every ``GLOBAL_CHECK_ROUNDS``-th round it is
        asked first (:meth:`Scheduler.fair_round`: retirement, the global queue);
        then this P's ``runnext`` and local queue, which only this M pops from the
        head besides thieves; then :meth:`Scheduler.find_runnable`."""
        sched = self.sched
        latency = self.latency
        record = latency.record if latency is not None else []
        now = sched.stamp  # seconds (see _latency): the start half of a task's latency
        fair: Task | Rescan | None = None
        found: Task | Rescan | None = None
        while True:
            p = self.p
            if p is None:  # a system call gave our P away
                if not self._reacquire_p():
                    return False
                continue
            tick = p.schedtick = p.schedtick + 1
            g: Task | None = None
            if tick % GLOBAL_CHECK_ROUNDS == 0:
                if latency is not None:
                    latency.fold()  # this M's own batch, on the same round
                fair = sched.fair_round(self, p)
                if fair is RESCAN:
                    continue
                g = fair
            if g is None:
                g = p.runnext
                if g is not None:
                    p.runnext = None
                else:
                    try:
                        g = p.runq.popleft()
                    except IndexError:
                        # Hold nothing of the last task while we may park: its result
                        # belongs to its caller alone.
                        fair = found = None
                        if latency is not None:
                            latency.fold()  # before we may go idle
                        found = sched.find_runnable(self)
                        if found is None:
                            return False
                        if found is RESCAN:  # a P again: its own queues first
                            continue
                        g = found
            if latency is not None:  # instrumented: the only place latency is taken
                lat = now() - g.ready
                if _NATIVE_LATENCY:
                    latency.add(g.source, lat)  # a native call: latency's type is narrowed
                else:
                    record[g.source](lat)
                if g.ctx is not None and _ex.context_var is not None:
                    self._exemplar(g, lat)
            # Called through self: compiled, a native call (a bound method kept in
            # a local would go through Python's calling convention every task).
            if self.step(g, clean, sched) if g.form else self.run(g, clean):
                return True  # the task set a context variable: start clean

    def _reacquire_p(self) -> bool:
        """Any P again after a system call gave ours away; ``False`` when the runtime stops."""
        if self.latency is not None:
            self.latency.fold()  # before we may go idle
        return self.sched.acquire_p(self)

    def _exemplar(self, g: Task, lat: float) -> None:
        """Keep the trace ``g`` was submitted in as the exemplar of its latency
        (``lat`` seconds), if sampled."""
        ids = _ex.sampled_ids(g.ctx.get(_ex.context_var, None))  # type: ignore[union-attr, arg-type]
        if ids is not None:
            self.latency.exemplar(g.source, to_ns(lat), *ids)  # type: ignore[union-attr]

    def run(self, g: Task, clean: contextvars.Context) -> bool:
        """Run the plain callable ``g`` to completion: the one place one runs.  ``True``
        if it dirtied this M's clean context.  Its result leaves with this frame, so
        the M holds nothing of it while it may park."""
        future = g.future
        if future is not None and not future.set_running_or_notify_cancel():
            self.completed += 1
            g.cancelled_before_start()
            return False
        g.state = _RUNNING
        ctx = g.ctx
        self.curg = g
        try:
            if ctx is None:
                value = g.fn(*g.args) if g.kwargs is None else g.fn(*g.args, **g.kwargs)  # type: ignore[misc]
            else:
                value = ctx.run(g.fn, *g.args, **(g.kwargs or {}))  # type: ignore[arg-type, misc]
        except BaseException as exc:
            self.curg = None
            self.completed += 1
            g.finish(None, exc)
        else:
            self.curg = None
            self.completed += 1
            g.finish(value, None)
        if g.preempt:
            self.long_running += 1
        return ctx is None and len(clean) > 0

    # --- coroutine and generator tasks ------------------------------------------------------

    def step(self, g: Task, clean: contextvars.Context, sched: Scheduler) -> bool:
        """Step ``g`` until it parks, re-queues or ends.  ``True`` if it dirtied
        this M's clean context (see the module doc).
        ``sched`` is the loop's (an argument costs less than a lookup)."""
        ctx = g.ctx
        dirtied = False
        if g.ext is not None:
            _resume_ext(g, sched.clock)
        g.state = _RUNNING
        self.curg = g
        it = g.it
        while True:
            try:
                if it is None:  # the first step: the driver makes the coroutine
                    it = g.it = _drive(g, g.fn, g.args or (), g.kwargs)  # type: ignore[arg-type]
                    g.fn = g.args = g.kwargs = None
                if g.resume is None and g.throw is None:
                    # The common resume: by iteration, so the end is the loop's
                    # else, not an exception (see _drive).
                    if ctx is None:
                        for op in it:  # noqa: B007 - one resume, then break
                            break
                        else:
                            op = _FINISHED
                    else:
                        op = ctx.run(_resume, it)
                else:
                    op = _send_or_throw(g, ctx)
            except BaseException as error:
                op = _Failed(error)
            if ctx is None and len(clean):
                # The task set a context variable in our clean context: it keeps
                # a copy as its own; we start over in a fresh one afterwards.
                g.ctx = ctx = contextvars.copy_context()
                dirtied = True
            if op is None or op is _GOSCHED:  # a yield (the singleton: no type() call)
                # The tail of our own P (Go's Gosched always goes global; the local
                # tail keeps the task near its cache, and stealing spreads it), or
                # the global queue if the monitor flagged it.
                self.curg = None
                if g.preempt:
                    sched.preempt(self, g)
                else:
                    sched.runnable(g, self.p)
                return dirtied
            if op is _FINISHED:
                self.curg = None
                self.completed += 1
                g.finish(g.result_value, None)
                return dirtied
            left = self._operation(g, op, clean, sched)
            if g.ctx is not ctx:  # a blocking call set a context variable: now the task's
                ctx = g.ctx
                dirtied = True
            if left:
                return dirtied

    def _operation(self, g: Task, op: Any, clean: contextvars.Context, sched: Scheduler) -> bool:
        """Carry out an operation other than a yield; ``True`` if ``g`` left this M
        (it failed, was preempted at a checkpoint, sleeps, is parked, or is queued
        for another M)."""
        kind = type(op)
        if kind is _Failed:
            self.curg = None
            self.completed += 1
            g.finish(None, op.error)
            return True
        if kind is Checkpoint:
            if g.preempt:
                self.curg = None
                sched.preempt(self, g)
                return True
            if g.ext is not None:
                _check_deadline(g, sched.clock)
            return False
        if kind is Sleep:
            self.curg = None
            sched.sleep(g, op.seconds)
            return True
        if kind is Blocking:
            has_p = self._blocking_call(g, op)
            if g.ctx is None and len(clean):  # set by the call: the task's, as after a step
                g.ctx = contextvars.copy_context()
            if has_p:
                return False
            # No P is free after the call: the task waits in the global queue (a
            # coroutine can move to another M); this M idles.
            self.curg = None
            sched.make_runnable(g)
            return True
        if kind is Park:
            # Register only now that g is suspended: a wake-up that races with the
            # park can never run a task that is still running (Go's
            # gopark(unlockf)).  After a successful register, g is not ours.
            self.curg = None
            g.state = _WAITING
            if op.register(g):
                return True
            g.state = _RUNNING
            self.curg = g
            return False
        g.throw = TypeError(
            f"a schedobs runtime task awaited or yielded {op!r}; only runtime operations "
            "can suspend it: gosched, sleep, blocking and checkpoint (await or yield "
            "them), channel and wait-group operations (await them, in async def tasks)"
        )
        return False

    def _blocking_call(self, g: Task, op: Blocking) -> bool:
        """Run ``op`` on this thread as a system call; ``False`` if no P was free after."""
        sched = self.sched
        p = sched.entersyscall(self, g, park=False)
        ctx = g.ctx
        try:
            if ctx is None:
                g.resume = op.fn(*op.args, **op.kwargs)
            else:
                g.resume = ctx.run(op.fn, *op.args, **op.kwargs)
        except BaseException as exc:
            g.throw = exc
        return sched.exitsyscall(self, g, p)

    def __repr__(self) -> str:
        return f"<M{self.id} p={self.p.id if self.p else None} spinning={self.spinning}>"


_FINISHED: Final[Any] = object()  # "the task returned" (its value is in result_value)


class _Failed:
    """ "The task raised ``error``" (the rare end: one object per failed task)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _resume_ext(g: Task, clock: Callable[[], int]) -> None:
    """A task with rare state resumes: a system call it came back from is over, and a
    deadline that passed meanwhile is raised into it."""
    if g.ext.syscall_state is SyscallState.READY:  # type: ignore[union-attr]
        record_syscall(g, SyscallState.IDLE, clock)
    _check_deadline(g, clock)


def _resume(it: Iterator[Any]) -> Any:
    """One resume by iteration, inside a task's own context (``ctx.run``)."""
    for op in it:
        return op
    return _FINISHED


def _send_or_throw(g: Task, ctx: contextvars.Context | None) -> Any:
    """Resume with a value to deliver or an exception to raise (the rare resumes)."""
    it = g.it
    assert it is not None
    exc = g.throw
    if exc is not None:
        g.throw = None
        fn: Callable[[Any], Any] = it.throw
        arg: Any = exc
    else:
        fn = it.send
        arg = g.resume
        g.resume = None
    try:
        return fn(arg) if ctx is None else ctx.run(fn, arg)
    except StopIteration:
        return _FINISHED


def _check_deadline(g: Task, clock: Callable[[], int]) -> None:
    """Past its deadline, a task gets ``TimeoutError`` thrown in (once)."""
    ext = g.ext
    if ext is not None and ext.deadline_ns and g.throw is None and clock() > ext.deadline_ns:
        ext.deadline_ns = 0
        g.throw = TimeoutError("the task ran past its timeout (cancelled at a checkpoint)")
