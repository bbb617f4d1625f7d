"""A task that waits on a task it started releases its processor while it waits.

Go parks a goroutine blocked on a runtime primitive and its P runs others; a
plain callable blocked in Future.result(), Task.join(), a wait group or a
channel does the same here (the thread waits, the P is handed off), so nested
waits complete whenever a processor could run the awaited task.
"""

from __future__ import annotations

import pytest

from schedobs.runtime import Chan, ChannelClosedError, Runtime, WaitGroup, go


@pytest.fixture(params=[1, 2], ids=["procs=1", "procs=2"])
def runtime(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    with Runtime(procs=request.param, name="nested") as rt:
        yield rt


def test_a_task_waits_on_the_future_of_a_task_it_submitted(runtime: Runtime) -> None:
    # One at a time, as in the report: the inner task lands on the waiting
    # task's own P (runnext), so only a hand-off lets it run.
    for i in range(30):
        outer = runtime.submit(lambda i=i: runtime.submit(pow, 2, i).result(timeout=5))
        assert outer.result(timeout=10) == 2**i
    assert runtime.stats().handoffs >= 1


def test_join_and_result_of_a_started_task(runtime: Runtime) -> None:
    def parent(i: int) -> int:
        child = go(pow, 3, i)
        assert child.join(timeout=5)
        return int(child.result(timeout=5))

    assert [runtime.submit(parent, i).result(timeout=10) for i in range(20)] == [
        3**i for i in range(20)
    ]


def test_a_chain_of_nested_waits_deeper_than_the_processors(runtime: Runtime) -> None:
    def level(n: int) -> int:
        if n == 0:
            return 0
        return 1 + runtime.submit(level, n - 1).result(timeout=10)

    assert runtime.submit(level, 8).result(timeout=30) == 8


def test_wait_group_from_a_plain_callable(runtime: Runtime) -> None:
    wg = WaitGroup()
    hits: list[int] = []

    def worker(i: int) -> None:
        hits.append(i)
        wg.done()

    def parent() -> bool:
        for i in range(10):
            wg.add(1)
            go(worker, i)
        return wg.wait_blocking(timeout=5)

    assert runtime.submit(parent).result(timeout=10) is True
    assert sorted(hits) == list(range(10))


def test_unbuffered_channel_between_plain_callables(runtime: Runtime) -> None:
    ch: Chan[int] = Chan()

    def producer() -> None:
        for i in range(20):
            ch.send_blocking(i, timeout=5)
        ch.close()

    def consumer() -> list[int]:
        go(producer)
        out: list[int] = []
        while True:
            try:
                out.append(ch.recv_blocking(timeout=5))
            except ChannelClosedError:
                return out

    assert runtime.submit(consumer).result(timeout=20) == list(range(20))


def test_a_blocking_channel_operation_times_out_without_exchanging() -> None:
    ch: Chan[int] = Chan()
    with pytest.raises(TimeoutError, match="receive"):
        ch.recv_blocking(timeout=0.01)
    with pytest.raises(TimeoutError, match="send"):
        ch.send_blocking(1, timeout=0.01)
    assert ch.try_recv() == (None, False)  # the timed-out send left nothing behind


def test_waiting_outside_the_runtime_is_a_plain_wait() -> None:
    with Runtime(procs=1) as rt:
        assert rt.submit(pow, 2, 5).result(timeout=5) == 32
        assert rt.stats().handoffs == 0  # nothing to hand off from an outside thread
