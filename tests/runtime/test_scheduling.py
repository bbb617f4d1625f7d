"""GMP semantics: global queue fairness, stealing, system-call hand-off, preemption, timers."""

from __future__ import annotations

import threading
import time

from schedobs.runtime import (
    Runtime,
    SyscallState,
    Task,
    blocking,
    checkpoint,
    go,
    gosched,
    sleep,
    syscall,
)
from schedobs.testing import wait_all_tasks_blocked, wait_until


def test_the_global_queue_is_never_starved(rt1: Runtime) -> None:
    """A task that keeps its P busy with local work cannot starve a submission."""
    stop = threading.Event()
    rounds = []

    async def spinner() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await gosched()  # always runnable again, always in the local queue
        rounds.append(n)

    spin = rt1.go(spinner)
    # An outside submission lands in the global queue; every 61st tick checks it.
    late = rt1.submit(stop.set)
    assert late.result(timeout=5) is None
    assert spin.join(timeout=5)
    assert rounds[0] < 10_000  # served within a bounded number of ticks


def test_idle_processors_steal_from_a_busy_one(rt: Runtime) -> None:
    """200 children queued on the parent's P: the other P takes some and runs them on
    its own M's thread; what it took is what the statistics count as stolen."""
    done: list[tuple[int, int]] = []
    lock = threading.Lock()

    def child(i: int) -> None:
        time.sleep(0.002)  # holds its M: the other P must steal to make progress
        with lock:
            done.append((i, threading.get_ident()))

    def parent() -> tuple[list[Task], int]:
        return [go(child, i) for i in range(200)], threading.get_ident()

    tasks, parent_thread = rt.submit(parent).result(timeout=5)
    for task in tasks:
        assert task.join(timeout=10)
    assert sorted(i for i, _ in done) == list(range(200))
    stats = rt.stats()
    elsewhere = sum(1 for _, thread in done if thread != parent_thread)
    assert stats.steals > 0
    # Steals move tasks in halves of a queue, so one steal usually takes several.
    assert stats.stolen_tasks > stats.steals
    assert elsewhere > 0  # the stolen ones ran on another M's thread


def test_a_blocking_call_hands_its_processor_to_the_other_tasks(rt1: Runtime) -> None:
    """procs=1: while one task sleeps in a system call, the others still run."""
    started = threading.Event()
    finished_at: dict[str, float] = {}

    async def blocker() -> str:
        started.set()
        result = await blocking(time.sleep, 0.5)
        finished_at["blocker"] = time.monotonic()
        return str(result)

    b = rt1.go(blocker)
    assert started.wait(5)
    others = [rt1.submit(lambda i=i: i * i) for i in range(50)]
    assert [f.result(timeout=5) for f in others] == [i * i for i in range(50)]
    finished_at["others"] = time.monotonic()
    assert b.result(timeout=5) == "None"
    assert finished_at["others"] < finished_at["blocker"]
    assert rt1.stats().handoffs >= 1
    times = b.syscall_times()
    assert times["BLOCKED"] >= 0.49  # the whole call; no upper bound on a shared machine
    assert b.syscall_state is SyscallState.IDLE


def test_syscall_context_manager_in_a_plain_callable(rt1: Runtime) -> None:
    started = threading.Event()

    def blocker() -> str:
        started.set()
        with syscall():
            time.sleep(0.3)
        return "done"

    f = rt1.submit(blocker)
    assert started.wait(5)
    assert rt1.submit(lambda: 42).result(timeout=2) == 42  # ran while blocker slept
    assert f.result(timeout=5) == "done"


def test_blocking_exceptions_are_thrown_into_the_task(rt: Runtime) -> None:
    def fail() -> None:
        raise OSError("disk")

    async def caller() -> str:
        try:
            await blocking(fail)
        except OSError as exc:
            return f"caught {exc}"
        return "no"

    assert rt.go(caller).result(timeout=5) == "caught disk"


def test_long_running_tasks_are_flagged_and_yield() -> None:
    rt = Runtime(procs=1, preempt_after=0.01)
    try:
        order: list[str] = []
        started = threading.Event()

        async def hog() -> None:
            started.set()
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                await checkpoint()  # a no-op unless the monitor flagged us
            order.append("hog")

        h = rt.go(hog)
        assert started.wait(5)
        quick = rt.go(lambda: order.append("quick"))  # queued behind the running hog
        h.join(timeout=5)
        quick.join(timeout=5)
        assert order == ["quick", "hog"]
        stats = rt.stats()
        assert stats.preemptions >= 1
        assert stats.preempt_flags >= 1
    finally:
        rt.shutdown()


