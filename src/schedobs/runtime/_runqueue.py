"""Run queues: the global queue and each P's bounded local queue.

Both are ``collections.deque``: ``append`` and ``popleft`` are atomic, so the
owner, thieves and the global-queue consumers can race without a lock and a
task is still taken exactly once (whoever's ``popleft`` returns it).  The local
queue's bound (256, as Go's) is enforced by ``Scheduler.runnable``, the one way
in: a task that does not fit goes to the global queue, where idle Ps find it.

::

    submit (outside) ──► global ──► batch into local (owner)
    go / wake-up (inside a task) ──► runnext ─┐   (displaced: local tail; full: global)
    yield ──► local tail (full: global) ──────┼─► M runs it
                          thief ◄── local ◄───┘   steal takes half from the head
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._task import Task

__all__ = [
    "FROM_GLOBAL", "FROM_LOCAL", "GLOBAL_CHECK_ROUNDS", "LOCAL_CAPACITY", "steal_half",
    "take_batch",
]  # fmt: skip

LOCAL_CAPACITY: Final = 256
#: Every this many scheduling rounds an M looks at the global queue before its local
#: one (Go's ``schedtick % 61``), so that a P busy with its own tasks cannot starve
#: the global queue; a prime, so that it does not fall into step with a workload's
#: own period.  The same round folds the M's latency batch.
GLOBAL_CHECK_ROUNDS: Final = 61
#: Which queue a runnable task waited in (``Task.source``; the latency series'
#: ``scheduler.queue``): the global queue or a P's local queue (runnext included).
FROM_GLOBAL: Final = 0
FROM_LOCAL: Final = 1


def take_batch(global_queue: deque[Task], local: deque[Task], nprocs: int) -> Task | None:
    """Take one task to run now and a fair batch into ``local`` (Go's ``globrunqget``)."""
    # A share of what waits (counting the one returned), but never more than
    # half the local capacity nor more than fits.
    n = min(len(global_queue) // nprocs + 1, LOCAL_CAPACITY // 2, LOCAL_CAPACITY - len(local) + 1)
    try:
        first = global_queue.popleft()
    except IndexError:
        return None
    for _ in range(n - 1):
        try:
            local.append(global_queue.popleft())
        except IndexError:
            break
    return first


def steal_half(victim: deque[Task], into: deque[Task]) -> Task | None:
    """Steal half of ``victim``'s queue (at least one); return one to run now.

    Never moves more than ``into`` has room for (Go steals only into an empty queue).
    """
    n = min((len(victim) + 1) // 2, LOCAL_CAPACITY - len(into) + 1)
    if n == 0:
        return None
    try:
        first = victim.popleft()
    except IndexError:
        return None
    for _ in range(n - 1):
        try:
            into.append(victim.popleft())
        except IndexError:
            break
    return first
