"""G: a lightweight task, and the handle a caller keeps for it.

A task is one of three forms, decided once when it is created:

- a plain callable, run to completion on an M;
- a generator (from a generator function): each ``yield`` is a cooperative
  switch, and ``x = yield op`` performs a runtime operation;
- a coroutine (from an ``async def``) that awaits the runtime's primitives.

Completion (:meth:`Task.finish`) is signalled without a lock per task: a
joiner publishes a waiter first and re-checks the state, the finisher writes
the state first and then reads the waiters, so one of the two always sees the
other.  A task started by ``submit()`` hands its outcome to its future and
keeps no reference to it: the runtime never keeps a result alive.
"""

from __future__ import annotations

import contextvars
import enum
import logging
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import Any, Final

from ._ops import blocking_wait
from ._runqueue import FROM_GLOBAL

__all__ = ["CALLABLE", "COROUTINE", "GENERATOR", "SyscallState", "Task", "TaskState"]

# Task forms.
CALLABLE: Final = 0
GENERATOR: Final = 1
COROUTINE: Final = 2

_CO_GENERATOR: Final = 0x20
_CO_COROUTINE: Final = 0x80
_CO_ITERABLE_COROUTINE: Final = 0x100
_CO_SUSPENDABLE: Final = _CO_COROUTINE | _CO_GENERATOR | _CO_ITERABLE_COROUTINE

_log: Final = logging.getLogger("schedobs")


class TaskState(enum.IntEnum):
    """Where a task is in its life."""

    RUNNABLE = 0  #: waiting in a run queue
    RUNNING = 1  #: executing on an M
    SYSCALL = 2  #: inside a blocking call (see :class:`SyscallState`)
    WAITING = 3  #: parked: sleeping, or waiting on a channel or wait group
    DONE = 4  #: finished (result, exception or cancelled)


_DONE: Final[TaskState] = TaskState.DONE
_RUNNABLE: Final[TaskState] = TaskState.RUNNABLE


class SyscallState(enum.IntEnum):
    """The system-call state machine: IDLE → PREPARE → BLOCKED → RESUMED → READY → IDLE.

    PREPARE: the task announced a blocking call; BLOCKED: the call runs (the
    monitor may hand the P to another M); RESUMED: the call returned and the M
    is reacquiring a P; READY: no P was free, the task waits in the global queue.
    """

    IDLE = 0
    PREPARE = 1
    BLOCKED = 2
    RESUMED = 3
    READY = 4


_done_lock = threading.Lock()  # guards waiter lists only (rarely taken)
_ids = iter(range(1, 1 << 62)).__next__  # atomic under the GIL: a C iterator


def reset_after_fork() -> None:
    """A fresh waiter lock in a forked child (a parent thread may have held it)."""
    global _done_lock
    _done_lock = threading.Lock()


