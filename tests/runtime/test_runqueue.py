# mypy: disable-error-code="attr-defined, arg-type"
"""Run-queue operations: no task lost or run twice, under random and concurrent interleavings."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedobs.runtime._runqueue import LOCAL_CAPACITY, overflow, steal_half, take_batch


class _T:
    """A stand-in task: only identity matters to the queues."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


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
    gq: deque[_T] = deque()
    locals_: list[deque[_T]] = [deque(), deque(), deque()]
    made = 0
    ran: list[int] = []
    for op, i in sequence:
        local = locals_[i]
        if op == "put":
            task = _T(made)
            made += 1
            if len(local) < LOCAL_CAPACITY:
                local.append(task)
            else:
                overflow(local, task, gq)
        elif op == "burst":  # enough to overflow a local queue
            for _ in range(LOCAL_CAPACITY + 7):
                task = _T(made)
                made += 1
                if len(local) < LOCAL_CAPACITY:
                    local.append(task)
                else:
                    overflow(local, task, gq)
        elif op == "get" and local:
            ran.append(local.popleft().n)
        elif op == "steal":
            got = steal_half(locals_[(i + 1) % 3], local)
            if got is not None:
                ran.append(got.n)
        elif op == "global":
            got = take_batch(gq, local, 3)
            if got is not None:
                ran.append(got.n)
        assert all(len(q) <= LOCAL_CAPACITY for q in locals_)
    # Drain everything left.
    for q in (gq, *locals_):
        ran.extend(t.n for t in q)
    assert sorted(ran) == list(range(made))  # every task exactly once


def test_steal_takes_half_and_at_least_one() -> None:
    victim = deque(_T(i) for i in range(9))
    into: deque[_T] = deque()
    first = steal_half(victim, into)
    assert first is not None
    assert first.n == 0
    assert [t.n for t in into] == [1, 2, 3, 4]
    assert len(victim) == 4
    one = deque([_T(0)])
    assert steal_half(one, into) is not None
    assert steal_half(deque(), into) is None


def test_overflow_moves_half_to_global() -> None:
    local = deque(_T(i) for i in range(LOCAL_CAPACITY))
    gq: deque[_T] = deque()
    overflow(local, _T(999), gq)
    assert len(local) == LOCAL_CAPACITY // 2
    assert [t.n for t in gq] == [*range(LOCAL_CAPACITY // 2), 999]


def test_take_batch_is_a_fair_share() -> None:
    gq = deque(_T(i) for i in range(100))
    local: deque[_T] = deque()
    first = take_batch(gq, local, nprocs=4)
    assert first is not None
    assert first.n == 0
    assert len(local) == 100 // 4  # len(gq)//nprocs + 1 - 1 (the first)
    assert take_batch(deque(), local, 4) is None


def test_concurrent_owner_and_thieves_take_each_task_once() -> None:
    gq: deque[_T] = deque()
    victim: deque[_T] = deque()
    taken: list[list[int]] = [[] for _ in range(4)]
    n = 60_000
    done = threading.Event()

    def owner() -> None:
        for i in range(n):
            if len(victim) < LOCAL_CAPACITY:
                victim.append(_T(i))
            else:
                overflow(victim, _T(i), gq)
            if i % 3 == 0:
                with contextlib.suppress(IndexError):
                    taken[0].append(victim.popleft().n)
        done.set()

    def thief(k: int) -> None:
        mine: deque[_T] = deque()
        while not done.is_set() or victim or gq or mine:
            got = steal_half(victim, mine) or take_batch(gq, mine, 3)
            if got is not None:
                taken[k].append(got.n)
            while mine:
                taken[k].append(mine.popleft().n)

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
