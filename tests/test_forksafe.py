"""A forked child can take the locks schedobs' background threads hold at the fork."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import pytest

from schedobs.clock import OffsetEstimator
from schedobs.contract import Registry, SchedulerMetrics

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _children_that_hang(work: callable, busy: callable, forks: int = 30) -> int:  # type: ignore[valid-type]
    """Fork ``forks`` times while a thread runs ``busy`` in a loop; in each child run
    ``work`` with a 3 s alarm.  How many children the alarm had to kill."""
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            busy()

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    hung = 0
    try:
        time.sleep(0.05)
        for _ in range(forks):
            with warnings.catch_warnings():  # 3.12+ warns about fork() with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler
                signal.alarm(3)
                try:
                    work()
                finally:
                    os._exit(0)
            _, status = os.waitpid(pid, 0)
            hung += os.WIFSIGNALED(status)
    finally:
        stop.set()
        thread.join()
    return hung


def test_a_child_gets_a_clock_estimate_while_the_prober_was_updating() -> None:
    """Without the fork guard, 45 of 50 children hung here (a Celery pool child
    publishing a retry waited forever for the estimator's lock)."""
    estimator = OffsetEstimator()

    def probe() -> None:
        t = time.time_ns()
        estimator.add_sample(t, t + 50_000, t + 50_000, t + 100_000)

    assert _children_that_hang(estimator.estimate, probe) == 0


def test_a_child_collects_a_registry_that_was_being_collected() -> None:
    registry = Registry()
    SchedulerMetrics("busy", registry=registry).reject("shutdown")
    assert _children_that_hang(registry.collect, registry.collect) == 0