class Task:
    """A runtime task (a G).  Returned by :func:`Runtime.go`; join it or await it.

    >>> t = runtime.go(work, 1, 2)     # doctest: +SKIP
    >>> t.join(); t.result()           # doctest: +SKIP
    """

    # Slots keep a task to one garbage-collected object (a dict per task would
    # double the collector's work when many tasks are alive).  Only what the hot
    # path reads is set here; rare fields live in ``ext``.
    __slots__ = (
        "args",
        "ctx",
        "exc",
        "ext",
        "fn",
        "form",
        "future",
        "it",
        "kwargs",
        "preempt",
        "ready",
        "result_value",
        "resume",
        "source",
        "state",
        "throw",
        "waiters",
    )
    fn: Callable[..., Any] | None
    args: tuple[Any, ...] | None
    kwargs: dict[str, Any] | None
    #: The submitter's context, or None when it was empty: the task then runs in
    #: its M's clean context, and takes a copy of it only if it sets a variable
    #: (see :mod:`._machine`), so an untraced task costs no context switch.
    ctx: contextvars.Context | None
    future: Future[Any] | None
    state: TaskState
    preempt: bool
    waiters: list[Callable[[], object]] | None
    ext: _Extra | None
    form: int
    #: What the M resumes: the generator or coroutine inside the M's driver
    #: (None until the first step).
    it: Generator[Any, Any, None] | None
    #: A value to send in at the next resume (None: resume by iteration).
    resume: Any
    throw: BaseException | None
    result_value: Any
    exc: BaseException | None
    #: The runtime's clock, in seconds, when the task last became runnable
    #: (instrumented runtimes; see :func:`._latency.seconds_clock`).
    ready: float
    #: The queue it waited in: 0 global, 1 local (schedule latency by queue).
    source: int

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        ctx: contextvars.Context | None,
        future: Future[Any] | None = None,
    ) -> None:
        self.ctx = ctx
        self.future = future
        self.state = _RUNNABLE
        self.preempt = False
        self.waiters = None
        self.ext = None
        self.source = FROM_GLOBAL
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        # result_value/exc are set when finished; ready when queued (if timed).
        try:
            flags = fn.__code__.co_flags
        except AttributeError:
            flags = 0
        if not flags & _CO_SUSPENDABLE:
            self.form = CALLABLE
            return
        # A generator or coroutine function.  The object is made by the M at the
        # first step (see _drive.drive): a queued task then holds no
        # generator, and a short one's generator dies young, which CPython's
        # collector does not count (a backlog of live generators made go() 4x
        # slower through GC).
        self.form = GENERATOR if flags & _CO_GENERATOR else COROUTINE
        self.it = None
        self.resume = None
        self.throw = None

    def extra(self) -> _Extra:
        """The rarely used fields (id, deadline, tenant, system-call times), made on demand."""
        ext = self.ext
        if ext is None:
            ext = self.ext = _Extra()
        return ext

    @property
    def id(self) -> int:
        """A process-wide task number, given on first use."""
        ext = self.extra()
        if not ext.id:
            ext.id = _ids()
        return ext.id

    @property
    def syscall_state(self) -> SyscallState:
        """Where the task is in the system-call state machine."""
        ext = self.ext
        return SyscallState.IDLE if ext is None else ext.syscall_state

    @property
    def tenant(self) -> str | None:
        """The tenant the task belongs to (multi-tenant runtimes)."""
        ext = self.ext
        return None if ext is None else ext.tenant

    # --- completion: the one path every task takes (called by its M) --------------

    def finish(self, value: Any, exc: BaseException | None) -> None:
        """Record the outcome, resolve the future, wake joiners.

        A task with a future (``submit``) gives the outcome to the future only:
        the caller holds the future, and nothing of the runtime's holds the result.
        """
        self.fn = self.args = self.kwargs = self.it = None
        future = self.future
        if future is None:
            self.result_value = value
            self.exc = exc
            self.state = _DONE  # state first, then the waiters (see the module doc)
        else:
            self.future = None
            self.result_value = self.exc = None
            self.state = _DONE
            if exc is None:
                future.set_result(value)
            else:
                future.set_exception(exc)
        if self.waiters is not None:
            self._notify()

    def cancelled_before_start(self) -> None:
        """The task's future was cancelled while it waited: it ends without running."""
        self.future = None
        self.finish(None, None)

    def _notify(self) -> None:
        """Wake everyone who registered through :meth:`_add_waiter` (once each)."""
        with _done_lock:
            waiters, self.waiters = self.waiters or [], []
        for wake in waiters:
            try:
                wake()
            except Exception:  # a callback's failure must not break the M
                _log.exception("task done-callback failed")

    # --- public handle --------------------------------------------------------------

    def done(self) -> bool:
        """Whether the task has finished."""
        return self.state is _DONE

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the task is done (at once if it already is).

        It runs on the thread that finishes the task: keep it short.
        """
        if not self._add_waiter(callback):
            callback()

    def _add_waiter(self, wake: Callable[[], object]) -> bool:
        """Register ``wake``; ``False`` (not registered) if the task is already done."""
        if self.state is _DONE:
            return False
        with _done_lock:
            if self.waiters is None:
                self.waiters = []
            self.waiters.append(wake)
            # Re-check after publishing: the finisher writes the state before
            # reading the waiter list, so one of us sees the other.
            if self.state is _DONE:
                self.waiters.remove(wake)
                return False
        return True

    def _remove_waiter(self, wake: Callable[[], object]) -> None:
        with _done_lock:
            if self.waiters and wake in self.waiters:
                self.waiters.remove(wake)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the task finishes; ``False`` if ``timeout`` seconds passed first.

        From inside another task, the waiting task's processor runs other work
        meanwhile (see :func:`~schedobs.runtime.blocking_wait`).
        """
        if self.state is _DONE:
            return True
        waiter = threading.Lock()
        waiter.acquire()
        if not self._add_waiter(waiter.release):
            return True
        ok = blocking_wait(waiter.acquire, True, -1 if timeout is None else max(timeout, 0.0))
        if not ok:
            self._remove_waiter(waiter.release)
        return ok or self.state is _DONE

    def result(self, timeout: float | None = None) -> Any:
        """The task's return value (re-raises its exception); waits like :meth:`join`."""
        if not self.join(timeout):
            raise TimeoutError(f"task {self.id} did not finish within {timeout} s")
        if self.exc is not None:
            raise self.exc
        return self.result_value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception, or ``None``; waits like :meth:`join`."""
        if not self.join(timeout):
            raise TimeoutError(f"task {self.id} did not finish within {timeout} s")
        return self.exc

    def syscall_times(self) -> dict[str, float]:
        """Seconds this task spent in each system-call state so far."""
        times = (self.ext.syscall_ns if self.ext is not None else None) or {}
        return {state.name: times.get(state, 0) / 1e9 for state in SyscallState if state}

    def __await__(self) -> Generator[Any, None, Any]:
        """Await the task from an asyncio event loop (or any loop with futures)."""
        import asyncio

        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def resolve() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(resolve)

        if self._add_waiter(wake):
            yield from waiter
        if self.exc is not None:
            raise self.exc
        return self.result_value

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.state.name}>"


class _Extra:
    """Fields few tasks need."""

    __slots__ = ("deadline_ns", "id", "syscall_mark", "syscall_ns", "syscall_state", "tenant")

    def __init__(self) -> None:
        self.id = 0
        #: Deadline on the runtime's clock: past it, the task gets TimeoutError at its next
        #: checkpoint (0: none).
        self.deadline_ns = 0
        self.syscall_state = SyscallState.IDLE
        self.syscall_ns: dict[SyscallState, int] = {}
        self.syscall_mark = 0
        self.tenant: str | None = None


def record_syscall(task: Task, state: SyscallState, clock: Callable[[], int]) -> int:
    """Attribute the time since the last transition to the task's current syscall
    state, then enter ``state``.  Returns the time stamp (``clock()``, the runtime's)."""
    now = clock()
    ext = task.extra()
    old = ext.syscall_state
    if old:
        ext.syscall_ns[old] = ext.syscall_ns.get(old, 0) + now - ext.syscall_mark
    ext.syscall_state = state
    ext.syscall_mark = now
    return now
