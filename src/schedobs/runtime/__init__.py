"""The built-in Go-style GMP runtime, usable on its own as a fast ``Executor``.

G (:class:`Task`) are lightweight tasks; M are OS threads; P are logical
processors, each with a local run queue of 256 and a ``runnext`` slot; a
global queue takes submissions from outside; idle Ps steal half of a busy P's
queue; a monitor hands a P away from a thread stuck in a blocking call, flags
tasks that run too long, and fires timers.  This package imports nothing from
OpenTelemetry; instrumentation plugs in through :class:`RuntimeHooks`.

Task forms::

    from schedobs.runtime import Runtime, gosched, sleep, blocking, Chan

    def plain(x):                      # runs to completion
        return x * 2

    def gen(n):                        # each yield is a cooperative switch
        for _ in range(n):
            yield

    async def coro(ch):                # awaits runtime operations
        await sleep(0.01)                          # a timer: no M held
        data = await blocking(open("f").read)      # a system call
        await ch.send(data)                        # channels park, not block
        await gosched()

    with Runtime(procs=2, name="workers", instrument=True) as rt:
        print(rt.submit(plain, 21).result())
        rt.go(gen, 10).join()
"""

from ._autoscaler import Autoscaler
from ._chan import Chan, ChannelClosedError, WaitGroup
from ._future import RuntimeFuture
from ._gctuner import GCTuner
from ._ops import blocking, blocking_wait, checkpoint, current_m, gosched, sleep, syscall
from ._runtime import RejectedError, Runtime
from ._stats import LatencyCounts, RuntimeHooks, RuntimeStats
from ._task import SyscallState, Task, TaskState

__all__ = [
    "Autoscaler",
    "Chan",
    "ChannelClosedError",
    "GCTuner",
    "LatencyCounts",
    "RejectedError",
    "Runtime",
    "RuntimeFuture",
    "RuntimeHooks",
    "RuntimeStats",
    "SyscallState",
    "Task",
    "TaskState",
    "WaitGroup",
    "blocking",
    "blocking_wait",
    "checkpoint",
    "current_runtime",
    "go",
    "gosched",
    "sleep",
    "syscall",
]


def current_runtime() -> Runtime | None:
    """The runtime whose task is running on this thread, or ``None``."""
    m = current_m()
    return None if m is None else m.sched.runtime


def go(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Start a task on the runtime running the caller (from inside a task)."""
    runtime = current_runtime()
    if runtime is None:
        raise RuntimeError("go() outside a runtime task: call Runtime.go() instead")
    return runtime.go(fn, *args, **kwargs)
