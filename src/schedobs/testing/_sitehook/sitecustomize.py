"""A start-up hook for processes run under libfaketime (``LD_PRELOAD``).

Debian 12's libfaketime 0.9.10 makes every ``time.sleep()`` fail with EINVAL
under ``FAKETIME_DONT_FAKE_MONOTONIC=1`` on Python 3.11: CPython sleeps with
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, …)`` and the library
mishandles it.  Celery sleeps in places (result polling, prefork shutdown),
so such a process sleeps through ``select()`` instead, which libfaketime
leaves alone.  :func:`schedobs.testing.faketime_env` puts this directory on
``PYTHONPATH`` of those processes only; nothing else in schedobs depends on it.
"""

from __future__ import annotations

import os

_FAKED = os.environ.get("FAKETIME") or os.environ.get("FAKETIME_TIMESTAMP_FILE")
if _FAKED and "faketime" in os.environ.get("LD_PRELOAD", ""):
    import select
    import time

    _monotonic = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + seconds
        while (left := deadline - _monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep  # type: ignore[assignment]
