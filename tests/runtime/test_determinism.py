"""The runtime's clock and randomness can be decided by a test.

``Runtime(clock=..., seed=...)``: every time stamp of the runtime (schedule
latency, timers, deadlines, system calls) is read from ``clock``, and the
choice of stealing victims from a generator seeded with ``seed``.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import pytest

from schedobs.runtime import Runtime, checkpoint


def _victim_orders(seed: int) -> list[list[int]]:
    with Runtime(procs=4, seed=seed) as rt:
        sched = rt._sched
        return [[p.id for p in sched.random_victims(sched.procs[0])] for _ in range(20)]


def test_a_seeded_runtime_replays_its_stealing_order() -> None:
    first = _victim_orders(11)
    assert first == _victim_orders(11)
    assert first != _victim_orders(12)
    assert {tuple(order) for order in first} != {tuple(first[0])}  # it does vary


def test_deadlines_are_read_on_the_runtime_s_clock() -> None:
    now = [0]
    spun = threading.Event()
    steps = [0]

    def spin() -> Generator[Any, Any, None]:
        while True:
            steps[0] += 1
            if steps[0] == 100:
                spun.set()
            yield checkpoint()

    with Runtime(procs=1, clock=lambda: now[0]) as rt:
        task = rt.spawn(spin, deadline_ns=1_000)
        # On the real clock a 1 µs deadline would have passed long ago: the task
        # would have timed out at its first checkpoint.
        assert spun.wait(5)
        assert not task.done()
        now[0] = 1_001  # the test moves time past the deadline
        with pytest.raises(TimeoutError):
            task.result(timeout=5)
    assert steps[0] >= 100


def test_schedule_latency_is_measured_on_the_runtime_s_clock() -> None:
    with Runtime(procs=2, instrument=True, name="still", clock=lambda: 42) as rt:
        for future in [rt.submit(abs, -i) for i in range(200)]:
            future.result(timeout=5)
    latency = rt.stats().latency  # after shutdown: every M has folded its counts
    counts = [c for c in latency.values() if c.count]
    assert sum(c.count for c in counts) == 200
    assert all(c.sum_ns == 0 and c.max_ns == 0 for c in counts)  # time stood still


def test_schedule_latency_keeps_an_injected_clock_s_nanoseconds() -> None:
    # Stamps are read as seconds (floats) and rounded back: on a clock a day in,
    # ticking 1,000 ns per read, every latency is a whole number of ticks.
    lock = threading.Lock()
    now = [86_400 * 10**9 + 7]

    def tick() -> int:
        with lock:
            now[0] += 1_000
            return now[0]

    with Runtime(procs=1, instrument=True, name="ticking", clock=tick) as rt:
        for future in [rt.submit(abs, -i) for i in range(300)]:
            future.result(timeout=5)
    counts = [c for c in rt.stats().latency.values() if c.count]
    assert sum(c.count for c in counts) == 300
    for c in counts:
        assert c.sum_ns % 1_000 == 0 and c.min_ns % 1_000 == 0 and c.max_ns % 1_000 == 0
        assert c.min_ns >= 1_000  # at least the start read came after the ready read


def test_clock_and_seed_are_checked() -> None:
    with pytest.raises(TypeError, match="clock must be a callable"):
        Runtime(clock=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be an int or None"):
        Runtime(seed="x")  # type: ignore[arg-type]
