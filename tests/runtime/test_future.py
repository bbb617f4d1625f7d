"""RuntimeFuture: the lazily created condition never counts one completion twice.

CPython's own FutureTests run against the class in test_stdlib_executor.py; these
tests aim at the race its laziness adds.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from schedobs.runtime import Runtime, RuntimeFuture
from schedobs.testing import wait_until


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """GIL hand-offs every 10 µs: resolvers and waiters interleave at every bytecode."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _job(i: int) -> int:
    if i % 2:
        time.sleep(0)  # a GIL release in the middle of the task
    return i


@pytest.mark.usefixtures("fast_switching")
def test_wait_all_completed_never_returns_with_a_future_pending() -> None:
    # Before the gate, a future resolved while wait() built its condition was
    # counted done *and* notified: ALL_COMPLETED woke with futures pending.
    for _ in range(10):
        with Runtime(2) as rt:
            futures = [rt.submit(_job, i) for i in range(2000)]
            done, not_done = cf.wait(futures, timeout=10)
            assert not not_done, f"{len(not_done)} of 2000 pending after wait() returned"
            assert len(done) == 2000


def test_a_condition_made_after_resolution_sees_the_final_state() -> None:
    f: RuntimeFuture[str] = RuntimeFuture()
    f.set_running_or_notify_cancel()
    f.set_result("x")  # lock-free: no condition yet
    seen: list[str] = []
    f.add_done_callback(lambda fut: seen.append(fut.result()))  # builds the condition
    assert seen == ["x"]
    assert cf.wait([f], timeout=0).not_done == set()
    with pytest.raises(cf.InvalidStateError):
        f.set_result("y")


def test_resolution_after_a_waiter_goes_through_the_condition() -> None:
    f: RuntimeFuture[int] = RuntimeFuture()
    f.set_running_or_notify_cancel()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(f.result(timeout=5)))
    waiter.start()
    # The waiter built the condition and waits on it.
    wait_until(lambda: f._cond is not None, timeout=5, what="the waiter to wait")
    f.set_result(7)
    waiter.join(5)
    assert got == [7]


def test_repr_has_the_standard_format_with_its_own_name() -> None:
    f: RuntimeFuture[int] = RuntimeFuture()
    assert repr(f).startswith("<RuntimeFuture at 0x") and "state=pending" in repr(f)
    f.set_running_or_notify_cancel()
    f.set_result(5)
    assert "state=finished returned int" in repr(f)
