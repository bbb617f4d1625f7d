"""A ``concurrent.futures.Future`` that costs little until somebody waits on it.

The standard ``Future`` builds a ``Condition`` (a lock and two lists) at
creation and takes it on every transition: about 2.7 µs per task here, more
than the runtime's own scheduling.  Most futures of a busy executor are
resolved before anyone waits, so :class:`RuntimeFuture` creates the condition
lazily, on the first wait or callback, and resolves without a lock until then.

Why it is safe: the resolver and the first waiter race for one *gate*, an
entry of the instance dict that ``dict.setdefault`` fills atomically (under
the GIL, and under the per-object lock of free-threaded builds):

- the resolver writes the result, then offers ``FINISHED`` to the gate.  If it
  wins, no condition existed before the future was final, so nobody can be
  waiting for a notification: whoever creates the condition later reads the
  final state under it;
- the creator of the condition offers the new condition to the gate.  If it
  wins, every later resolution happens *under* that condition, exactly as in
  the standard ``Future``, so ``wait()`` never counts one completion twice
  (once as already done, once as notified).  If it loses, the result is
  already written and the creator makes the state final itself before it
  publishes the condition.

Starting and cancelling race for a second token (``dict.pop`` is atomic): the
winner decides whether the task runs, as the standard lock does.

Everything else — ``wait()``, ``as_completed()``, ``asyncio.wrap_future()``,
callbacks, ``InvalidStateError``, ``repr`` — is the standard class's code;
CPython's own ``FutureTests`` run against this class in the test suite.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
    InvalidStateError,
)
from typing import Any, TypeVar

from ._ops import blocking_wait

__all__ = ["RuntimeFuture"]

_T = TypeVar("_T")
_create_lock = threading.Lock()  # serialises creators only (rare)
_FINAL = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)
_CANCELLED = (CANCELLED, CANCELLED_AND_NOTIFIED)


def reset_after_fork() -> None:
    """A fresh creation lock in a forked child (a parent thread may have held it)."""
    global _create_lock
    _create_lock = threading.Lock()


class RuntimeFuture(Future[_T]):
    """A standard ``Future`` with a lazily created condition (see the module doc).

    Waiting on it from inside a runtime task releases the task's processor
    while it waits, so the awaited task can run (see :func:`._ops.blocking_wait`).
    """

    def __init__(self) -> None:  # the base __init__ builds what we defer
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._cond: threading.Condition | None = None
        self._unclaimed = True  # popped by whichever of start/cancel comes first

    # --- the lazily created parts of the standard Future ---------------------------

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        cond = self._cond
        if cond is None:
            with _create_lock:
                cond = self._cond
                if cond is None:
                    self._waiters_list: list[Any] = []
                    self._callbacks_list: list[Any] = []
                    cond = threading.Condition()
                    if self.__dict__.setdefault("_gate", cond) is not cond:
                        # The resolver won: its result is written; make the state
                        # final before anyone can read it under the condition.
                        self._state = FINISHED
                    self._cond = cond  # published last: a condition implies the lists
        return cond

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        self._condition  # noqa: B018 - creates the lists
        return self._waiters_list

    @property
    def _done_callbacks(self) -> list[Any]:
        self._condition  # noqa: B018
        return self._callbacks_list

    # --- lock-free reads --------------------------------------------------------------

    def done(self) -> bool:
        return self._state in _FINAL

    def running(self) -> bool:
        return self._state == RUNNING

    def cancelled(self) -> bool:
        return self._state in _CANCELLED

    def result(self, timeout: float | None = None) -> _T:
        if self._state == FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result  # type: ignore[no-any-return]
        if self._state in _CANCELLED:
            return super().result(timeout)  # raises CancelledError
        return blocking_wait(super().result, timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state == FINISHED:
            return self._exception
        if self._state in _CANCELLED:
            return super().exception(timeout)
        return blocking_wait(super().exception, timeout)

    # --- transitions --------------------------------------------------------------------

    def set_running_or_notify_cancel(self) -> bool:
        if self.__dict__.pop("_unclaimed", None):
            # RUNNING is not a final state: no waiter counts on seeing it, so it
            # needs no condition even when one exists.
            self._state = RUNNING
            return True
        # cancel() took the token (it holds the condition while it does).
        with self._condition:
            if self._state == CANCELLED:
                self._state = CANCELLED_AND_NOTIFIED
                for waiter in self._waiters_list:
                    waiter.add_cancelled(self)
                return False
            raise RuntimeError(f"Future in unexpected state: {self._state}")

    def cancel(self) -> bool:
        with self._condition:
            if self._state in (RUNNING, FINISHED):
                return False
            if self._state in _CANCELLED:
                return True
            if not self.__dict__.pop("_unclaimed", None):
                return False  # the runtime started it a moment ago
            self._state = CANCELLED
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True

    def _resolve(self, result: Any, exception: BaseException | None) -> None:
        if self._state in _FINAL:
            raise InvalidStateError(f"{self._state}: {self!r}")
        cond = self._cond
        if cond is None:
            self._result = result
            self._exception = exception
            gate = self.__dict__.setdefault("_gate", FINISHED)
            if gate is FINISHED:
                self._state = FINISHED  # won: no condition saw this future pending
                return
            cond = gate  # a condition was created first: resolve under it
        with cond:
            if self._state in _FINAL:
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._exception = exception
            self._state = FINISHED
            for waiter in self._waiters_list:
                if exception is None:
                    waiter.add_result(self)
                else:
                    waiter.add_exception(self)
            cond.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def set_result(self, result: _T) -> None:
        self._resolve(result, None)

    def set_exception(self, exception: BaseException | None) -> None:
        self._resolve(None, exception)
