"""Runtime: the GMP scheduler as a ``concurrent.futures.Executor``."""

from __future__ import annotations

import contextvars
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from schedobs._shards import Shards

from ._future import RuntimeFuture
from ._machine import M
from ._monitor import Monitor
from ._ops import tls
from ._processor import P_IDLE
from ._runqueue import LOCAL_CAPACITY, overflow
from ._sched import Scheduler
from ._stats import LatencyCounts, RuntimeHooks, RuntimeStats
from ._task import Task, TaskState

__all__ = ["RejectedError", "Runtime"]

_T = TypeVar("_T")
_now = time.perf_counter_ns
_copy_context = contextvars.copy_context


_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Only the forking thread exists in the child: every M and the monitor are
    # gone, and any lock one of them held at the fork stays held forever.  Give
    # the module-level locks fresh instances, and make each runtime refuse work
    # with a clear error (instead of queueing tasks nothing would run) and
    # shutdown() return at once without touching its scheduler.
    from . import _future, _task

    _future._create_lock = threading.Lock()
    _task._done_lock = threading.Lock()
    for runtime in list(_RUNTIMES):
        runtime._shutdown_lock = threading.Lock()
        runtime._sched.lock = threading.Lock()
        runtime._forked = True
        runtime._closing = True
        runtime._finished = threading.Event()
        runtime._finished.set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _cpus(pin: bool | Sequence[int]) -> list[int]:
    if pin is False:
        return []
    if pin is True:
        affinity = getattr(os, "sched_getaffinity", None)
        return sorted(affinity(0)) if affinity is not None else []
    cpus = list(pin)
    if not cpus or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in cpus):
        raise ValueError(f"pin_cpus must be True, False or CPU numbers, got {pin!r}")
    return cpus


