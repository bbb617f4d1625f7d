"""The operations a task performs on the runtime: yield, sleep, block, park, checkpoint.

A coroutine task awaits them; a generator task yields them (``x = yield
sleep(0.1)`` works, since a generator receives what it is sent).  Each one
suspends the task with a small marker object that the M interprets::

    await gosched()            -> Gosched     re-queue at the tail, run others
    await sleep(s)             -> Sleep       park on a timer, no M held
    await blocking(fn, *a)     -> Blocking    run fn on this M as a system call
    await checkpoint()         -> Checkpoint  switch only if the monitor flagged us
    (channels, wait groups)    -> Park        park until another task wakes us

Plain callables cannot be suspended; they use :func:`syscall` around blocking
code instead, and are never preempted (the monitor counts one that runs long
as ``long_running``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from schedobs._checks import is_number

if TYPE_CHECKING:
    from ._machine import M
    from ._task import Task

__all__ = [
    "Blocking",
    "Checkpoint",
    "Gosched",
    "Park",
    "Sleep",
    "blocking",
    "blocking_wait",
    "checkpoint",
    "current_m",
    "gosched",
    "sleep",
    "syscall",
]

_T = TypeVar("_T")


class _ThreadState(threading.local):
    #: The M running on this thread; the class default answers for other threads
    #: without an exception (the lookup is on every submission).
    m: M | None = None


tls = _ThreadState()


def current_m() -> M | None:
    """The M of the calling thread, or ``None`` outside the runtime."""
    return tls.m


# The markers are awaitable themselves, so ``await gosched()`` in a coroutine
# and ``yield gosched()`` in a generator hand the M the same object.  The two
# singletons await through a C callable (``partial(iter, (marker,))``, held by a
# ``staticmethod`` so it is never bound: partial becomes a method descriptor in
# Python 3.14 and warns in 3.13), so a switch runs no Python frame of ours.


class Gosched:
    """Marker: re-queue me and run something else."""

    __slots__ = ()
    if TYPE_CHECKING:  # for type checkers; the real one is set below

        def __await__(self) -> Generator[Any, None, None]: ...


GOSCHED = Gosched()
Gosched.__await__ = staticmethod(partial(iter, (GOSCHED,)))  # type: ignore[method-assign]


class Checkpoint:
    """Marker: switch only if the monitor asked for preemption."""

    __slots__ = ()
    if TYPE_CHECKING:  # for type checkers; the real one is set below

        def __await__(self) -> Generator[Any, None, None]: ...


CHECKPOINT = Checkpoint()
Checkpoint.__await__ = staticmethod(partial(iter, (CHECKPOINT,)))  # type: ignore[method-assign]


class Sleep:
    """Marker: park me for ``seconds`` on the timer heap."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __await__(self) -> Generator[Any, None, None]:
        return iter((self,))  # type: ignore[return-value]


class Blocking:
    """Marker: run ``fn(*args, **kwargs)`` on my M as a blocking system call."""

    __slots__ = ("args", "fn", "kwargs")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)


class Park:
    """Marker: park me; ``register(task)`` runs on the M once I am suspended.

    ``register`` returns ``True`` if the task is now parked (someone will make
    it runnable later), or ``False`` if the wait is already over and the task
    should continue at once.  Registering after suspension is what makes a
    wake-up that races with the park safe (Go's ``gopark(unlockf)``).
    """

    __slots__ = ("register",)

    def __init__(self, register: Callable[[Task], bool]) -> None:
        self.register = register


def gosched() -> Gosched:
    """Yield the processor: the task goes to the back of its run queue.

    ``await gosched()`` in a coroutine, ``yield`` (or ``yield gosched()``) in a generator.
    """
    return GOSCHED


def checkpoint() -> Checkpoint:
    """A preemption point: switches only if the task has run too long (10 ms)."""
    return CHECKPOINT


def sleep(seconds: float) -> Sleep:
    """Sleep without holding an M: the task parks on a timer (``await``/``yield`` it)."""
    if not is_number(seconds):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if math.isnan(seconds):
        raise ValueError("seconds must not be NaN")
    return Sleep(max(float(seconds), 0.0))


def blocking(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Blocking:
    """Run ``fn(*args, **kwargs)`` as a blocking system call; awaiting gives its result.

    The task keeps its P at first; if the call lasts beyond the monitor's
    threshold, the P is handed to another M so the other tasks keep running.
    """
    if not callable(fn):
        raise TypeError(f"blocking() needs a callable, got {type(fn).__name__}")
    return Blocking(fn, args, kwargs)


def blocking_wait(wait: Callable[..., _T], /, *args: Any) -> _T:
    """Run ``wait(*args)``, a thread-blocking wait on the runtime's own primitives.

    Called from inside a task, the task's processor is released for the wait,
    as Go parks a goroutine blocked on a channel and its P moves on: the
    task's frame lives on this thread, so the thread blocks, and the P goes to
    another M at once when work waits for it (the awaited task is often on
    this very P's ``runnext``), or later through the monitor, as for a system
    call.  Outside a task it is just ``wait(*args)``.
    """
    m = tls.m
    g = None if m is None else m.curg
    if g is None:
        return wait(*args)
    assert m is not None
    sched = m.sched
    p = sched.entersyscall(m, g, park=True)
    try:
        return wait(*args)
    finally:
        sched.exitsyscall_here(m, g, p)


@contextmanager
def syscall() -> Iterator[None]:
    """Mark a blocking section inside a plain-callable task (a no-op elsewhere).

    >>> def task():                      # doctest: +SKIP
    ...     with syscall():
    ...         data = sock.recv(4096)   # the P may be handed off meanwhile
    """
    m = current_m()
    g = None if m is None else m.curg
    if g is None:
        yield
        return
    assert m is not None
    sched = m.sched
    p = sched.entersyscall(m, g, park=False)
    try:
        yield
    finally:
        sched.exitsyscall_here(m, g, p)
