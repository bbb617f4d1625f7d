"""The adapters are drop-ins: any number of pools and loops, made and shut down in any
order, under equal names or not.

Equal names are one scheduler: counts add up, queue lengths are summed, and the
series outlive the instances, so a pool made per request (with the default name)
neither raises nor restarts its counters.
"""

from __future__ import annotations

import asyncio
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
