"""A runtime and its process: what happens at interpreter exit and after ``os.fork()``.

**Exit.**  The standard executors join their workers at exit, so a submitted
task runs even if the program never calls ``shutdown()``.  The runtime's
threads are daemons (a parked M must never keep a process alive by itself),
so it does the same explicitly: ``threading``'s exit hook (the one
``concurrent.futures`` uses, run before non-daemon threads are joined and
before ``atexit`` handlers) drains every live runtime — queued tasks run,
running tasks finish, cancelled futures stay cancelled — and joins its Ms.
Afterwards a submission raises ``RuntimeError("cannot schedule new futures
after interpreter shutdown")``, as the standard executors' does.  Tasks that
can never finish (parked on a channel nothing will signal, with nothing
runnable, running, blocked or sleeping) would hang the exit: they are
reported in one warning with their count, and the exit proceeds.

**Fork.**  Only the forking thread exists in the child: the Ms and the monitor
are gone, and a lock one of them held stays held.  Module locks are renewed,
and each runtime refuses work with a clear error.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

from . import _future, _task

if TYPE_CHECKING:
    from ._sched import Scheduler

__all__ = ["interpreter_exiting", "register"]

_log = logging.getLogger("schedobs")
_schedulers: weakref.WeakSet[_Registration] = weakref.WeakSet()
_exiting = False

#: How long the exit waits between checks for tasks that can never finish, and
#: how many checks in a row must agree (a task between two states looks stuck
#: for an instant).
_STUCK_POLL_S = 0.05
_STUCK_CHECKS = 3


class _Registration:
    """A scheduler's entry in the registry, owned by the scheduler itself.

    The registry holds these weakly, not the schedulers: a compiled scheduler
    (:mod:`schedobs._compiled`) cannot be weakly referenced.  The entry and its
    scheduler refer to each other, so the entry lives exactly as long.
    """

    __slots__ = ("__weakref__", "sched")

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched


def register(sched: Scheduler) -> object:
    """Drain ``sched`` at interpreter exit; refuse its work after a fork.

    Returns the registration, which ``sched`` must keep (it is registered for as
    long as it does).
    """
    entry = _Registration(sched)
    _schedulers.add(entry)
    return entry


def _registered() -> list[Scheduler]:
    return [entry.sched for entry in list(_schedulers)]


def interpreter_exiting() -> bool:
    """Whether the interpreter's exit hook ran (new work is then refused)."""
    return _exiting


def drain(sched: Scheduler) -> None:
    """Finish every accepted task of ``sched`` (or report those that cannot), join its Ms."""
    if sched.forked:
        return
    sched.close(cancel_futures=False)
    agreeing = 0
    while not sched.finished.wait(_STUCK_POLL_S):
        stuck = sched.stuck()
        agreeing = agreeing + 1 if stuck else 0
        if agreeing >= _STUCK_CHECKS:
            _log.warning(
                "runtime %r: %d task(s) still waiting at interpreter exit on channels or wait "
                "groups that nothing can signal any more; they cannot finish and are abandoned",
                sched.name,
                stuck,
            )
            return
    sched.join_threads(timeout=10)


def _at_exit() -> None:
    global _exiting
    _exiting = True
    for sched in _registered():
        drain(sched)


def _after_fork_in_child() -> None:
    _future.reset_after_fork()
    _task.reset_after_fork()
    for sched in _registered():
        sched.after_fork_in_child()


# threading._register_atexit (3.9+) is what concurrent.futures uses: it runs
# while the interpreter is still whole.  Feature-detected; plain atexit runs
# later but still before daemon threads are stopped.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_at_exit)
else:  # pragma: no cover - CPython has had it since 3.9
    import atexit

    atexit.register(_at_exit)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
