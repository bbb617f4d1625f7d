"""Accepted tasks at interpreter exit: they run, or are cancelled visibly, or are reported.

Each case runs in a child interpreter that leaves without (or before the end of)
``shutdown``, as a program does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest


def _run(script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("ending", ["", "rt.shutdown(wait=False)"], ids=["no-shutdown", "no-wait"])
def test_accepted_tasks_run_when_the_program_leaves(ending: str) -> None:
    child = _run(
        f"""
        import sys, time
        from schedobs.runtime import Runtime, sleep

        def say(line):  # one write per line: prints from threads would interleave
            sys.stdout.write(line + "\\n")
            sys.stdout.flush()

        def job(name):
            time.sleep(0.2)
            say(name)

        async def nap():
            await sleep(0.2)  # on a timer at exit: no thread holds it
            say("coroutine")

        rt = Runtime(2)
        rt.submit(job, "submitted")
        rt.go(job, "started")
        rt.go(nap)
        for i in range(50):
            rt.go(job, f"queued {{i}}")
        {ending}
        """
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.split("\n")
    assert {"submitted", "started", "coroutine"} <= set(lines)
    assert {f"queued {i}" for i in range(50)} <= set(lines)
    assert child.stderr == ""


def test_cancel_futures_at_shutdown_cancels_the_queued_and_finishes_the_running() -> None:
    child = _run(
        """
        import threading, time
        from schedobs.runtime import Runtime

        started = threading.Event()

        def running():
            started.set()
            time.sleep(0.3)
            print("running task finished", flush=True)

        rt = Runtime(1)
        rt.submit(running)
        started.wait(5)
        queued = [rt.submit(print, "must not run") for _ in range(5)]
        rt.shutdown(wait=False, cancel_futures=True)
        print("cancelled", sum(f.cancelled() for f in queued), flush=True)
        """
    )
    assert child.returncode == 0, child.stderr
    assert "running task finished" in child.stdout
    assert "cancelled 5" in child.stdout
    assert "must not run" not in child.stdout


def test_tasks_started_by_running_tasks_during_the_exit_drain_run_too() -> None:
    child = _run(
        """
        import time
        from schedobs.runtime import Runtime, go

        def parent():
            time.sleep(0.2)  # still running when the interpreter exits
            go(print, "child ran")

        Runtime(2).go(parent)
        """
    )
    assert child.returncode == 0, child.stderr
    assert "child ran" in child.stdout


def test_a_submission_after_the_exit_hook_raises_the_standard_error() -> None:
    child = _run(
        """
        import atexit
        from schedobs.runtime import Runtime, RejectedError

        @atexit.register
        def late():
            for rt in (runtime, Runtime(1)):  # an old runtime and one made too late
                try:
                    rt.submit(print, "must not run")
                except RuntimeError as exc:
                    print(type(exc).__name__, exc, flush=True)

        runtime = Runtime(1)
        runtime.submit(int).result()
        """
    )
    assert child.returncode == 0, child.stderr
    assert (
        child.stdout.count("RuntimeError cannot schedule new futures after interpreter shutdown")
        == 2
    )
    assert "must not run" not in child.stdout


def test_tasks_that_can_never_finish_are_reported_and_do_not_hang_the_exit() -> None:
    t0 = time.monotonic()
    child = _run(
        """
        from schedobs.runtime import Chan, Runtime

        ch = Chan()

        async def forever():
            await ch.recv()  # nobody will ever send

        rt = Runtime(1, name="stuckrt")
        for _ in range(3):
            rt.go(forever)
        rt.go(print, "the rest ran")
        """,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert "the rest ran" in child.stdout
    assert "runtime 'stuckrt': 3 task(s) still waiting at interpreter exit" in child.stderr
    assert time.monotonic() - t0 < 30
