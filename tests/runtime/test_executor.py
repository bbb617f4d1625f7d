"""Runtime as a concurrent.futures.Executor: futures, exceptions, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import threading

import pytest

from schedobs.runtime import RejectedError, Runtime, Task, TaskState, gosched


def test_submit_plain_generator_and_coroutine(rt: Runtime) -> None:
    def plain(a: int, b: int = 0) -> int:
        return a + b

    def gen(n: int):  # type: ignore[no-untyped-def]
        for _ in range(n):
            yield
        return n

    async def coro(x: int) -> int:
        await gosched()
        return x * 3

    assert rt.submit(plain, 1, b=2).result(timeout=5) == 3
    assert rt.submit(gen, 4).result(timeout=5) == 4
    assert rt.submit(coro, 5).result(timeout=5) == 15  # type: ignore[comparison-overlap]
    assert list(rt.map(plain, range(5), range(5))) == [0, 2, 4, 6, 8]


def test_exceptions_land_in_the_future_and_the_handle(rt: Runtime) -> None:
    def boom() -> None:
        raise ValueError("plain")

    async def aboom() -> None:
        await gosched()
        raise KeyError("coro")

    with pytest.raises(ValueError, match="plain"):
        rt.submit(boom).result(timeout=5)
    task = rt.go(aboom)
    with pytest.raises(KeyError, match="coro"):
        task.result(timeout=5)
    assert isinstance(task.exception(), KeyError)
    assert task.state is TaskState.DONE


def test_cancellation_before_start_and_not_after(rt1: Runtime) -> None:
    gate = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(5)

    ran: list[int] = []
    rt1.submit(hold)
    assert started.wait(5)
    queued = rt1.submit(ran.append, 1)
    assert queued.cancel()
    assert queued.cancelled()
    gate.set()
    running = rt1.submit(ran.append, 2)
    assert running.result(timeout=5) is None
    assert not running.cancel()  # already finished
    rt1.shutdown(wait=True)
    assert ran == [2]
    with pytest.raises(cf.CancelledError):
        queued.result()


def test_done_callbacks_wait_and_as_completed(rt: Runtime) -> None:
    seen: list[int] = []
    fut = rt.submit(lambda: 7)
    fut.add_done_callback(lambda f: seen.append(f.result()))
    futures = [rt.submit(pow, 2, i) for i in range(20)]
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=5)) == [
        2**i for i in range(20)
    ]
    done, not_done = cf.wait(futures, timeout=5)
    assert len(done) == 20
    assert not not_done
    fut.result(timeout=5)
    assert seen == [7]


def test_shutdown_drains_then_refuses(rt: Runtime) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            results.append(i)

    for i in range(1000):
        rt.go(work, i)
    rt.shutdown(wait=True)
    assert sorted(results) == list(range(1000))
    with pytest.raises(RejectedError, match="after shutdown") as info:
        rt.submit(work, 1)
    assert info.value.reason == "shutdown"
    assert isinstance(info.value, RuntimeError)
    assert rt.stats().rejected_shutdown == 1


def test_shutdown_cancel_futures() -> None:
    rt = Runtime(procs=1)
    gate = threading.Event()
    started = threading.Event()
    rt.submit(lambda: (started.set(), gate.wait(5)))
    assert started.wait(5)
    pending = [rt.submit(int, i) for i in range(50)]
    threading.Timer(0.05, gate.set).start()
    rt.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in pending)


def test_shutdown_without_wait_still_runs_queued_work() -> None:
    rt = Runtime(procs=2)
    done = threading.Event()
    counter: list[int] = []
    for i in range(100):
        rt.go(counter.append, i)
    rt.go(done.set)
    rt.shutdown(wait=False)
    assert done.wait(5)
    assert rt.wait_finished(5)
    assert len(counter) == 100


def test_context_manager_and_repr() -> None:
    with Runtime(procs=1, name="cm") as rt:
        assert rt.submit(sum, [1, 2]).result(timeout=5) == 3
        assert "cm" in repr(rt)
    assert rt.finished


def test_contextvars_propagate_and_do_not_leak(rt: Runtime) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("submitter")

    def read_and_set() -> str:
        seen = var.get()
        var.set("task")
        return seen

    assert rt.submit(read_and_set).result(timeout=5) == "submitter"
    assert var.get() == "submitter"  # the task's set stayed in the task

    async def coro() -> tuple[str, str]:
        first = var.get()
        var.set("coro")
        await gosched()  # may resume on another M: the task keeps its context
        return first, var.get()

    assert rt.go(coro).result(timeout=5) == ("submitter", "coro")


def test_opentelemetry_context_and_baggage_propagate(rt: Runtime) -> None:
    from opentelemetry import baggage, context, trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("parent") as parent:
        token = context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            got = rt.submit(
                lambda: (
                    trace.get_current_span().get_span_context().span_id,
                    baggage.get_baggage("tenant"),
                )
            ).result(timeout=5)
        finally:
            context.detach(token)
    assert got == (parent.get_span_context().span_id, "acme")


def test_await_a_task_and_a_future_from_asyncio(rt: Runtime) -> None:
    async def work(x: int) -> int:
        await gosched()
        return x + 1

    async def main() -> tuple[int, int]:
        task: Task = rt.go(work, 1)
        a = await task
        b = await asyncio.wrap_future(rt.submit(pow, 3, 2))
        return a, b

    assert asyncio.run(main()) == (2, 9)


def test_go_join_and_result_timeouts(rt1: Runtime) -> None:
    gate = threading.Event()
    task = rt1.go(gate.wait, 5)
    assert not task.join(timeout=0.05)
    with pytest.raises(TimeoutError):
        task.result(timeout=0.01)
    gate.set()
    assert task.join(timeout=5)
    assert task.result() is True


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="procs must be >= 1"):
        Runtime(procs=0)
    with pytest.raises(TypeError, match="procs must be an int"):
        Runtime(procs=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_threads"):
        Runtime(procs=4, max_threads=2)
    with pytest.raises(ValueError, match="max_queued"):
        Runtime(procs=1, max_queued=0)
    with pytest.raises(ValueError, match="preempt_after"):
        Runtime(procs=1, preempt_after=0)


def test_bounded_global_queue_refuses_with_queue_full() -> None:
    rt = Runtime(procs=1, max_queued=10)
    gate = threading.Event()
    started = threading.Event()
    rt.go(lambda: (started.set(), gate.wait(5)))
    assert started.wait(5)
    accepted = [rt.go(int) for _ in range(10)]
    with pytest.raises(RejectedError) as info:
        rt.go(int)
    assert info.value.reason == "queue_full"
    gate.set()
    rt.shutdown(wait=True)
    assert all(t.done() for t in accepted)  # accepted work is never lost by a refusal
    assert rt.stats().rejected_queue_full == 1


class _Big:
    """A result worth freeing."""


def _make_big() -> _Big:
    return _Big()


def _gen_big():  # type: ignore[no-untyped-def]
    yield
    return _Big()


async def _coro_big() -> _Big:
    return _Big()


def _raise_big() -> None:
    raise ValueError(_Big())


@pytest.mark.parametrize(
    "fn", [_make_big, _gen_big, _coro_big], ids=["plain", "generator", "coroutine"]
)
def test_the_runtime_keeps_no_result_alive(rt1: Runtime, fn) -> None:  # type: ignore[no-untyped-def]
    import gc
    import weakref

    future = rt1.submit(fn)
    ref = weakref.ref(future.result(timeout=5))
    del future
    gc.collect()
    assert ref() is None, "a quiet runtime still holds the result of its last task"
    task = rt1.go(fn)
    ref = weakref.ref(task.result(timeout=5))
    del task
    gc.collect()
    assert ref() is None, "the result outlived the task handle"


def test_the_runtime_keeps_no_exception_alive(rt1: Runtime) -> None:
    import gc
    import weakref

    future = rt1.submit(_raise_big)
    exc = future.exception(timeout=5)
    assert isinstance(exc, ValueError)
    ref = weakref.ref(exc.args[0])
    del future, exc
    gc.collect()
    assert ref() is None
