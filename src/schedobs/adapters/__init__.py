"""Adapters: the metric contract for schedulers people already run.

- :class:`AsyncioInstrumentation` — an asyncio event loop (queue lengths,
  loop lag, optional task-level timing);
- :class:`InstrumentedThreadPoolExecutor` — a drop-in ``ThreadPoolExecutor``
  with submit → start latency and optional back-pressure.
"""

from ._asyncio import AsyncioInstrumentation
from ._thread_pool import InstrumentedThreadPoolExecutor

__all__ = ["AsyncioInstrumentation", "InstrumentedThreadPoolExecutor"]
