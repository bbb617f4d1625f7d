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
  would mean anything.  It wraps each task's coroutine, so ``task.get_coro()``
  returns the wrapper.

Example::

    instrumentation = AsyncioInstrumentation(name="api").install()   # in the loop
    ...
    instrumentation.uninstall()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from schedobs.contract import Registry, SchedulerMetrics

__all__ = ["AsyncioInstrumentation"]

_now = time.perf_counter


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
    ) -> None:
        """``probe_interval``: seconds between loop-lag probes (unused with ``task_timing``)."""
        if not probe_interval > 0:
            raise ValueError(f"probe_interval must be > 0, got {probe_interval!r}")
        self._loop = loop
        self._interval = probe_interval
        self._task_timing = task_timing
        self.metrics = SchedulerMetrics(name, kind="asyncio", registry=registry)
        # One measure per series: per-task timing, when on, replaces the probe.
        self._latency = self.metrics.latency(queue="ready")
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._previous_factory: Any = None
        self._installed = False

    def install(self) -> AsyncioInstrumentation:
        """Start on ``loop`` (default: the running loop).  Call from the loop's thread."""
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        ready = getattr(loop, "_ready", None)
        scheduled = getattr(loop, "_scheduled", None)
        if ready is not None and scheduled is not None:
            self.metrics.queue_length_callback(lambda: len(ready), queue="ready")
            self.metrics.queue_length_callback(lambda: len(scheduled), queue="timer")
        if self._task_timing:
            self._previous_factory = loop.get_task_factory()
            loop.set_task_factory(self._factory)  # type: ignore[arg-type]
        self._installed = True
        if not self._task_timing:
            self._handle = loop.call_soon(self._probe)
        return self

    def uninstall(self) -> None:
        """Stop probing, restore the task factory, and unregister the metrics."""
        if not self._installed:
            return
        self._installed = False
        if self._handle is not None:
            self._handle.cancel()
        if self._task_timing and self._loop is not None:
            self._loop.set_task_factory(self._previous_factory)
        self.metrics.close()

    # --- the probe ------------------------------------------------------------------

    def _probe(self) -> None:
        if self._installed and self._loop is not None:
            self._handle = self._loop.call_soon(self._measure, _now())

    def _measure(self, scheduled: float) -> None:
        self._latency.observe((_now() - scheduled) * 1000.0)
        if self._installed and self._loop is not None:
            self._handle = self._loop.call_later(self._interval, self._probe)

    # --- task timing ------------------------------------------------------------------

    def _factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        wrapped = self._timed(coro, _now())
        if self._previous_factory is not None:
            return self._previous_factory(loop, wrapped, **kwargs)  # type: ignore[no-any-return]
        return asyncio.Task(wrapped, loop=loop, **kwargs)

    async def _timed(self, coro: Coroutine[Any, Any, Any], created: float) -> Any:
        self._latency.observe((_now() - created) * 1000.0)
        return await coro
