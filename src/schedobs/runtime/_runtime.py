"""Runtime: the public façade of the GMP scheduler, a ``concurrent.futures.Executor``.

It validates arguments, builds the :class:`~._sched.Scheduler` (which owns all
scheduling state) and wraps calls into tasks; it holds no scheduling rule.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from schedobs._checks import is_int, is_number

from . import _process
from ._errors import RejectedError
from ._future import RuntimeFuture
from ._machine import M
from ._sched import Scheduler
from ._stats import RuntimeHooks, RuntimeStats
from ._task import Task

__all__ = ["RejectedError", "Runtime"]

_T = TypeVar("_T")
_copy_context = contextvars.copy_context


def _procs(procs: int | None, max_workers: int | None) -> int:
    """The number of Ps: ``procs``, or ``max_workers`` (``ThreadPoolExecutor``'s name for
    it, with its error), or one per CPU."""
    if max_workers is not None:
        if procs is not None:
            raise TypeError("give procs or max_workers (its ThreadPoolExecutor name), not both")
        if is_int(max_workers) and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")  # the stdlib's words
        procs = max_workers
    return _int_at_least("procs", os.cpu_count() or 1 if procs is None else procs, 1)


def _check_settings(
    procs: int,
    max_threads: int,
    max_queued: int | None,
    syscall_threshold: float,
    preempt_after: float,
    name: str,
    warm_threads: int,
    groups: int,
) -> None:
    """Refuse a runtime's settings at the boundary, each with the value given."""
    _int_at_least("max_threads", max_threads, 1)
    if max_threads < procs:
        raise ValueError(f"max_threads ({max_threads}) must be >= procs ({procs})")
    if max_queued is not None and (not is_int(max_queued) or max_queued < 1):
        raise ValueError(f"max_queued must be an int >= 1 or None, got {max_queued!r}")
    for what, secs in (("syscall_threshold", syscall_threshold), ("preempt_after", preempt_after)):
        if not is_number(secs) or not secs > 0:
            raise ValueError(f"{what} must be a number of seconds > 0, got {secs!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    for what, count, least in (("warm_threads", warm_threads, 0), ("groups", groups, 1)):
        if not is_int(count) or count < least:
            raise ValueError(f"{what} must be an int >= {least}, got {count!r}")


def _contract_hooks(name: str, metrics: Any, registry: Any) -> tuple[RuntimeHooks, Any]:
    """Hooks that report the contract to ``metrics`` (made under ``name`` if None)."""
    from ._instrument import ContractHooks

    if metrics is None:
        from schedobs.contract import SchedulerMetrics

        metrics = SchedulerMetrics(name, kind="gmp", registry=registry)
    return ContractHooks(metrics), metrics


def _cpus(pin: bool | Sequence[int]) -> list[int]:
    if pin is False:
        return []
    if pin is True:
        affinity = getattr(os, "sched_getaffinity", None)
        return sorted(affinity(0)) if affinity is not None else []
    cpus = list(pin)
    if not cpus or any(not is_int(c) or c < 0 for c in cpus):
        raise ValueError(f"pin_cpus must be True, False or CPU numbers, got {pin!r}")
    return cpus


def _int_at_least(what: str, value: object, low: int) -> int:
    if not is_int(value):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {value}")
    return value


class Runtime(Executor):
    """A Go-style scheduler: G tasks on M threads holding P processors.

    >>> from schedobs.runtime import Runtime, sleep
    >>> with Runtime(procs=2, name="workers") as rt:     # doctest: +SKIP
    ...     future = rt.submit(pow, 2, 10)                 # a plain callable
    ...     task = rt.go(fetch_all, urls)                  # an async def, fire-and-forget
    ...     future.result(), task.result()

    A drop-in ``Executor``: CPython's own ``test_concurrent_futures`` passes
    against it.  Accepted tasks run even if the program exits without calling
    :meth:`shutdown` (as with the standard executors).

    Args:
        procs: number of Ps (the GOMAXPROCS analogue); default: CPU count.
        max_workers: the same number under the name ``ThreadPoolExecutor`` gives
            it, so code written for the standard executor works unchanged.
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
        clock: the runtime's time stamps, in nanoseconds, monotonic (default
            ``time.perf_counter_ns``): schedule latency, timers, deadlines, system
            calls and the monitor's retake and preemption rules read it.  For tests
            that decide time themselves; the monitor's own waits stay real time.
        seed: seeds the choice of stealing victims (``None``: from the OS), so that
            a test can replay an order.
    """

    def __init__(
        self,
        procs: int | None = None,
        *,
        max_workers: int | None = None,
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
        clock: Callable[[], int] = time.perf_counter_ns,
        seed: int | None = None,
    ) -> None:
        procs = _procs(procs, max_workers)
        _check_settings(procs, max_threads, max_queued, syscall_threshold, preempt_after, name,
                        warm_threads, groups)  # fmt: skip
        cpus = _cpus(pin_cpus)
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning nanoseconds, got {clock!r}")
        if seed is not None and not is_int(seed):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        if hooks is None and (metrics is not None or instrument):
            hooks, metrics = _contract_hooks(name, metrics, registry)
        self.metrics = metrics
        """The :class:`~schedobs.contract.SchedulerMetrics` this runtime reports to, or None."""
        self.name = name
        self._sched = Scheduler(
            runtime=self,
            procs=procs,
            max_threads=max_threads,
            max_queued=max_queued,
            name=name,
            hooks=hooks,
            make_m=M,
            syscall_threshold_ns=int(syscall_threshold * 1e9),
            preempt_after_ns=int(preempt_after * 1e9),
            pin_cpus=cpus,
            groups=groups,
            clock=clock,
            seed=seed,
        )
        if _process.interpreter_exiting():
            # Too late to run anything (and Python 3.12+ starts no thread now).
            self._sched.close_unstarted()
        else:
            self._sched.registration = _process.register(self._sched)
            self._sched.start(warm_threads)
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
        self._sched.submit(Task(fn, args, kwargs or None, ctx, future))
        return future

    def go(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Task:
        """Start ``fn(*args, **kwargs)`` as a task, fire-and-forget; returns its handle."""
        ctx: contextvars.Context | None = _copy_context()
        if not len(ctx):  # type: ignore[arg-type]
            ctx = None  # see Task.ctx
        task = Task(fn, args, kwargs or None, ctx)
        self._sched.submit(task)
        return task

    def spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        deadline_ns: int = 0,
        tenant: str | None = None,
    ) -> Task:
        """Start a task with options, for schedulers layered on the runtime.

        ``deadline_ns`` (an instant on :attr:`clock`; 0: none): past it, a
        coroutine or generator task gets ``TimeoutError`` at its next checkpoint.
        ``tenant``: the tenant the task is accounted to (:attr:`Task.tenant`).
        """
        ctx: contextvars.Context | None = _copy_context()
        if not len(ctx):  # type: ignore[arg-type]
            ctx = None
        task = Task(fn, tuple(args), kwargs or None, ctx)
        if deadline_ns or tenant is not None:
            ext = task.extra()
            ext.deadline_ns = deadline_ns
            ext.tenant = tenant
        self._sched.submit(task)
        return task

    # --- lifecycle -------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks from outside; with ``wait``, return once every live task finished.

        Queued tasks still run, and running tasks may still start tasks of their
        own (they are part of the accepted work).  A task parked forever keeps
        ``wait`` waiting, as a hung task does in ``ThreadPoolExecutor``.
        ``cancel_futures`` cancels the futures of submitted tasks that have not
        started.  Without ``wait``, the work still completes in the background,
        and at the latest when the interpreter exits.
        """
        sched = self._sched
        if sched.forked:
            return  # a parent's runtime in a forked child: nothing of it runs here
        sched.close(cancel_futures=cancel_futures)
        if wait:
            sched.finished.wait()
            sched.join_threads(timeout=5)

    @property
    def finished(self) -> bool:
        """Whether the runtime shut down and every accepted task has finished."""
        return self._sched.finished.is_set()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """After :meth:`shutdown`, wait until every accepted task finished (``False``: timeout)."""
        return self._sched.finished.wait(timeout)

    # --- introspection ---------------------------------------------------------------------

    @property
    def procs(self) -> int:
        """Number of processors."""
        return self._sched.nprocs

    @property
    def clock(self) -> Callable[[], int]:
        """The runtime's clock (nanoseconds; ``time.perf_counter_ns`` unless given)."""
        return self._sched.clock

    @property
    def instrumented(self) -> bool:
        """Whether the runtime has hooks (and so counts schedule latency)."""
        return self._sched.hooks is not None

    def resize(self, procs: int) -> None:
        """Change the number of processors (the elastic pool; see :class:`Autoscaler`).

        Growing adds idle Ps at once; shrinking retires the highest-numbered Ps,
        a busy one within 61 scheduling rounds of its M; what waited in a retired
        P's local queue moves to the global queue.  Each change counts as a
        scale event (``scheduler.scale_events``).
        """
        if not is_int(procs) or procs < 1:
            raise ValueError(f"procs must be an int >= 1, got {procs!r}")
        if procs > self._sched.max_threads:
            raise ValueError(
                f"procs ({procs}) cannot exceed max_threads ({self._sched.max_threads})"
            )
        self._sched.resize(procs)

    def stats(self) -> RuntimeStats:
        """Counts at this moment (see :class:`RuntimeStats`)."""
        return self._sched.stats()

    def __repr__(self) -> str:
        return f"<Runtime {self.name!r} procs={self.procs} closing={self._sched.closing}>"
