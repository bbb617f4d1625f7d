"""Waiting for another thread's progress where there is nothing to block on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_until"]

_T = TypeVar("_T")


def wait_until(
    condition: Callable[[], _T],
    timeout: float = 10.0,
    *,
    what: str | Callable[[], object] = "the condition",
    interval: float = 0.005,
) -> _T:
    """Poll ``condition()`` every ``interval`` seconds until it is truthy; return its value.

    For progress made by another thread that offers no event to wait on (a
    counter, a queue length).  After ``timeout`` seconds it raises
    ``AssertionError`` naming ``what`` (a string, or a callable whose value is
    shown, such as a runtime's ``stats``), so a test fails with the state it
    was waiting on instead of hanging.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            shown = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {shown}")
        time.sleep(interval)
