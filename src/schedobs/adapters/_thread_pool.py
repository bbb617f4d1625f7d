"""A drop-in ``ThreadPoolExecutor`` that reports the contract, with optional back-pressure.

- ``scheduler.queue.length{queue=work}``: tasks waiting for a worker (the
  executor's work queue, read at collection).
- ``scheduler.schedule.latency{queue=work}``: submit → start of each task (exact).
- ``scheduler.rejected_tasks``: ``queue_full`` when ``max_queued`` is set and the
  queue is full (the standard library has no bound at all), ``shutdown`` after
  shutdown.

Pools with the same ``name`` (the default ``thread_pool``, say, for pools made
per request) are one scheduler: their counts add up, their queue lengths are
summed, and the series outlive the pools (see ``SchedulerMetrics.shared``).

The cost is one clock read on each side and an append: ``submit`` queues a work
item like the standard library's own that carries its enqueue time, not a
wrapper closure around the task, and the worker appends the wait to the pool's
batch, binned 256 at a time and at every collection
(:meth:`LatencyHistogram.batch`; see ``docs/adapters.md`` for figures).  A
worker runs no OpenTelemetry context of the submitter's, so no exemplar is lost.

Example::

    pool = InstrumentedThreadPoolExecutor(max_workers=8, name="io", max_queued=1000)
    pool.submit(fetch, url)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import thread as _thread
from typing import Any, TypeVar

from schedobs._checks import is_int
from schedobs._compiled import mypyc_attr
from schedobs.contract import LatencyBatch, Registry, SchedulerMetrics
from schedobs.runtime import RejectedError

__all__ = ["InstrumentedThreadPoolExecutor"]

_T = TypeVar("_T")
_now = time.perf_counter

# What submit() needs from the standard library's executor to queue its own work items;
# present with the same meaning from CPython 3.9 to 3.13 (and its workers only ever
# call a work item's run() and its future's cancel(); 3.14 passes run() a context).
# Elsewhere the portable path wraps the task in a closure (slower, same figures).
_FAST = (
    sys.version_info < (3, 14)
    and all(hasattr(_thread, attr) for attr in ("_global_shutdown_lock", "BrokenThreadPool"))
    and hasattr(_thread, "_shutdown")
)


class _TimedWorkItem:
    """What the pool's workers run: the standard library's work item (the same four
    fields and ``run()``, which is all its workers and ``shutdown`` use), which also
    knows when it was queued and where its wait goes.

    A class of its own rather than a subclass, so that the compiled build makes it
    a native class (it runs once per task; see :mod:`schedobs._compiled`)."""

    __slots__ = ("args", "batch", "enqueued", "fn", "future", "kwargs")

    def __init__(
        self,
        future: Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        batch: LatencyBatch,
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.batch = batch
        self.enqueued = _now()

    def run(self) -> None:
        # The standard library's run(), with the start recorded once the task is
        # known not to be cancelled (a cancelled task never started).
        if not self.future.set_running_or_notify_cancel():
            return
        # The pool's one batch, shared by its workers: list.append is atomic, and a
        # flush takes its values out under the batch's lock.  LatencyBatch.add,
        # spelled out: one call less per task.
        batch = self.batch
        pending = batch.pending
        pending.append(_now() - self.enqueued)
        if len(pending) >= batch.size:
            batch.flush()
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            self = None  # type: ignore[assignment]  # break the cycle through the traceback, as the stdlib does
        else:
            self.future.set_result(result)


# Subclasses written in Python stay possible when this module is compiled.
@mypyc_attr(allow_interpreted_subclasses=True)
class InstrumentedThreadPoolExecutor(ThreadPoolExecutor):
    """``ThreadPoolExecutor`` + the metric contract (``scheduler.kind=thread_pool``)."""

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        name: str = "thread_pool",
        registry: Registry | None = None,
        max_queued: int | None = None,
    ) -> None:
        if max_queued is not None and (not is_int(max_queued) or max_queued < 1):
            raise ValueError(f"max_queued must be an int >= 1 or None, got {max_queued!r}")
        super().__init__(max_workers, thread_name_prefix, initializer, initargs)
        #: The scheduler's metrics, shared by every pool of the same ``name``.
        self.metrics = SchedulerMetrics.shared(name, kind="thread_pool", registry=registry)
        self._latency = self.metrics.latency(queue="work")
        # Forgotten by the series once the pool is gone (after a last flush).
        self._batch = self._latency.batch(owner=self)
        self._queue_full = self.metrics.rejections("queue_full")
        self._refused_shutdown = self.metrics.rejections("shutdown")
        self._detach = self.metrics.add_queue_length_source(self._work_queue.qsize, queue="work")
        self._max_queued = max_queued

    # ``__fn``: positional-only for the compiler too, which reads a bare ``/`` as
    # positional-or-keyword, so that ``submit(f, fn=1)`` passes ``fn`` on to ``f``.
    def submit(self, __fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        if self._max_queued is not None and self._work_queue.qsize() >= self._max_queued:
            self._queue_full.add()
            raise RejectedError("queue_full", f"the work queue holds {self._max_queued} tasks")
        if not _FAST:
            return self._submit_wrapped(__fn, *args, **kwargs)
        # The standard library's submit, with a work item that carries its enqueue
        # time: no closure around the task and no second call frame per task.
        with self._shutdown_lock, _thread._global_shutdown_lock:
            if self._broken:
                raise _thread.BrokenThreadPool(self._broken)
            if self._shutdown or _thread._shutdown:
                self._refused_shutdown.add()
                what = "shutdown" if self._shutdown else "interpreter shutdown"
                raise RuntimeError(f"cannot schedule new futures after {what}")
            future: Future[_T] = Future()
            self._work_queue.put(_TimedWorkItem(future, __fn, args, kwargs, self._batch))  # type: ignore[arg-type]
            self._adjust_thread_count()
            return future

    def _submit_wrapped(self, __fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        latency = self._latency
        enqueued = _now()

        def timed(*a: Any, **k: Any) -> _T:
            latency.observe((_now() - enqueued) * 1000.0)
            return __fn(*a, **k)

        try:
            return super().submit(timed, *args, **kwargs)
        except RuntimeError:
            self._refused_shutdown.add()  # "cannot schedule new futures after shutdown"
            raise

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As the standard library's; the pool's queue stops counting in the scheduler's
        queue length (its counts stay)."""
        try:
            super().shutdown(wait=wait, cancel_futures=cancel_futures)
        finally:
            if wait:  # every worker has finished: its waits are all in the batch
                self._detach()
                self._batch.close()
