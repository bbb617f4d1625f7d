"""Go-like channels and wait groups, so tasks wait on each other without holding an M.

A coroutine or generator task that must wait parks (see :class:`._ops.Park`):
its M moves on to other work, and the task that unblocks it makes it runnable
again (next on that P, as Go's ``ready``).  Registration happens after the
task is suspended, so a wake-up can never run a task that is still running.

Plain callables and outside threads use the ``*_blocking`` forms: the thread
waits, and inside the runtime its P is released for the wait
(:func:`._ops.blocking_wait`).
"""

from __future__ import annotations

import threading
import types
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from schedobs._checks import is_int

from ._ops import Park, blocking_wait, current_m

if TYPE_CHECKING:
    from ._sched import Scheduler
    from ._task import Task

__all__ = ["Chan", "ChannelClosedError", "WaitGroup"]

_T = TypeVar("_T")


class ChannelClosedError(Exception):
    """Receive from a closed, drained channel; send on (or close of) a closed channel."""


class _Waiter:
    """A parked task waiting on a channel or wait group (``value``: what it sends)."""

    __slots__ = ("sched", "task", "value")

    def __init__(self, task: Task, sched: Scheduler, value: Any = None) -> None:
        self.task = task
        self.sched = sched
        self.value = value

    def wake(self, value: Any = None, exc: BaseException | None = None) -> None:
        task = self.task
        if exc is not None:
            task.throw = exc
        else:
            task.resume = value
        sched = self.sched
        sched.make_runnable(task, sched.here())


class _ThreadWaiter:
    """A thread (a plain-callable task or an outside thread) waiting on a channel."""

    __slots__ = ("_lock", "exc", "received", "value")

    def __init__(self, value: Any = None) -> None:
        self.value = value
        self.received: Any = None
        self.exc: BaseException | None = None
        self._lock = threading.Lock()
        self._lock.acquire()

    def wake(self, value: Any = None, exc: BaseException | None = None) -> None:
        self.received = value
        self.exc = exc
        self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        return blocking_wait(self._lock.acquire, True, -1 if timeout is None else max(timeout, 0))

    def outcome(self) -> Any:
        if self.exc is not None:
            raise self.exc
        return self.received


def _scheduler_of_caller() -> Scheduler:
    m = current_m()
    if m is None:
        raise RuntimeError(
            "only a coroutine or generator task can await a channel or a wait group; "
            "threads and plain callables use send_blocking/recv_blocking/wait_blocking"
        )
    return m.sched


