"""The adapters are drop-ins: any number of pools and loops, made and shut down in any
order, under equal names or not.

Equal names are one scheduler: counts add up, queue lengths are summed, and the
series outlive the instances, so a pool made per request (with the default name)
neither raises nor restarts its counters.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from schedobs.adapters import AsyncioInstrumentation, InstrumentedThreadPoolExecutor
from schedobs.contract import Registry, SchedulerMetrics


def _value(registry: Registry, metric: str, **attrs: str) -> Any:
    for snap in registry.collect():
        if snap.spec.name != metric:
            continue
        for point in snap.points:
            got = dict(point.attributes)
            if all(got.get(k) == v for k, v in attrs.items()):
                return point
    return None


def test_pools_with_the_default_name_one_after_another_add_up(registry: Registry) -> None:
    for _ in range(3):
        with InstrumentedThreadPoolExecutor(2, registry=registry) as pool:
            assert [pool.submit(abs, -i).result(timeout=5) for i in range(4)] == [0, 1, 2, 3]
    point = _value(registry, "scheduler.schedule.latency", **{"scheduler.name": "thread_pool"})
    assert point.count == 12
    assert registry.names() == ["thread_pool"]


def test_a_live_pool_s_waits_are_all_in_the_next_collection(registry: Registry) -> None:
    """Workers bin their waits in batches; a collection flushes them, so a pool that is
    still running shows every task that started, not only full batches."""
    with InstrumentedThreadPoolExecutor(3, name="live", registry=registry) as pool:
        for n in (1, 10, 300, 1000):
            for future in [pool.submit(abs, -i) for i in range(n)]:
                future.result(timeout=10)
            before = _value(registry, "scheduler.schedule.latency", **{"scheduler.name": "live"})
            assert before.count == {1: 1, 10: 11, 300: 311, 1000: 1311}[n]


def test_pools_made_per_request_leave_no_batches_behind(registry: Registry) -> None:
    import gc

    for _ in range(30):
        with InstrumentedThreadPoolExecutor(2, name="per-request", registry=registry) as pool:
            pool.submit(abs, -1).result(timeout=5)
    del pool  # its worker threads go with it
    gc.collect()
    point = _value(registry, "scheduler.schedule.latency", **{"scheduler.name": "per-request"})
    assert point.count == 30
    histogram = SchedulerMetrics.shared("per-request", kind="thread_pool", registry=registry)
    assert len(histogram.latency(queue="work")._batches) == 0  # every worker's, forgotten


@pytest.mark.parametrize("order", ["first made, first shut", "first made, last shut"])
def test_live_pools_sharing_a_name_sum_their_queues(registry: Registry, order: str) -> None:
    gates = [threading.Event(), threading.Event()]
    pools = [InstrumentedThreadPoolExecutor(1, name="io", registry=registry) for _ in gates]
    try:
        for pool, gate in zip(pools, gates, strict=True):
            pool.submit(gate.wait, 5)
        waiting = [pool.submit(abs, -1) for pool in pools for _ in range(3)]
        queue = _value(registry, "scheduler.queue.length", **{"scheduler.name": "io"})
        assert queue.value == 6  # 3 waiting in each pool (each worker is blocked)
        for gate in gates:
            gate.set()
        assert [f.result(timeout=5) for f in waiting] == [1] * 6
    finally:
        for pool in pools if order == "first made, first shut" else reversed(pools):
            pool.shutdown(wait=True)
    assert _value(registry, "scheduler.schedule.latency", **{"scheduler.name": "io"}).count == 8
    assert _value(registry, "scheduler.queue.length", **{"scheduler.name": "io"}).value == 0


def test_a_shared_name_cannot_change_kind_or_take_a_private_one(registry: Registry) -> None:
    SchedulerMetrics("mine", kind="gmp", registry=registry)
    with pytest.raises(ValueError, match="not shared"):
        InstrumentedThreadPoolExecutor(1, name="mine", registry=registry)
    with (
        InstrumentedThreadPoolExecutor(1, name="pool", registry=registry),
        pytest.raises(ValueError, match="of kind 'thread_pool'"),
    ):
        AsyncioInstrumentation(name="pool", registry=registry)


def test_the_stdlib_semantics_stay(registry: Registry) -> None:
    """Exceptions, cancellation and refusal after shutdown behave as in the standard library."""
    pool = InstrumentedThreadPoolExecutor(1, registry=registry)
    gate = threading.Event()
    blocker = pool.submit(gate.wait, 5)
    cancelled = pool.submit(abs, 1)
    assert cancelled.cancel()
    failing = pool.submit(int, "x")
    gate.set()
    assert blocker.result(timeout=5) is True
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result(timeout=5)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(abs, 1)
    refused = _value(registry, "scheduler.rejected_tasks", **{"error.type": "shutdown"})
    assert refused.value == 1
    # The cancelled task never started: two latencies (blocker, failing), not three.
    assert _value(registry, "scheduler.schedule.latency").count == 2


def _run_loop(registry: Registry, body: Callable[[], Any], **options: Any) -> Any:
    async def main() -> Any:
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, **options)
        instrumentation.install()
        try:
            return await body()
        finally:
            instrumentation.uninstall()

    return asyncio.run(main())


def test_asyncio_run_twice_under_one_name(registry: Registry) -> None:
    async def work() -> int:
        return sum(await asyncio.gather(*(asyncio.sleep(0, i) for i in range(10))))

    assert _run_loop(registry, work, task_timing=True) == 45
    assert _run_loop(registry, work, task_timing=True) == 45
    point = _value(registry, "scheduler.schedule.latency", **{"scheduler.name": "api"})
    assert point.count == 20


def test_install_twice_is_one_install(registry: Registry) -> None:
    async def main() -> int:
        instrumentation = AsyncioInstrumentation(name="once", registry=registry,
                                                 probe_interval=0.005)  # fmt: skip
        instrumentation.install()
        assert instrumentation.install() is instrumentation
        await asyncio.sleep(0.1)
        count: int = _value(registry, "scheduler.schedule.latency").count
        instrumentation.uninstall()
        return count

    assert 5 <= asyncio.run(main()) <= 25  # one probe chain, not two (which gave ~40)


def test_task_names_reprs_and_coroutines_are_the_user_s(registry: Registry) -> None:
    async def handler() -> str:
        task = asyncio.current_task()
        assert task is not None
        return f"{task.get_name()} {task.get_coro().__qualname__} {task!r}"

    async def body() -> str:
        return await asyncio.create_task(handler(), name="GET /orders")

    text = _run_loop(registry, body, task_timing=True)
    assert text.startswith("GET /orders ")  # the task's name
    assert ".handler <Task pending name='GET /orders' coro=<" in text
    assert ".handler() running at" in text and "_timed" not in text and "first_step" not in text
    # handler()'s task (main() was made by asyncio.run before the factory was set).
    assert _value(registry, "scheduler.schedule.latency").count == 1


def test_the_default_executor_is_instrumented_on_request(registry: Registry) -> None:
    async def body() -> list[int]:
        loop = asyncio.get_running_loop()
        got = [await loop.run_in_executor(None, abs, -i) for i in range(3)]
        got.append(await asyncio.to_thread(abs, -7))
        return got

    assert _run_loop(registry, body, default_executor=True) == [0, 1, 2, 7]
    point = _value(registry, "scheduler.schedule.latency", **{"scheduler.name": "api.executor"})
    assert point.count == 4
    assert dict(point.attributes)["scheduler.kind"] == "thread_pool"


def _latency_count(registry: Registry, name: str = "api") -> int:
    point = _value(registry, "scheduler.schedule.latency", **{"scheduler.name": name})
    return 0 if point is None else int(point.count)


def test_task_timing_times_every_task_and_leaves_the_loop_as_it_found_it(
    registry: Registry,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        instrumentation.install()
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(1000)))
        if sys.version_info >= (3, 11):  # the context argument is 3.11's
            ctx = contextvars.copy_context()
            ctx.run(_var.set, "theirs")
            task = asyncio.create_task(_read_var(), context=ctx)  # type: ignore[call-arg,unused-ignore]
            assert await task == "theirs"
        instrumentation.uninstall()
        assert "create_task" not in vars(loop) and loop.get_task_factory() is None
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(10)))  # not timed

    asyncio.run(main())
    assert _latency_count(registry) == 1000 + (sys.version_info >= (3, 11))


_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


async def _read_var() -> str:
    return _var.get()


def test_task_timing_keeps_a_factory_set_before_and_honours_one_set_after(
    registry: Registry,
) -> None:
    made: list[str] = []

    def factory(name: str) -> Callable[..., asyncio.Future[Any]]:
        def make(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
            made.append(name)
            return asyncio.Task(coro, loop=loop, **kwargs)

        return make

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory("before"))
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        instrumentation.install()
        await asyncio.create_task(asyncio.sleep(0))  # the earlier factory's, and timed
        instrumentation.uninstall()
        assert made == ["before"] and loop.get_task_factory() is not None
        loop.set_task_factory(None)
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        instrumentation.install()
        loop.set_task_factory(factory("after"))
        await asyncio.create_task(asyncio.sleep(0))  # the later factory's
        instrumentation.uninstall()
        # The factory set last stays the loop's after uninstall().
        assert made == ["before", "after"] and loop.get_task_factory() is not None

    asyncio.run(main())
    # On 3.11 the later factory's task is timed too (the adapter stands in for the loop's
    # create_task); elsewhere the adapter is itself a factory, which the later one replaced.
    assert _latency_count(registry) == (2 if sys.version_info[:2] == (3, 11) else 1)


def test_task_timing_on_a_loop_with_its_own_create_task(registry: Registry) -> None:
    made: list[object] = []

    class Loop(asyncio.SelectorEventLoop):
        def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:  # type: ignore[override]
            made.append(coro)
            return super().create_task(coro, **kwargs)

    async def main() -> None:
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        instrumentation.install()
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(5)))
        instrumentation.uninstall()

    loop = Loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert len(made) == 6  # main() and the five sleeps, through the subclass's method
    assert _latency_count(registry) == 5


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="elsewhere timing is a task factory, and asyncio records any factory's frames",
)
def test_task_timing_in_debug_mode_keeps_the_loop_s_traceback(registry: Registry) -> None:
    async def main(timed: bool) -> list[tuple[str, str]]:
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        if timed:
            instrumentation.install()
        task = asyncio.ensure_future(asyncio.sleep(0))
        await task
        instrumentation.uninstall()
        return [(f.filename, f.name) for f in task._source_traceback[-3:]]  # type: ignore[attr-defined]

    # Where the task was created, as the loop's own create_task records it.
    assert asyncio.run(main(True), debug=True) == asyncio.run(main(False), debug=True)
    assert _latency_count(registry) == 1


def test_task_timing_on_a_closed_loop_refuses_as_asyncio_does(registry: Registry) -> None:
    loop = asyncio.new_event_loop()
    AsyncioInstrumentation(loop, name="api", registry=registry, task_timing=True).install()
    loop.close()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(coro)  # noqa: RUF006  # refused: nothing to keep
    coro.close()
    assert _latency_count(registry) == 0


def test_a_timed_task_s_first_handle_is_asyncio_s_own(registry: Registry) -> None:
    """The handle that runs a timed task's first step keeps its callback, its ``repr``
    and what the loop's debug messages say about it."""

    async def main(timed: bool) -> tuple[str, str, bool]:
        loop = asyncio.get_running_loop()
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        if timed:
            instrumentation.install()
        task = loop.create_task(asyncio.sleep(0), name="t")
        handle = loop._ready[-1]  # type: ignore[attr-defined]
        seen = (type(handle).__name__, repr(handle), isinstance(handle, asyncio.Handle))
        await task
        instrumentation.uninstall()
        return seen

    timed, plain = asyncio.run(main(True)), asyncio.run(main(False))
    assert timed[0] == plain[0] == "Handle" and timed[2]
    # The same text up to the object addresses: the task's own step is the callback.
    assert timed[1].split(" at 0x")[0] == plain[1].split(" at 0x")[0]
    assert _latency_count(registry) == 1


