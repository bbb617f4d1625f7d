"""The elastic processor pool: scales out on backlog, settles, scales in when idle, in bounds."""

from __future__ import annotations

import threading
import time

import pytest

from schedobs.runtime import Autoscaler, Runtime
from schedobs.testing import wait_until


def spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def test_resize_grows_and_shrinks_without_losing_tasks() -> None:
    rt = Runtime(procs=1, name="resize")
    try:
        done = []
        lock = threading.Lock()

        def work(i: int) -> None:
            spin(0.05)
            with lock:
                done.append(i)

        for i in range(3000):
            rt.go(work, i)
        rt.resize(4)
        assert rt.procs == 4
        # The new Ps took work.
        wait_until(lambda: rt.stats().processors - rt.stats().processors_idle >= 2, what=rt.stats)
        rt.resize(1)  # busy Ps retire at their next check; their queues move to global
        assert rt.procs == 1
        rt.shutdown(wait=True)
        assert sorted(done) == list(range(3000))
        assert len(rt._sched.procs) == 1
    finally:
        rt.shutdown()
    with pytest.raises(ValueError, match="procs must be an int >= 1"):
        rt.resize(0)


def test_a_step_load_scales_out_settles_and_scales_back_in() -> None:
    rt = Runtime(procs=1, name="elastic")
    scaler = Autoscaler(rt, min_procs=1, max_procs=6, threshold=8, interval=0.02,
                        patience=2, idle_patience=10, cooldown=3)  # fmt: skip
    try:
        # A step: a steady backlog of tasks for a while.
        stop = threading.Event()

        def feeder() -> None:
            while not stop.is_set():
                if rt.stats().queued_global < 200:
                    for _ in range(50):
                        rt.go(spin, 0.2)
                time.sleep(0.005)

        t = threading.Thread(target=feeder)
        t.start()
        for _ in range(60):  # drive the autoscaler deterministically
            scaler.step()
            time.sleep(0.02)
        stop.set()
        t.join()
        during = list(scaler.history)
        assert scaler.scale_outs >= 1
        assert rt.procs > 1
        assert all(1 <= after <= 6 for _, after in during)
        # No flapping under the steady load: never out, in, out again.
        directions = [after > before for before, after in during]
        assert directions == sorted(directions, reverse=True)

        # Idle now: it shrinks back, one step at a time, to the minimum.
        def shrunk() -> bool:
            scaler.step()
            return rt.procs == 1

        wait_until(shrunk, interval=0.01, what=rt.stats)
        assert scaler.scale_ins >= 1
        assert rt.stats().scale_ins == scaler.scale_ins
    finally:
        scaler.close()
        rt.shutdown()


def test_bad_bounds() -> None:
    rt = Runtime(procs=1)
    try:
        with pytest.raises(ValueError, match="min_procs <= max_procs"):
            Autoscaler(rt, min_procs=3, max_procs=2)
    finally:
        rt.shutdown()