class Chan(Generic[_T]):
    """A channel of ``capacity`` slots (0: unbuffered, a send waits for a receiver).

    >>> async def producer(ch):          # doctest: +SKIP
    ...     for i in range(3):
    ...         await ch.send(i)
    ...     ch.close()
    >>> async def consumer(ch):          # doctest: +SKIP
    ...     return [v async for v in ch]
    """

    def __init__(self, capacity: int = 0) -> None:
        if not is_int(capacity) or capacity < 0:
            raise ValueError(f"capacity must be an int >= 0, got {capacity!r}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._buf: deque[_T] = deque()
        self._recvq: deque[_Waiter] = deque()
        self._sendq: deque[_Waiter] = deque()
        self._closed = False

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # --- sending -------------------------------------------------------------------

    def _try_send_locked(self, value: _T) -> bool:
        if self._closed:
            raise ChannelClosedError("send on a closed channel")
        if self._recvq:
            self._recvq.popleft().wake(value)
            return True
        if len(self._buf) < self.capacity:
            self._buf.append(value)
            return True
        return False

    def try_send(self, value: _T) -> bool:
        """Send without waiting; ``False`` if no receiver waits and the buffer is full."""
        with self._lock:
            return self._try_send_locked(value)

    @types.coroutine
    def send(self, value: _T) -> Generator[Any, Any, None]:
        """Send ``value``, waiting (parked) for room or a receiver."""
        with self._lock:
            if self._try_send_locked(value):
                return
        sched = _scheduler_of_caller()

        def register(task: Task) -> bool:
            with self._lock:
                try:
                    if self._try_send_locked(value):
                        return False
                except ChannelClosedError as exc:
                    task.throw = exc
                    return False
                self._sendq.append(_Waiter(task, sched, value))
                return True

        yield Park(register)

    def send_blocking(self, value: _T, timeout: float | None = None) -> None:
        """Send from a thread (a plain-callable task or any thread), waiting for room.

        Raises ``TimeoutError`` if nothing took the value within ``timeout``
        seconds (the value is then not sent), :class:`ChannelClosedError` if
        the channel is or gets closed.
        """
        with self._lock:
            if self._try_send_locked(value):
                return
            waiter = _ThreadWaiter(value)
            self._sendq.append(waiter)  # type: ignore[arg-type]
        self._wait_thread(waiter, self._sendq, timeout, "send")
        waiter.outcome()

    # --- receiving -----------------------------------------------------------------

    def _try_recv_locked(self) -> tuple[bool, _T | None]:
        if self._buf:
            value = self._buf.popleft()
            if self._sendq:  # a waiting sender's value takes the freed slot
                sender = self._sendq.popleft()
                self._buf.append(sender.value)
                sender.wake()
            return True, value
        if self._sendq:  # unbuffered: take the value straight from the sender
            sender = self._sendq.popleft()
            sender.wake()
            return True, sender.value
        if self._closed:
            raise ChannelClosedError("receive from a closed channel")
        return False, None

    def try_recv(self) -> tuple[_T | None, bool]:
        """Receive without waiting: ``(value, True)``, or ``(None, False)`` if nothing waits.

        Raises :class:`ChannelClosedError` once the channel is closed and drained.
        """
        with self._lock:
            ok, value = self._try_recv_locked()
        return value, ok

    @types.coroutine
    def recv(self) -> Generator[Any, Any, _T]:
        """Receive a value, waiting (parked) for one; :class:`ChannelClosedError` when done."""
        with self._lock:
            ok, value = self._try_recv_locked()
        if ok:
            return value  # type: ignore[return-value]
        sched = _scheduler_of_caller()

        def register(task: Task) -> bool:
            with self._lock:
                try:
                    ok, value = self._try_recv_locked()
                except ChannelClosedError as exc:
                    task.throw = exc
                    return False
                if ok:
                    task.resume = value
                    return False
                self._recvq.append(_Waiter(task, sched))
                return True

        received: _T = yield Park(register)
        return received

    def recv_blocking(self, timeout: float | None = None) -> _T:
        """Receive from a thread (a plain-callable task or any thread), waiting for a value.

        Raises ``TimeoutError`` after ``timeout`` seconds without one, and
        :class:`ChannelClosedError` once the channel is closed and drained.
        """
        with self._lock:
            ok, value = self._try_recv_locked()
            if ok:
                return value  # type: ignore[return-value]
            waiter = _ThreadWaiter()
            self._recvq.append(waiter)  # type: ignore[arg-type]
        self._wait_thread(waiter, self._recvq, timeout, "receive")
        received: _T = waiter.outcome()
        return received

    def _wait_thread(
        self, waiter: _ThreadWaiter, queue: deque[Any], timeout: float | None, what: str
    ) -> None:
        if waiter.wait(timeout):
            return
        with self._lock:
            if waiter in queue:  # not woken: withdraw, nothing was exchanged
                queue.remove(waiter)
                raise TimeoutError(f"channel {what} did not complete within {timeout} s")
        waiter.wait(None)  # woken as the timeout passed: the exchange happened

    def close(self) -> None:
        """Close: waiting receivers and senders get :class:`ChannelClosedError`; buffered
        values can still be received."""
        with self._lock:
            if self._closed:
                raise ChannelClosedError("close of a closed channel")
            self._closed = True
            receivers, self._recvq = self._recvq, deque()
            senders, self._sendq = self._sendq, deque()
        for waiter in receivers:
            waiter.wake(exc=ChannelClosedError("receive from a closed channel"))
        for waiter in senders:
            waiter.wake(exc=ChannelClosedError("send on a closed channel"))

    def __aiter__(self) -> Chan[_T]:
        return self

    @types.coroutine
    def __anext__(self) -> Generator[Any, Any, _T]:
        """Receive until the channel is closed and drained."""
        try:
            value: _T = yield from self.recv()
        except ChannelClosedError:
            raise StopAsyncIteration from None
        return value


class WaitGroup:
    """Wait for a set of tasks to finish: ``add`` before starting, ``done`` in each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._waiters: list[_Waiter] = []
        self._zero = threading.Condition(self._lock)

    @property
    def count(self) -> int:
        """The counter."""
        return self._count

    def add(self, n: int = 1) -> None:
        """Add ``n`` (may be negative); waiters wake when the counter reaches zero."""
        if not is_int(n):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        with self._lock:
            if self._count + n < 0:
                raise ValueError(f"WaitGroup counter would become negative ({self._count} + {n})")
            self._count += n
            if self._count:
                return
            waiters, self._waiters = self._waiters, []
            self._zero.notify_all()
        for waiter in waiters:
            waiter.wake()

    def done(self) -> None:
        """Decrement the counter by one."""
        self.add(-1)

    @types.coroutine
    def wait(self) -> Generator[Any, Any, None]:
        """Wait (parked) until the counter is zero."""
        if self._count == 0:
            return
        sched = _scheduler_of_caller()

        def register(task: Task) -> bool:
            with self._lock:
                if self._count == 0:
                    return False
                self._waiters.append(_Waiter(task, sched))
                return True

        yield Park(register)

    def wait_blocking(self, timeout: float | None = None) -> bool:
        """Wait from a thread (a plain-callable task or any thread); ``False`` on timeout."""
        return blocking_wait(self._wait_zero, timeout)

    def _wait_zero(self, timeout: float | None) -> bool:
        with self._lock:
            return self._zero.wait_for(lambda: self._count == 0, timeout)