def test_an_exception_from_a_timed_handle_is_reported_as_asyncio_reports_it(
    registry: Registry,
) -> None:
    """What the loop's exception handler receives when a timed handle's callback raises
    (a task's step does only on misuse; the handle is asyncio's all the same)."""
    from schedobs.adapters._asyncio import _timed_handle_class

    metrics = SchedulerMetrics.shared("api", kind="asyncio", registry=registry)
    latency = metrics.latency(queue="ready")
    batch = latency.batch()
    loop = asyncio.new_event_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    def boom() -> None:
        raise ValueError("boom")

    def stop() -> None:
        raise KeyboardInterrupt

    handle_class = _timed_handle_class(latency.observe, batch)
    try:
        asyncio.Handle(boom, (), loop, contextvars.copy_context())._run()
        timed = asyncio.Handle(boom, (), loop, contextvars.copy_context())
        timed.__class__ = handle_class
        timed._args = 0.0  # type: ignore[attr-defined]  # the creation time, as queued
        timed._run()
        interrupted = asyncio.Handle(stop, (), loop, contextvars.copy_context())
        interrupted.__class__ = handle_class
        interrupted._args = 0.0  # type: ignore[attr-defined]
        with pytest.raises(KeyboardInterrupt):  # not reported: it stops the loop, as asyncio's
            interrupted._run()
    finally:
        loop.close()
    assert [c["message"] for c in reported] == [reported[0]["message"]] * 2
    assert reported[0]["message"].startswith("Exception in callback ")
    assert [type(c["exception"]) for c in reported] == [ValueError, ValueError]
    assert reported[1]["handle"] is timed
    batch.flush()
    assert _value(registry, "scheduler.schedule.latency").count == 2  # both were timed


