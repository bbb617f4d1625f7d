"""Adapters: the metric contract for schedulers people already run.

- :class:`AsyncioInstrumentation` — an asyncio event loop (queue lengths,
  loop lag, optional task-level timing);
- :class:`InstrumentedThreadPoolExecutor` — a drop-in ``ThreadPoolExecutor``
  with submit → start latency and optional back-pressure;
- :class:`CeleryInstrumentation` — a Celery application across producers and
  workers: publish → start latency on clock-corrected time, time in the
  broker and reserved on the worker, broker queue lengths, rejections and
  retries.  Needs ``pip install 'schedobs[celery]'``; imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._asyncio import AsyncioInstrumentation
from ._thread_pool import InstrumentedThreadPoolExecutor

if TYPE_CHECKING:
    from ._celery import CeleryInstrumentation, TaskTiming

__all__ = [
    "AsyncioInstrumentation",
    "CeleryInstrumentation",
    "InstrumentedThreadPoolExecutor",
    "TaskTiming",
]

_CELERY = ("CeleryInstrumentation", "TaskTiming")


def __getattr__(name: str) -> Any:
    # Celery is an optional extra: importing schedobs.adapters must not need it.
    if name in _CELERY:
        try:
            import celery  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"schedobs.adapters.{name} needs Celery: pip install 'schedobs[celery]'"
            ) from exc
        from . import _celery

        return getattr(_celery, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