def test_a_plain_callable_running_long_is_counted() -> None:
    rt = Runtime(procs=1, preempt_after=0.01)
    try:
        rt.submit(time.sleep, 0.1).result(timeout=5)
        assert rt.stats().long_running == 1
    finally:
        rt.shutdown()


def test_sleeping_tasks_hold_no_thread(rt1: Runtime) -> None:
    async def nap() -> float:
        t0 = time.monotonic()
        await sleep(0.2)
        return time.monotonic() - t0

    tasks = [rt1.go(nap) for _ in range(100)]
    stats = wait_all_tasks_blocked(rt1)
    # All 100 asleep at once on timers, on one P, with no thread held by any.
    assert stats.tasks_waiting == 100
    assert stats.threads_running == 0
    assert stats.threads_created == 1
    slept = [t.result(timeout=5) for t in tasks]
    assert min(slept) >= 0.19


def test_generators_can_perform_operations(rt: Runtime) -> None:
    def gen():  # type: ignore[no-untyped-def]
        yield sleep(0.01)
        value = yield blocking(lambda: 5)
        yield
        return value * 2

    assert rt.go(gen).result(timeout=5) == 10


def test_awaiting_a_foreign_awaitable_is_a_clear_error(rt: Runtime) -> None:
    class Foreign:
        def __await__(self):  # type: ignore[no-untyped-def]
            yield 42

    async def wrong() -> None:
        await Foreign()

    task = rt.go(wrong)
    exc = task.exception(timeout=5)
    assert isinstance(exc, TypeError)
    assert "only runtime operations" in str(exc)


def test_concurrent_submitters_lose_and_repeat_nothing() -> None:
    rt = Runtime(procs=2)
    counts = [0] * 40_000
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            counts[i] += 1

    def submitter(k: int) -> None:
        for i in range(k, 40_000, 4):
            rt.go(work, i)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rt.shutdown(wait=True)
    assert set(counts) == {1}
    stats = rt.stats()
    assert stats.submitted == stats.completed == 40_000


def test_an_idle_runtime_sleeps() -> None:
    rt = Runtime(procs=2)
    try:
        rt.submit(sum, [1]).result(timeout=5)
        deadline = time.monotonic() + 5
        while not (
            rt._sched.monitor.parked and rt.stats().threads_idle == rt.stats().threads_created
        ):
            assert time.monotonic() < deadline, rt.stats()
            time.sleep(0.02)
        ticks = rt.stats().monitor_ticks
        time.sleep(0.3)
        assert rt.stats().monitor_ticks == ticks  # no polling while idle
    finally:
        rt.shutdown()


def _parks(rt: Runtime, *, spinning: bool) -> bool:
    """Whether an M whose P ran dry parks when the only runnable task is another P's
    ``runnext`` (no stealing takes it: its own M runs it next), driven by hand on a
    runtime whose threads never start.  Before, it took its P back and searched
    again, without end: interpreted it burned a core until that M got to the task;
    compiled it never let go of the GIL, so that M never did."""
    sched = rt._sched
    with sched.lock:
        mine, other = sched._new_m_locked(), sched._new_m_locked()
        sched.take_idle_p_locked(mine)
        busy = sched.take_idle_p_locked(other)
        assert busy is not None
        busy.runnext = Task(lambda: None, (), None, None)
        other.curg = Task(lambda: None, (), None, None)  # running a task of its own
        if spinning:
            mine.spinning = True
        sched.nmspinning = 1  # the other M's search, or ours
    found: list[object] = []
    search = threading.Thread(target=lambda: found.append(sched.find_runnable(mine)))
    search.start()
    try:
        wait_until(lambda: mine in sched.idle_ms or not search.is_alive(), 5,
                   what="the M to park or to return")  # fmt: skip
    finally:
        parked = mine in sched.idle_ms
        with sched.lock:  # let it go: the runtime stops
            sched.stopping = True
            if mine in sched.idle_ms:
                sched.idle_ms.remove(mine)
                mine.nextp = None
                mine.unpark()
    search.join(5)
    assert not search.is_alive()
    # As it was: no M, both Ps idle, nothing queued (the runtime then shuts down).
    with sched.lock:
        busy.runnext = other.curg = None
        for m in (mine, other):
            if m.p is not None:
                sched.put_idle_p_locked(m.p)
                m.p = None
            sched.all_ms.remove(m)
        sched.nmspinning = 0
        sched.stopping = False
    return parked and found == [None]


def test_an_idle_m_parks_beside_work_it_cannot_take() -> None:
    for spinning in (False, True):
        rt = Runtime(procs=2, name=f"parks-{spinning}")
        try:
            assert _parks(rt, spinning=spinning), f"spinning={spinning}"
        finally:
            rt.shutdown()