def test_a_timed_task_s_step_sees_asyncio_s_arguments(registry: Registry) -> None:
    """While queued, a timed first step carries its task's creation time where asyncio
    keeps the step's (empty) arguments; by the time the step runs they are asyncio's."""
    seen: list[object] = []

    async def first_step() -> None:
        loop = asyncio.get_running_loop()
        seen.append(loop._current_handle._args)  # type: ignore[attr-defined]  # debug mode's

    async def main() -> None:
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        instrumentation.install()
        await asyncio.create_task(first_step())
        instrumentation.uninstall()

    asyncio.run(main(), debug=True)
    assert seen == [()]
    assert _latency_count(registry) == 1


def test_a_cancelled_first_step_does_not_shift_the_next_task_s_wait(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each timed task's wait is its own, whatever happens to the handles queued before
    it: a cancelled one (it never runs) takes no other task's creation time with it."""
    from schedobs.adapters import _asyncio

    clock = [0.0]
    monkeypatch.setattr(_asyncio, "_now", lambda: clock[0])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        instrumentation.install()
        clock[0] = 1.0
        delayed = loop.create_task(asyncio.sleep(0))
        handle = loop._ready[-1]  # type: ignore[attr-defined]
        step = handle._callback
        handle.cancel()  # this first step never runs; the task starts from a plain handle
        clock[0] = 2.0
        kept = loop.create_task(asyncio.sleep(0))
        clock[0] = 2.5
        await kept
        loop.call_soon(step)
        await delayed
        instrumentation.uninstall()

    asyncio.run(main())
    point = _value(registry, "scheduler.schedule.latency", **{"scheduler.name": "api"})
    assert point.count == 1
    assert point.sum == pytest.approx(500.0)  # ms: created at 2.0, started at 2.5


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the create_task stand-in is 3.11's")
@pytest.mark.parametrize("args", [(), ("kept",)])
def test_a_handle_queued_during_a_task_s_construction_runs_as_queued(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """Something queued between the task's first step and the timing of it (a finalizer
    that a garbage collection runs inside the task's constructor) keeps its arguments,
    and the task is timed once all the same."""
    from schedobs.adapters import _asyncio

    calls: list[tuple[str, ...]] = []

    def construct(coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, **kwargs)
        kwargs["loop"].call_soon(lambda *a: calls.append(a), *args)  # the finalizer's
        return task

    monkeypatch.setattr(_asyncio, "_Task", construct)

    async def main() -> None:
        instrumentation = AsyncioInstrumentation(name="api", registry=registry, task_timing=True)
        instrumentation.install()
        await asyncio.create_task(asyncio.sleep(0))
        instrumentation.uninstall()

    asyncio.run(main())
    assert calls == [args]
    assert _latency_count(registry) == 1
