"""A drop-in ``ThreadPoolExecutor`` that reports the contract, with optional back-pressure.

- ``scheduler.queue.length{queue=work}``: tasks waiting for a worker (the
  executor's work queue, read at collection).
- ``scheduler.schedule.latency{queue=work}``: submit → start of each task (exact).
- ``scheduler.rejected_tasks``: ``queue_full`` when ``max_queued`` is set and the
  queue is full (the standard library has no bound at all), ``shutdown`` after
  shutdown.

Example::

    pool = InstrumentedThreadPoolExecutor(max_workers=8, name="io", max_queued=1000)
    pool.submit(fetch, url)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from schedobs.contract import Registry, SchedulerMetrics
from schedobs.runtime import RejectedError

__all__ = ["InstrumentedThreadPoolExecutor"]

_T = TypeVar("_T")
_now = time.perf_counter


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
        if max_queued is not None and (
            isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 1
        ):
            raise ValueError(f"max_queued must be an int >= 1 or None, got {max_queued!r}")
        super().__init__(max_workers, thread_name_prefix, initializer, initargs)
        self.metrics = SchedulerMetrics(name, kind="thread_pool", registry=registry)
        self._latency = self.metrics.latency(queue="work")
        self._queue_full = self.metrics.rejections("queue_full")
        self._refused_shutdown = self.metrics.rejections("shutdown")
        self.metrics.queue_length_callback(self._work_queue.qsize, queue="work")
        self._max_queued = max_queued

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        if self._max_queued is not None and self._work_queue.qsize() >= self._max_queued:
            self._queue_full.add()
            raise RejectedError("queue_full", f"the work queue holds {self._max_queued} tasks")
        latency = self._latency
        enqueued = _now()

        def timed(*a: Any, **k: Any) -> _T:
            latency.observe((_now() - enqueued) * 1000.0)
            return fn(*a, **k)

        try:
            return super().submit(timed, *args, **kwargs)
        except RuntimeError:
            self._refused_shutdown.add()  # "cannot schedule new futures after shutdown"
            raise
