"""Placement: a warm pool of Ms, CPU pinning, and near-victim stealing by group."""

from __future__ import annotations

import os

import pytest

from schedobs.runtime import Runtime
from schedobs.testing import wait_until


def test_warm_threads_are_started_and_reused() -> None:
    rt = Runtime(procs=2, warm_threads=3)
    try:
        # All three parked in the idle list.
        wait_until(lambda: len(rt._sched.idle_ms) >= 3, timeout=5, what=rt.stats)
        assert rt.stats().threads_created == 3
        assert rt.submit(sum, [1, 2]).result(timeout=5) == 3
        assert rt.stats().threads_created == 3  # the first task found a warm M
    finally:
        rt.shutdown()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_ms_can_be_pinned_to_cpus() -> None:
    mine = os.sched_getaffinity(0)
    cpu = min(mine)
    rt = Runtime(procs=1, pin_cpus=[cpu])
    try:
        assert rt.submit(os.sched_getaffinity, 0).result(timeout=5) == {cpu}
    finally:
        rt.shutdown()
    assert os.sched_getaffinity(0) == mine  # only the M was pinned, not the submitter


def test_stealing_prefers_a_victim_in_the_same_group() -> None:
    rt = Runtime(procs=4, groups=2)
    try:
        procs = rt._sched.procs
        assert [p.group for p in procs] == [0, 1, 0, 1]
        for _ in range(20):
            order = rt._sched.random_victims(procs[0])
            assert order[0] is procs[2]  # P2 shares P0's group
    finally:
        rt.shutdown()


def test_bad_placement_arguments() -> None:
    with pytest.raises(ValueError, match="pin_cpus"):
        Runtime(procs=1, pin_cpus=[-1])
    with pytest.raises(ValueError, match="groups must be an int >= 1"):
        Runtime(procs=1, groups=0)
