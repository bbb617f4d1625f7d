"""Wait until a runtime has gone quiet, instead of sleeping (trio's ``wait_all_tasks_blocked``)."""

from __future__ import annotations

import time

from schedobs.runtime import Runtime, RuntimeStats

__all__ = ["wait_all_tasks_blocked"]


def _quiet(stats: RuntimeStats) -> bool:
    return stats.tasks_runnable == 0 and stats.threads_running == 0 and stats.threads_spinning == 0


def wait_all_tasks_blocked(
    runtime: Runtime, *, timeout: float = 10.0, cushion: float = 0.002
) -> RuntimeStats:
    """Return once no task of ``runtime`` is runnable or running and no thread seeks work.

    Every task is then done, asleep on a timer, parked on a channel or wait
    group, or blocked in a system call or a runtime wait (``Future.result``,
    ``Task.join``, ...): the moment a test can check what the tasks did, with
    no sleep standing in for synchronisation.  The state must hold on two reads
    ``cushion`` seconds apart (an M between two tasks looks idle for an
    instant).  A plain callable blocked outside the runtime's primitives (say
    ``threading.Event.wait``) counts as running: put such waits in
    :func:`~schedobs.runtime.syscall`.

    >>> rt.go(worker, channel)                    # doctest: +SKIP
    >>> wait_all_tasks_blocked(rt)                # worker now waits on the channel
    >>> assert len(channel) == 0                  # doctest: +SKIP

    Returns the stats read last; raises ``TimeoutError`` (with them) if the
    runtime is still busy after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while True:
        stats = runtime.stats()
        now = time.monotonic()
        if not _quiet(stats):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= cushion:
            return stats
        if now > deadline:
            raise TimeoutError(f"runtime {runtime.name!r} still busy after {timeout} s: {stats}")
        time.sleep(cushion / 2)
