"""The asyncio and ThreadPoolExecutor adapters report the contract."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from schedobs.adapters import AsyncioInstrumentation, InstrumentedThreadPoolExecutor
from schedobs.check import check_prometheus_text
from schedobs.contract import Registry
from schedobs.export import configure
from schedobs.runtime import RejectedError


def _series(registry: Registry) -> dict[tuple[str, str | None], object]:
    out: dict[tuple[str, str | None], object] = {}
    for snap in registry.collect():
        for p in snap.points:
            out[(snap.spec.name, dict(p.attributes).get("scheduler.queue"))] = p
    return out


def test_asyncio_queue_lengths_and_lag_probe(registry: Registry) -> None:
    seen: dict[str, int] = {}

    async def main() -> None:
        inst = AsyncioInstrumentation(
            name="loop", registry=registry, probe_interval=0.005
        ).install()
        loop = asyncio.get_running_loop()
        for _ in range(50):
            loop.call_later(60, lambda: None)  # timers waiting
        await asyncio.sleep(0.1)  # ~20 probes
        points = _series(registry)
        seen["timer"] = points[("scheduler.queue.length", "timer")].value  # type: ignore[attr-defined]
        seen["lag"] = points[("scheduler.schedule.latency", "ready")].count  # type: ignore[attr-defined]
        inst.uninstall()

    asyncio.run(main())
    assert seen["timer"] >= 50
    assert 5 <= seen["lag"] <= 25  # one sample per probe interval
    # The series outlive the loop (cumulative counts); its queues no longer count.
    assert registry.names() == ["loop"]
    assert _series(registry)[("scheduler.queue.length", "timer")].value == 0  # type: ignore[attr-defined]


def test_asyncio_task_timing_replaces_the_probe_in_the_ready_series(registry: Registry) -> None:
    """Before, per-task times and probe samples landed in one ``queue=ready`` series,
    so its distribution was neither; with ``task_timing`` it counts exactly the tasks."""
    seen: dict[str, int] = {}

    async def main() -> None:
        inst = AsyncioInstrumentation(name="loop", registry=registry, probe_interval=0.001,
                                      task_timing=True).install()  # fmt: skip
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(asyncio.sleep(0.001) for _ in range(20)))
        await asyncio.sleep(0.1)  # ~100 probe intervals: none may be sampled
        seen["count"] = _series(registry)[("scheduler.schedule.latency", "ready")].count  # type: ignore[attr-defined]
        inst.uninstall()
        assert loop.get_task_factory() is None

    asyncio.run(main())
    assert seen["count"] == 20  # the gathered tasks' first steps, nothing else


def test_asyncio_exports_conform(registry: Registry) -> None:
    async def main() -> str:
        inst = AsyncioInstrumentation(name="conform", registry=registry).install()
        telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
        try:
            await asyncio.sleep(0.05)
            import urllib.request

            url = telemetry.prometheus_url or ""
            text: str = await asyncio.get_running_loop().run_in_executor(
                None, lambda: urllib.request.urlopen(url, timeout=5).read().decode()
            )
        finally:
            telemetry.shutdown(timeout=5)
            inst.uninstall()
        return text

    report = check_prometheus_text(asyncio.run(main()))
    assert report.ok, report.render_text()
    assert report.series.get("scheduler.queue.length") == 2


def test_thread_pool_latency_queue_and_back_pressure(registry: Registry) -> None:
    gate = threading.Event()
    pool = InstrumentedThreadPoolExecutor(max_workers=1, name="tp", registry=registry, max_queued=5)
    try:
        pool.submit(gate.wait, 5)
        time.sleep(0.05)
        queued = [pool.submit(int, "7") for _ in range(5)]
        assert _series(registry)[("scheduler.queue.length", "work")].value == 5  # type: ignore[attr-defined]
        with pytest.raises(RejectedError) as info:
            pool.submit(int)
        assert info.value.reason == "queue_full"
        gate.set()
        assert [f.result(timeout=5) for f in queued] == [7] * 5
    finally:
        pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(int)
    points = {
        (s.spec.name, dict(p.attributes).get("error.type")): p
        for s in registry.collect()
        for p in s.points
    }
    assert points[("scheduler.rejected_tasks", "queue_full")].value == 1  # type: ignore[attr-defined]
    assert points[("scheduler.rejected_tasks", "shutdown")].value == 1  # type: ignore[attr-defined]
    assert points[("scheduler.schedule.latency", None)].count == 6  # type: ignore[attr-defined]