class RejectedError(RuntimeError):
    """A task was refused.  ``reason`` is the contract's ``error.type`` value.

    A subclass of ``RuntimeError``, which is what ``concurrent.futures``
    executors raise after shutdown.
    """

    def __init__(self, reason: str, message: str, tenant: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.tenant = tenant


def _sum_rows(into: list[float], row: list[float]) -> None:
    into[0] += row[0]


class Runtime(Executor):
    """A Go-style scheduler: G tasks on M threads holding P processors.

    >>> from schedobs.runtime import Runtime, sleep
    >>> with Runtime(procs=2, name="workers") as rt:     # doctest: +SKIP
    ...     future = rt.submit(pow, 2, 10)                 # a plain callable
    ...     task = rt.go(fetch_all, urls)                  # an async def, fire-and-forget
    ...     future.result(), task.result()

    Args:
        procs: number of Ps (the GOMAXPROCS analogue); default: CPU count.
        name: name of the runtime (thread names, ``scheduler.name``).
        max_threads: cap on Ms (threads), including those blocked in system calls.
        max_queued: bound of the global queue for submissions from outside the
            runtime; beyond it ``submit``/``go`` raise :class:`RejectedError`
            (``queue_full``).  ``None``: unbounded.
        hooks: instrumentation (see :class:`RuntimeHooks`); ``None`` costs nothing.
        metrics: a :class:`~schedobs.contract.SchedulerMetrics` of kind ``gmp`` to
            report the contract to (shorthand for contract hooks).
        instrument: create such metrics, named ``name``, in ``registry``.  They
            stay registered after shutdown (final counts remain visible);
            ``runtime.metrics.close()`` removes them.
        syscall_threshold: seconds a blocking call may hold its P before the
            monitor hands the P to another M (when there is work for it).
        preempt_after: seconds a task may run before it is flagged to yield.
        warm_threads: Ms started at once and parked, so first tasks skip thread start.
        pin_cpus: pin each M to one CPU (``True``: the CPUs this process may use,
            round-robin; or a list of CPU numbers).  A no-op where unsupported.
        groups: placement groups of Ps (NUMA nodes, say); stealing prefers a
            victim in the thief's own group.
    """

    def __init__(
        self,
        procs: int | None = None,
        *,
        name: str = "gmp",
        max_threads: int = 10_000,
        max_queued: int | None = None,
        hooks: RuntimeHooks | None = None,
        metrics: Any = None,
        instrument: bool = False,
        registry: Any = None,
        syscall_threshold: float = 20e-6,
        preempt_after: float = 0.010,
        warm_threads: int = 0,
        pin_cpus: bool | Sequence[int] = False,
        groups: int = 1,
    ) -> None:
        procs = os.cpu_count() or 1 if procs is None else procs
        for what, value, low in (("procs", procs, 1), ("max_threads", max_threads, 1)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{what} must be an int, got {type(value).__name__}")
            if value < low:
                raise ValueError(f"{what} must be >= {low}, got {value}")
        if max_threads < procs:
            raise ValueError(f"max_threads ({max_threads}) must be >= procs ({procs})")
        if max_queued is not None and (
            isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 1
        ):
            raise ValueError(f"max_queued must be an int >= 1 or None, got {max_queued!r}")
        for what, secs in (
            ("syscall_threshold", syscall_threshold),
            ("preempt_after", preempt_after),
        ):
            if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not secs > 0:
                raise ValueError(f"{what} must be a number of seconds > 0, got {secs!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        for what, count in (("warm_threads", warm_threads), ("groups", groups)):
            if isinstance(count, bool) or not isinstance(count, int) or count < (what == "groups"):
                raise ValueError(f"{what} must be an int >= {int(what == 'groups')}, got {count!r}")
        self._pin_cpus: list[int] = _cpus(pin_cpus)

        if hooks is None and (metrics is not None or instrument):
            from ._instrument import ContractHooks

            if metrics is None:
                from schedobs.contract import SchedulerMetrics

                metrics = SchedulerMetrics(name, kind="gmp", registry=registry)
            hooks = ContractHooks(metrics)
        self.metrics = metrics
        """The :class:`~schedobs.contract.SchedulerMetrics` this runtime reports to, or None."""
        self.name = name
        self._hooks = hooks
        #: Whether tasks are time-stamped when they become runnable (only when
        #: instrumented: an uninstrumented runtime reads no clock per task).
        self._timed = hooks is not None
        self._latency_bounds: tuple[int, ...] | None = (
            tuple(hooks.latency_bounds_ns()) if hooks is not None else None
        )
        self._max_queued = max_queued
        self._fast_submit = max_queued is None
        self._sched = Scheduler(procs, max_threads, name, lambda s, i: M(s, i, self))
        self._monitor = Monitor(
            self._sched,
            self,
            syscall_threshold_ns=int(syscall_threshold * 1e9),
            preempt_after_ns=int(preempt_after * 1e9),
        )
        self._sched.monitor = self._monitor
        self._created = Shards([0], _sum_rows)
        self._created_local = self._created.local
        self._rejected = {"queue_full": 0, "shutdown": 0}
        self._closing = False
        self._forked = False
        _RUNTIMES.add(self)
        self._shutdown_lock = threading.Lock()
        self._finished = threading.Event()
        self._autoscaler: Any = None  # set by an Autoscaler attached to this runtime
        self._sched.set_groups(groups)
        self._monitor.start()
        if warm_threads:
            self._sched.start_warm(warm_threads)
        if hooks is not None:
            hooks.bind(self.stats)

    # --- submitting ----------------------------------------------------------------

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Schedule ``fn(*args, **kwargs)``; return a standard ``Future``.

        ``fn`` may be a plain function, a generator function or an ``async def``
        (the future then resolves to what the generator or coroutine returns).
        """
        future: Future[_T] = RuntimeFuture()
        ctx: contextvars.Context | None = _copy_context()
        if not len(ctx):  # type: ignore[arg-type]
            ctx = None  # see Task.ctx
        self._submit(Task(fn, args, kwargs or None, ctx, future))
        return future

    def go(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Task:
        """Start ``fn(*args, **kwargs)`` as a task, fire-and-forget; returns its handle."""
        ctx: contextvars.Context | None = _copy_context()
        if not len(ctx):  # type: ignore[arg-type]
            ctx = None  # see Task.ctx
        task = Task(fn, args, kwargs or None, ctx)
        if self._fast_submit and not self._closing and tls.m is None:
            # Inlined _submit for the common case: an outside thread, no bound
            # (about 0.2 µs of calls and checks saved).
            try:
                self._created_local.row[0] += 1
            except AttributeError:
                self._created.new_row()[0] += 1
            if self._timed:
                task.ready_ns = _now()
            task.source = 0
            sched = self._sched
            sched.global_queue.append(task)
            if sched.idle_ps and not sched.nmspinning:
                sched.wakep()
            return task
        self._submit(task)
        return task

    def _spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        *,
        deadline_ns: int = 0,
        tenant: str | None = None,
    ) -> Task:
        """Start a task with a deadline (``perf_counter_ns``) and a tenant (for layers above)."""
        ctx: contextvars.Context | None = _copy_context()
        if not len(ctx):  # type: ignore[arg-type]
            ctx = None
        task = Task(fn, args, None, ctx)
        if deadline_ns or tenant is not None:
            ext = task._extra()
            ext.deadline_ns = deadline_ns
            ext.tenant = tenant
        self._submit(task)
        return task

    def _submit(self, task: Task) -> None:
        if self._closing:
            if self._forked:
                raise RuntimeError(
                    f"runtime {self.name!r} was created before os.fork(): its threads did not "
                    "survive the fork; create a new Runtime in the child process"
                )
            self._reject("shutdown", "cannot schedule new tasks after shutdown")
        sched = self._sched
        if self._max_queued is not None and len(sched.global_queue) >= self._max_queued:
            self._reject("queue_full", f"the global queue holds {self._max_queued} tasks")
        try:
            self._created_local.row[0] += 1
        except AttributeError:
            self._created.new_row()[0] += 1
        m = tls.m
        if m is not None and m.curg is not None and m.runtime is self:
            self._make_runnable(task, from_m=True)
            return
        # From outside the runtime (the common case for an Executor): the
        # global queue, and a wake-up only if a P idles and nobody spins.
        if self._timed:
            task.ready_ns = _now()
        task.source = 0
        sched.global_queue.append(task)
        if sched.idle_ps and not sched.nmspinning:
            sched.wakep()

    def _reject(self, reason: str, message: str) -> None:
        with self._shutdown_lock:
            self._rejected[reason] += 1
        if self._hooks is not None:
            self._hooks.rejected(reason, None)
        raise RejectedError(reason, message)

    def _make_runnable(self, task: Task, *, from_m: bool) -> None:
        """Queue a task that became runnable (new, woken, timer fired, back from a call)."""
        task.state = TaskState.RUNNABLE
        if self._timed:
            task.ready_ns = _now()
        m = tls.m if from_m else None
        p = m.p if m is not None and m.runtime is self and m.curg is not None else None
        if p is not None:
            # Made runnable by the task running here: next in line on this P
            # (locality), the previous occupant of runnext goes to the queue.
            task.source = 1
            old = p.runnext
            p.runnext = task
            if old is not None:
                if len(p.runq) < LOCAL_CAPACITY:
                    p.runq.append(old)
                else:
                    overflow(p.runq, old, self._sched.global_queue)
        else:
            task.source = 0
            self._sched.global_queue.append(task)
        self._sched.wakep()

    def _sleep(self, task: Task, seconds: float) -> None:
        self._monitor.add_timer(_now() + int(seconds * 1e9), task)

    # --- lifecycle -------------------------------------------------------------------------

    def _submitted(self) -> int:
        return int(self._created.merged()[0])

    def _completed(self) -> int:
        return sum(m.completed for m in list(self._sched.all_ms))

    def _maybe_finish(self) -> None:
        """Called when closing and an M ran out of work: stop once no task is live."""
        if self._finished.is_set() or self._submitted() - self._completed() > 0:
            return
        with self._shutdown_lock:
            if self._finished.is_set():
                return
            self._finished.set()
        self._sched.stop()
        self._monitor.stop()
        if self._hooks is not None:
            self._hooks.close()

    def _m_exited(self, m: M) -> None:
        pass

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; with ``wait``, return once every live task finished.

        Queued tasks still run (a task parked forever keeps ``wait`` waiting, as
        a hung task does in ``ThreadPoolExecutor``).  ``cancel_futures`` cancels
        the futures of submitted tasks that have not started.
        """
        if self._forked:
            return  # a parent's runtime in a forked child: nothing of it runs here
        with self._shutdown_lock:
            self._closing = True
        if cancel_futures:
            sched = self._sched
            queued = list(sched.global_queue)
            for p in sched.procs:
                queued.extend(p.runq)
                if p.runnext is not None:
                    queued.append(p.runnext)
            for task in queued:
                if task.future is not None:
                    task.future.cancel()
        # With nothing running, no M will pass through its slow path to notice.
        if not any(p.status != P_IDLE for p in self._sched.procs) and not self._sched.has_work():
            self._maybe_finish()
        else:
            self._sched.wakep()
        if wait:
            self._finished.wait()
            me = threading.current_thread()
            for m in list(self._sched.all_ms):
                if m.thread is not me and m.thread.is_alive():
                    m.thread.join(timeout=5)

    # --- introspection ---------------------------------------------------------------------

    @property
    def procs(self) -> int:
        """Number of processors."""
        return self._sched.nprocs

    def resize(self, procs: int) -> None:
        """Change the number of processors (the elastic pool; see :class:`Autoscaler`).

        Growing adds idle Ps at once; shrinking retires the highest-numbered Ps,
        a busy one within 61 scheduling rounds of its M; what waited in a retired
        P's local queue moves to the global queue.
        """
        if isinstance(procs, bool) or not isinstance(procs, int) or procs < 1:
            raise ValueError(f"procs must be an int >= 1, got {procs!r}")
        if procs > self._sched.max_threads:
            raise ValueError(
                f"procs ({procs}) cannot exceed max_threads ({self._sched.max_threads})"
            )
        self._sched.resize(procs)

    def stats(self) -> RuntimeStats:
        """Counts at this moment (see :class:`RuntimeStats`)."""
        sched = self._sched
        procs = sched.procs
        ms = list(sched.all_ms)
        queued_local = sum(p.queued() for p in procs)
        queued_global = len(sched.global_queue)
        live_ms = [m for m in ms if not m.exited]
        syscall = sum(1 for m in live_ms if m.in_syscall)
        spinning = sum(1 for m in live_ms if m.spinning)
        running = sum(1 for m in live_ms if m.curg is not None and not m.in_syscall)
        idle_threads = max(len(live_ms) - syscall - spinning - running, 0)
        submitted = self._submitted()
        completed = sum(m.completed for m in ms)
        runnable = queued_local + queued_global
        waiting = max(submitted - completed - runnable - running - syscall, 0)
        with self._shutdown_lock:
            rejected = dict(self._rejected)
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
            preempt_flags=self._monitor.preempt_flags,
            long_running=sum(m.long_running for m in ms),
            threads_created=sched.threads_created,
            monitor_ticks=self._monitor.ticks,
            scale_outs=self._autoscaler.scale_outs if self._autoscaler is not None else 0,
            scale_ins=self._autoscaler.scale_ins if self._autoscaler is not None else 0,
            latency=self._latency(ms),
        )

    def _latency(self, ms: list[M]) -> dict[str, LatencyCounts]:
        bounds = self._latency_bounds
        if bounds is None:
            return {}
        n = len(bounds) + 1
        out: dict[str, LatencyCounts] = {}
        for source, queue in ((0, "global"), (1, "local")):
            counts = [0] * n
            total = 0
            low = high = None
            for m in ms:
                if m.latency_rows is None:
                    continue
                # A copy first: the M keeps writing; what we read is a consistent
                # enough prefix and the next read sees the rest.
                row = list(m.latency_rows[source])
                for i in range(n):
                    counts[i] += row[i]
                if sum(row[:n]):
                    total += row[n]
                    low = row[n + 1] if low is None else min(low, row[n + 1])
                    high = row[n + 2] if high is None else max(high, row[n + 2])
            out[queue] = LatencyCounts(bounds, tuple(counts), total, low or 0, high or 0)
        return out

    def __repr__(self) -> str:
        return f"<Runtime {self.name!r} procs={self.procs} closing={self._closing}>"
