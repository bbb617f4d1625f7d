"""Runtime faults: raising tasks, interrupts, blocked shutdowns, fork."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from schedobs.runtime import Runtime, blocking


def test_keyboard_interrupt_and_system_exit_stay_in_their_task() -> None:
    rt = Runtime(procs=2)
    try:

        def interrupt() -> None:
            raise KeyboardInterrupt

        def leave() -> None:
            sys.exit(3)

        f1, f2 = rt.submit(interrupt), rt.submit(leave)
        assert isinstance(f1.exception(timeout=5), KeyboardInterrupt)
        exc = f2.exception(timeout=5)
        assert isinstance(exc, SystemExit)
        assert exc.code == 3
        # The runtime and its threads carry on.
        assert [rt.submit(pow, 2, i).result(timeout=5) for i in range(5)] == [1, 2, 4, 8, 16]
    finally:
        rt.shutdown()


def test_many_failing_tasks_do_not_leak_or_stop_the_runtime() -> None:
    rt = Runtime(procs=2)
    try:

        def boom(i: int) -> None:
            raise ValueError(i)

        futures = [rt.submit(boom, i) for i in range(5000)]
        assert all(isinstance(f.exception(timeout=10), ValueError) for f in futures)
        stats = rt.stats()
        assert stats.completed == stats.submitted == 5000
    finally:
        rt.shutdown()


def test_shutdown_while_tasks_are_blocked_in_system_calls() -> None:
    rt = Runtime(procs=1)
    release = threading.Event()
    started = threading.Event()

    async def blocked() -> str:
        started.set()
        await blocking(release.wait, 10)
        return "returned"

    tasks = [rt.go(blocked) for _ in range(3)]
    assert started.wait(5)
    t0 = time.monotonic()
    rt.shutdown(wait=False)  # returns at once, even with calls in flight
    assert time.monotonic() - t0 < 1.0
    assert not rt.finished
    release.set()
    assert [t.result(timeout=10) for t in tasks] == ["returned"] * 3  # drained, not dropped
    assert rt.wait_finished(10)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
# Python 3.12+ warns that forking a multi-threaded process may deadlock: this is the
# case under test.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_a_clear_error_and_can_start_its_own_runtime() -> None:
    rt = Runtime(procs=2)
    try:
        assert rt.submit(int, "1").result(timeout=5) == 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            code = 1
            try:
                try:
                    rt.submit(int)
                except RuntimeError as exc:
                    ok = "created before os.fork()" in str(exc)
                else:
                    ok = False
                rt.shutdown(wait=True)  # returns at once
                fresh = Runtime(procs=1)
                ok = ok and fresh.submit(sum, [2, 3]).result(timeout=5) == 5
                fresh.shutdown()
                code = 0 if ok else 1
            finally:
                os.write(write, bytes([code]))
                os._exit(code)
        os.close(write)
        deadline = time.monotonic() + 30
        while True:  # never wait forever on a child: a hang must fail, not stall the suite
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.01)
        result = os.read(read, 1)
        os.close(read)
        assert result == b"\x00", "the child could not use a fresh runtime or got no clear error"
        assert os.waitstatus_to_exitcode(status) == 0
        assert rt.submit(int, "2").result(timeout=5) == 2  # the parent is unaffected
    finally:
        rt.shutdown()
