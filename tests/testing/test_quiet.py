"""wait_all_tasks_blocked: returns when the runtime is quiet, and only then."""

from __future__ import annotations

import threading

import pytest

from schedobs.runtime import Chan, Runtime, sleep
from schedobs.testing import wait_all_tasks_blocked


def test_returns_once_every_task_is_parked_or_asleep(rt: Runtime) -> None:
    ch: Chan[int] = Chan()
    got: list[int] = []

    async def receiver() -> None:
        got.append(await ch.recv())

    async def napper() -> None:
        await sleep(0.5)

    receivers = [rt.go(receiver) for _ in range(3)]
    nap = rt.go(napper)
    stats = wait_all_tasks_blocked(rt)
    assert stats.tasks_waiting == 4  # three on the channel, one on a timer
    assert stats.tasks_runnable == stats.tasks_running == 0
    for i in range(3):
        assert ch.try_send(i)
    for task in receivers:
        task.join(timeout=5)
    assert sorted(got) == [0, 1, 2]
    assert not nap.done()  # still asleep; the fixture's shutdown waits for it


def test_times_out_while_a_task_keeps_running() -> None:
    stop = threading.Event()
    with Runtime(procs=1) as rt:
        rt.go(stop.wait, 10)  # a plain callable blocked outside the runtime: running
        with pytest.raises(TimeoutError, match="still busy"):
            wait_all_tasks_blocked(rt, timeout=0.2)
        stop.set()
        wait_all_tasks_blocked(rt)
