"""The Celery adapter: publish → start across hosts, on corrected clocks.

Private package; the public names are re-exported by :mod:`schedobs.adapters`.

- :mod:`._timing`: the publish stamp and the arithmetic of cross-clock latency;
- :mod:`._relay`: prefork pool children → the worker's main process;
- :mod:`._broker`: broker queue lengths through kombu;
- :mod:`._instrumentation`: the signal handlers that tie them together.
"""

from ._instrumentation import CeleryInstrumentation
from ._timing import TaskTiming

__all__ = ["CeleryInstrumentation", "TaskTiming"]
