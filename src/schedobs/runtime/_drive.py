"""The driver an M resumes for a generator or coroutine task.

It stays interpreted in the compiled build (see :mod:`schedobs._compiled`):
``yield from`` a coroutine needs a generator whose code object is marked as an
iterable coroutine (``types.coroutine``), and a compiled generator has no code
object to mark.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["drive"]


@types.coroutine
def drive(
    task: Task, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None
) -> Generator[Any, Any, None]:
    """What an M resumes for a generator or coroutine task.

    Its first resume calls ``fn`` (which runs none of the task's code, only
    makes the generator or coroutine; wrong arguments raise here, into the
    task).  The task's return value lands in ``result_value`` and the driver
    itself returns ``None``, so an M that resumes it with a ``for`` loop sees
    the end without a ``StopIteration``: in CPython a caught exception costs a
    traceback and a frame object for the catching frame, ~0.3–0.7 µs per task,
    more than the rest of its scheduling.  ``yield from`` passes every
    operation, sent value and thrown exception through unchanged
    (``types.coroutine`` lets it delegate to a coroutine).
    """
    coro = fn(*args) if kwargs is None else fn(*args, **kwargs)
    task.result_value = yield from coro
