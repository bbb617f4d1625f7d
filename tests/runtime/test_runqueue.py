# mypy: disable-error-code="attr-defined, arg-type"
"""Run-queue operations: no task lost or run twice, under random and concurrent interleavings."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedobs.runtime._machine import M
from schedobs.runtime._runqueue import (
    FROM_GLOBAL,
    FROM_LOCAL,
    LOCAL_CAPACITY,
    steal_half,
    take_batch,
)
from schedobs.runtime._sched import Scheduler
from schedobs.runtime._task import Task, TaskState


def _put(local: deque[Task], task: Task, gq: deque[Task]) -> None:
    """The scheduler's one overflow policy (``Scheduler.runnable``): what does not fit
    in a full local queue goes to the global queue."""
    if len(local) < LOCAL_CAPACITY:
        local.append(task)
    else:
        gq.append(task)


def _numbered(n: int) -> Task:
    """Task number ``n``: only identity matters to the queues (the number is its argument).

    Real tasks, not stand-ins: the compiled build's queues take nothing else."""
    return Task(abs, (n,), None, None)


def _n(task: Task) -> int:
    assert task.args is not None
    return int(task.args[0])


ops = st.lists(
    st.tuples(st.sampled_from(["put", "get", "steal", "global", "burst"]), st.integers(0, 2)),
    max_size=300,
)


# Other threads of the test process (exporters' id generators) may touch the
# global random module meanwhile; hypothesis warns about that, harmlessly here.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@settings(max_examples=200, deadline=None)
@given(ops)
def test_random_interleavings_lose_and_duplicate_nothing(sequence: list[tuple[str, int]]) -> None:
    gq: deque[Task] = deque()
    locals_: list[deque[Task]] = [deque(), deque(), deque()]
    made = 0
    ran: list[int] = []
    for op, i in sequence:
        local = locals_[i]
        if op == "put":
            _put(local, _numbered(made), gq)
            made += 1
        elif op == "burst":  # enough to overflow a local queue
            for _ in range(LOCAL_CAPACITY + 7):
                _put(local, _numbered(made), gq)
                made += 1
        elif op == "get" and local:
            ran.append(_n(local.popleft()))
        elif op == "steal":
            got = steal_half(locals_[(i + 1) % 3], local)
            if got is not None:
                ran.append(_n(got))
        elif op == "global":
            got = take_batch(gq, local, 3)
            if got is not None:
                ran.append(_n(got))
        assert all(len(q) <= LOCAL_CAPACITY for q in locals_)
    # Drain everything left.
    for q in (gq, *locals_):
        ran.extend(_n(t) for t in q)
    assert sorted(ran) == list(range(made))  # every task exactly once


def test_steal_takes_half_and_at_least_one() -> None:
    victim = deque(_numbered(i) for i in range(9))
    into: deque[Task] = deque()
    first = steal_half(victim, into)
    assert first is not None
    assert _n(first) == 0
    assert [_n(t) for t in into] == [1, 2, 3, 4]
    assert len(victim) == 4
    one = deque([_numbered(0)])
    assert steal_half(one, into) is not None
    assert steal_half(deque(), into) is None


def test_take_batch_is_a_fair_share() -> None:
    gq = deque(_numbered(i) for i in range(100))
    local: deque[Task] = deque()
    first = take_batch(gq, local, nprocs=4)
    assert first is not None
    assert _n(first) == 0
    assert len(local) == 100 // 4  # len(gq)//nprocs + 1 - 1 (the first)
    assert take_batch(deque(), local, 4) is None


def test_concurrent_owner_and_thieves_take_each_task_once() -> None:
    gq: deque[Task] = deque()
    victim: deque[Task] = deque()
    taken: list[list[int]] = [[] for _ in range(4)]
    n = 60_000
    done = threading.Event()

    def owner() -> None:
        for i in range(n):
            _put(victim, _numbered(i), gq)
            if i % 3 == 0:
                with contextlib.suppress(IndexError):
                    taken[0].append(_n(victim.popleft()))
        done.set()

    def thief(k: int) -> None:
        mine: deque[Task] = deque()
        while not done.is_set() or victim or gq or mine:
            got = steal_half(victim, mine) or take_batch(gq, mine, 3)
            if got is not None:
                taken[k].append(_n(got))
            while mine:
                taken[k].append(_n(mine.popleft()))

    threads = [threading.Thread(target=owner)] + [
        threading.Thread(target=thief, args=(k,)) for k in (1, 2, 3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(x for lst in taken for x in lst)
    assert len(counts) == n
    assert set(counts.values()) == {1}


class _Hooks:
    """Just enough of RuntimeHooks for a timed scheduler that never starts."""

    def latency_bounds_ns(self) -> tuple[int, ...]:
        return (1_000,)


def _unstarted_scheduler() -> Scheduler:
    return Scheduler(
        runtime=None, procs=2, max_threads=4, max_queued=None, name="t", hooks=_Hooks(),
        make_m=M, syscall_threshold_ns=10**6, preempt_after_ns=10**7, pin_cpus=(), groups=1,
    )  # fmt: skip


def _task() -> Task:
    return Task(abs, (-1,), None, None)


def test_runnable_is_the_one_way_in_with_one_overflow_policy() -> None:
    sched = _unstarted_scheduler()
    p = sched.procs[0]
    yielded, started, woken, outside = _task(), _task(), _task(), _task()

    sched.runnable(yielded, p)  # a yield: the local tail
    assert list(p.runq) == [yielded] and yielded.source == FROM_LOCAL
    sched.runnable(started, p, next_in_line=True)  # started by a running task: next
    sched.runnable(woken, p, next_in_line=True)  # woken: next; the one it displaced goes on
    assert p.runnext is woken and list(p.runq) == [yielded, started]
    sched.runnable(outside)
    assert list(sched.global_queue) == [outside] and outside.source == FROM_GLOBAL
    for g in (yielded, started, woken, outside):
        assert g.state is TaskState.RUNNABLE and g.ready > 0

    # A full local queue: whatever does not fit goes to the global queue, alone.
    while len(p.runq) < LOCAL_CAPACITY:
        p.runq.append(_task())
    late, displaced_by = _task(), _task()
    sched.runnable(late, p)
    sched.runnable(displaced_by, p, next_in_line=True)
    assert len(p.runq) == LOCAL_CAPACITY and p.runnext is displaced_by
    assert list(sched.global_queue) == [outside, late, woken]
    assert late.source == woken.source == FROM_GLOBAL
