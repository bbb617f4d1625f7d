"""The contract for an asyncio event loop.

- ``scheduler.queue.length{queue=ready}``: handles ready to run; ``{queue=timer}``:
  handles scheduled for later.  Read at collection time from the loop's ready
  deque and timer heap (``_ready``, ``_scheduled``: private, but present with
  the same meaning in every CPython from 3.4 to 3.13).  A loop without them
  (uvloop, say) simply does not report queue lengths.
- ``scheduler.schedule.latency{queue=ready}``: loop lag, measured by a probe —
  every ``probe_interval`` a callback is scheduled with ``call_soon`` and the
  time until it runs is recorded.  It is exact for the probe (the same ready
  queue every handle waits in) and *sampled*: one observation per interval, not
  one per handle; per-handle timing would need the loop's private run loop.
- Optional task-level timing (``task_timing=True``): a task factory records,
  for every task, the time from creation to its first step, in the same
  ``scheduler.schedule.latency{queue=ready}`` series, and **replaces the
  probe**: the two measure different things (a task's wait for its first step,
  a sampled handle's wait) and mixed in one histogram neither distribution
  would mean anything.  The task and its coroutine are the ones asked for
  (names, ``repr``, ``get_coro()`` unchanged): the factory times the handle
  that runs the task's first step, which the loop has just queued.
- Optional default-executor timing (``default_executor=True``): the loop's
  default executor (``run_in_executor(None, ...)``, ``asyncio.to_thread``)
  becomes an :class:`InstrumentedThreadPoolExecutor` named ``<name>.executor``.

Instrumentations with the same ``name`` (one per ``asyncio.run()``, say) are
one scheduler: their counts add up and the series outlive the loops.

Example::

    async def main() -> None:
        instrumentation = AsyncioInstrumentation(name="api").install()  # the running loop
        ...

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
import weakref
from asyncio.format_helpers import _format_callback_source
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from schedobs._checks import is_number
from schedobs.contract import LatencyBatch, Registry, SchedulerMetrics
from schedobs.contract import exemplars as _exemplars

from ._thread_pool import InstrumentedThreadPoolExecutor

__all__ = ["AsyncioInstrumentation"]

_now = time.perf_counter
# Where the create_task fast path applies (see _install_timing).
_PY311 = sys.version_info[:2] == (3, 11)
# The create_task that _TaskTimer.create_task stands in for.
_LOOP_CREATE_TASK = asyncio.BaseEventLoop.create_task
_Task = asyncio.Task
_Handle = asyncio.Handle
_THIS_FILE = __file__
# How far from the end of the ready queue a new task's first step is looked for.
_STEP_SEARCH = 8


class AsyncioInstrumentation:
    """Reports the contract for one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        name: str = "asyncio",
        registry: Registry | None = None,
        probe_interval: float = 0.01,
        task_timing: bool = False,
        default_executor: bool = False,
        executor_workers: int | None = None,
    ) -> None:
        """``probe_interval``: seconds between loop-lag probes (unused with ``task_timing``);
        ``default_executor``: make the loop's default executor an instrumented pool of
        ``executor_workers`` threads (the standard library's default when ``None``)."""
        if not (is_number(probe_interval) and probe_interval > 0):
            raise ValueError(f"probe_interval must be a number > 0, got {probe_interval!r}")
        self._loop = loop
        self._registry = registry
        self._interval = probe_interval
        self._task_timing = task_timing
        self._default_executor = default_executor
        self._executor_workers = executor_workers
        #: The scheduler's metrics, shared by every instrumentation of the same name.
        self.metrics = SchedulerMetrics.shared(name, kind="asyncio", registry=registry)
        #: The instrumented default executor, once installed with ``default_executor``.
        self.executor: InstrumentedThreadPoolExecutor | None = None
        # One measure per series: per-task timing, when on, replaces the probe.
        self._latency = self.metrics.latency(queue="ready")
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._untime: Callable[[], None] | None = None
        self._detach: list[Callable[[], None]] = []
        self._installed = False
        # The waits of tasks run outside any span, binned in batches; one per loop.
        self._batch: LatencyBatch | None = None

    def install(self) -> AsyncioInstrumentation:
        """Start on ``loop`` (default: the running loop).  Call from the loop's thread.

        Idempotent: a second call on an installed instrumentation does nothing
        (it neither doubles the probe nor stacks the task factory).
        """
        if self._installed:
            return self
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        ready = getattr(loop, "_ready", None)
        scheduled = getattr(loop, "_scheduled", None)
        if isinstance(ready, deque) and isinstance(scheduled, list):
            # Weakly: a loop closed without uninstall() is neither kept alive nor counted.
            ref = weakref.ref(loop)
            self._detach.append(
                self.metrics.add_queue_length_source(
                    lambda: len(ready) if ref() is not None else 0, queue="ready"
                )
            )
            self._detach.append(
                self.metrics.add_queue_length_source(
                    lambda: len(scheduled) if ref() is not None else 0, queue="timer"
                )
            )
        if self._task_timing:
            self._untime = self._install_timing(loop)
        if self._default_executor:
            self.executor = InstrumentedThreadPoolExecutor(
                self._executor_workers,
                thread_name_prefix="asyncio",
                name=f"{self.metrics.name}.executor",
                registry=self._registry,
            )
            loop.set_default_executor(self.executor)
        self._installed = True
        if not self._task_timing:
            self._handle = loop.call_soon(self._probe)
        return self

    def uninstall(self) -> None:
        """Stop probing and restore the task factory.  The series stay (their counts are
        cumulative); the loop's queues stop counting.  The instrumented default
        executor, if any, stays the loop's: the loop shuts it down as it closes."""
        if not self._installed:
            return
        self._installed = False
        if self._handle is not None:
            self._handle.cancel()
        if self._untime is not None:
            self._untime()
            self._untime = None
        if self._batch is not None:
            # Not closed: a task created before this call may still take its first
            # step; the batch is forgotten with its loop.
            self._batch.flush()
        for detach in self._detach:
            detach()
        self._detach.clear()

    # --- the probe ------------------------------------------------------------------

    def _probe(self) -> None:
        if self._installed and self._loop is not None:
            self._handle = self._loop.call_soon(self._measure, _now())

    def _measure(self, scheduled: float) -> None:
        self._latency.observe((_now() - scheduled) * 1000.0)
        if self._installed and self._loop is not None:
            self._handle = self._loop.call_later(self._interval, self._probe)

    # --- task timing ------------------------------------------------------------------

    def _install_timing(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Time every new task's first step on ``loop``; returns what undoes it."""
        if self._batch is None or self._batch.orphaned:
            self._batch = self._latency.batch(owner=loop)
        ready = getattr(loop, "_ready", None)
        previous = loop.get_task_factory()
        timer = _TaskTimer(
            loop,
            ready if isinstance(ready, deque) else None,
            previous,
            self._latency.observe,
            self._batch,
        )
        if (
            _PY311
            and previous is None
            and timer.ready is not None
            and getattr(type(loop), "create_task", None) is _LOOP_CREATE_TASK
        ):
            # asyncio's own loop with no task factory: its create_task is replaced for
            # this loop only, by one that does the same and times the task.  A task
            # factory would do too, but asyncio's call through a factory alone costs
            # 2.6 % of a trivial task (docs/adapters.md, "Cost").
            loop.create_task = timer.create_task  # type: ignore[method-assign]

            def restore() -> None:
                if vars(loop).get("create_task") is timer.create_task:
                    del loop.create_task  # the class's own again

            return restore
        factory: Callable[..., asyncio.Future[Any]] = timer.factory
        loop.set_task_factory(factory)

        def unset() -> None:
            # A factory set after install() replaced ours (its tasks go untimed): it
            # stays the loop's.
            if loop.get_task_factory() == factory:
                loop.set_task_factory(previous)

        return unset


class _TaskTimer:
    """Per-task timing on one loop: the loop's ``create_task`` (or a task factory), and
    the handle class that each new task's first handle becomes.

    A task's first step is a plain :class:`asyncio.Handle` that the task's
    constructor has just put at the end of the loop's ready queue.  The timer
    changes that one handle's class to :attr:`handle_class`, a subclass with no
    fields of its own whose ``_run`` records the wait and then does exactly what
    ``Handle._run`` does.  Nothing else about the handle changes that anyone
    sees (its callback, context, ``repr`` and cancellation are asyncio's), and
    no Python frame is added to the step: a callback of ours in front of the
    task's step cost twice as much (two frames and a queue of steps, about
    0.35 µs a task against 0.18 µs; ``benchmarks/bench_adapters.py``).

    The handle carries its task's creation time in its own ``_args`` slot.  A
    task's step takes no arguments, so that slot always holds the empty tuple;
    while the handle is queued it holds the creation time instead, and ``_run``
    puts the empty tuple back before anything else can run (``repr`` shows
    asyncio's meanwhile).  The alternatives cost more: a tuple per task (an
    object the garbage collector tracks) 20 % of a trivial task's
    create-and-gather with 100k tasks alive; a queue of creation times beside
    the ready queue, read first in first out, ~630 instructions a task more
    than the slot (two calls, and the collector's passes over the queue), and
    it would go out of step if a queued handle were ever cancelled.

    The wait goes into ``batch`` (an append; binned ``batch.size`` at a time)
    unless exemplars are on and the task runs in an OpenTelemetry context: then
    it is observed on its own, in the task's context, so that its bucket can
    keep the trace.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: deque[Any] | None,
        previous: Callable[..., asyncio.Future[Any]] | None,
        observe: Callable[[float], None],
        batch: LatencyBatch,
    ) -> None:
        #: The loop's ready queue (``None``: a loop without one; tasks go untimed).
        self.ready = ready
        self.previous = previous
        #: What a timed task's first handle becomes.
        self.handle_class = _timed_handle_class(observe, batch)
        #: Stands in for the loop's own ``create_task`` (Python 3.11, no factory).
        self.create_task = self._make_create_task(loop)

    def factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        """The task factory (any Python, any previous factory): the task asked for,
        its first handle timed."""
        created = _now()
        if self.previous is not None:
            task = self.previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        self.time_first_step(task, created)
        return task

    def time_first_step(self, task: asyncio.Future[Any], created: float) -> None:
        """Time ``task``'s first step, which the loop has just queued: the last handle,
        or one of the last few if something else was queued after it (a finalizer run
        by a garbage collection during the task's construction, say).  A factory may
        have made something else, or nothing the loop runs, and a loop may queue
        handles of its own kind: those stay untimed."""
        ready = self.ready
        if not ready:
            return
        for index in range(-1, -1 - min(len(ready), _STEP_SEARCH), -1):
            handle: Any = ready[index]
            step, args = handle._callback, handle._args
            if type(handle) is _Handle and getattr(step, "__self__", None) is task and not args:
                handle.__class__ = self.handle_class
                handle._args = created  # type: ignore[assignment]  # until it runs (see the class)
                return

    def _make_create_task(self, loop: Any) -> Callable[..., asyncio.Task[Any]]:
        """``BaseEventLoop.create_task`` of Python 3.11, which also times the task.

        Spelled out because it runs for every task: ``asyncio.Task``'s constructor
        queues one handle, its first step, at the end of ``ready``.  Only a finalizer
        run by a garbage collection inside the constructor could queue another after
        it; one with arguments (the step has none, and they must not be overwritten)
        sends the task to :meth:`time_first_step`'s search, one without is timed in
        the step's place (the count stays exact, and the callback runs as queued).
        A task factory set on the loop later, debug mode's bookkeeping and a closed
        loop's error are left to the loop's own method, and the task it makes is
        timed after.
        """
        original = loop.create_task
        ready = self.ready
        handle_class, time_first_step = self.handle_class, self.time_first_step

        def create_task(
            coro: Coroutine[Any, Any, Any],
            *,
            name: str | None = None,
            context: contextvars.Context | None = None,
        ) -> asyncio.Task[Any]:
            created = _now()
            if loop._task_factory is not None or loop._debug or loop._closed:
                made: asyncio.Task[Any] = original(coro, name=name, context=context)
                stack = getattr(made, "_source_traceback", None)
                if stack and stack[-1].filename == _THIS_FILE:
                    del stack[-1]  # the creation traceback ends at the caller, as without us
                time_first_step(made, created)
                return made
            task: asyncio.Task[Any] = _Task(coro, loop=loop, name=name, context=context)  # type: ignore[call-arg,unused-ignore]  # 3.11+
            handle = ready[-1]  # type: ignore[index]  # not None where used
            if handle._args:  # not the step, which has none: found by the general check
                time_first_step(task, created)
            else:
                handle.__class__ = handle_class
                handle._args = created  # until it runs (see _TaskTimer)
            return task

        return create_task


def _timed_handle_class(
    observe: Callable[[float], None], batch: LatencyBatch
) -> type[asyncio.Handle]:
    """A subclass of :class:`asyncio.Handle` (named ``Handle``, so that ``repr`` is
    asyncio's) whose ``_run`` records the wait of the task it starts.

    Its instances are tasks' first steps, whose ``_args`` holds the task's creation
    time while they are queued (see :class:`_TaskTimer`).  ``_run`` is asyncio's own
    (the same in CPython 3.10 to 3.13) with the recording in front; it is written
    out rather than calling the base class's, because that call alone was half of
    the timing's cost.
    """
    pending, size, flush = batch.pending, batch.size, batch.flush

    class Handle(_Handle):
        __slots__ = ()

        def _run(self) -> None:
            waited = _now() - self._args  # type: ignore[operator]  # the creation time (see _TaskTimer)
            self._args = ()  # asyncio's value again, before anything else runs
            var = _exemplars.context_var
            if var is not None and self._context.get(var):  # type: ignore[attr-defined]
                self._context.run(observe, waited * 1000.0)  # type: ignore[attr-defined]
            else:
                pending.append(waited)
                if len(pending) >= size:
                    flush()
            try:
                # A task's step takes no arguments: called without unpacking any,
                # Context.run is a vectorcall, not a call through a new tuple
                # (~0.1-0.2 us, more than half of what timing the task costs).
                self._context.run(self._callback)  # type: ignore[attr-defined]
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                _report(self, exc)
                # As asyncio does: a traceback the handler keeps must not keep the handle.
                del self

        def _repr_info(self) -> list[str]:
            created = self._args
            if isinstance(created, float):  # queued: show the empty tuple it stands for
                self._args = ()
                try:
                    return super()._repr_info()  # type: ignore[misc,no-any-return]
                finally:
                    self._args = created
            return super()._repr_info()  # type: ignore[misc,no-any-return]

    return Handle


def _report(handle: Any, exc: BaseException) -> None:
    """What ``asyncio.Handle._run`` does with an exception its callback raised."""
    source = _format_callback_source(handle._callback, handle._args)
    context: dict[str, Any] = {
        "message": f"Exception in callback {source}",
        "exception": exc,
        "handle": handle,
    }
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    handle._loop.call_exception_handler(context)
