"""The runtime reports the contract: exact latency counts, rejections, runtime metrics."""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Callable

import pytest

from schedobs.check import check_prometheus_text
from schedobs.contract import Registry, SchedulerMetrics
from schedobs.export import configure
from schedobs.runtime import RejectedError, Runtime, RuntimeStats, gosched, sleep


def _points(registry: Registry) -> dict[tuple[str, frozenset[tuple[str, str]]], object]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], object] = {}
    for snap in registry.collect():
        for p in snap.points:
            out[(snap.spec.name, frozenset(p.attributes.items()))] = p
    return out


def _latency_count(registry: Registry) -> int:
    return sum(
        p.count  # type: ignore[attr-defined]
        for (name, _), p in _points(registry).items()
        if name == "scheduler.schedule.latency"
    )


def test_every_transition_to_runnable_is_one_latency_observation(registry: Registry) -> None:
    rt = Runtime(procs=2, name="inst", instrument=True, registry=registry)
    n = 5_000

    async def yielding() -> None:
        for _ in range(3):
            await gosched()  # three re-queues: three more observations

    for _ in range(n):
        rt.go(int)
    for _ in range(100):
        rt.go(yielding)
    rt.shutdown(wait=True)
    assert _latency_count(registry) == n + 100 * (1 + 3)


def test_sleeping_and_blocked_time_is_not_schedule_latency(registry: Registry) -> None:
    rt = Runtime(procs=1, name="nap", instrument=True, registry=registry)

    async def nap() -> None:
        await sleep(0.3)

    rt.go(nap).join(timeout=5)
    rt.shutdown()
    points = _points(registry)
    slow = sum(
        sum(p.bucket_counts[13:])  # type: ignore[attr-defined]  # buckets above 100 ms
        for (name, _), p in points.items()
        if name == "scheduler.schedule.latency"
    )
    assert _latency_count(registry) == 2  # submitted, woken by the timer
    assert slow == 0  # the 300 ms asleep are not latency


def test_rejections_are_counted_by_reason(registry: Registry) -> None:
    rt = Runtime(procs=1, name="rej", max_queued=5, instrument=True, registry=registry)
    gate = threading.Event()
    started = threading.Event()
    rt.go(lambda: (started.set(), gate.wait(5)))
    assert started.wait(5)
    for _ in range(5):
        rt.go(int)
    for _ in range(3):
        with pytest.raises(RejectedError):
            rt.go(int)
    gate.set()
    rt.shutdown()
    with pytest.raises(RejectedError):
        rt.go(int)
    values = {
        dict(attrs)["error.type"]: p.value  # type: ignore[attr-defined]
        for (name, attrs), p in _points(registry).items()
        if name == "scheduler.rejected_tasks"
    }
    assert values == {"queue_full": 3, "shutdown": 1}


def test_runtime_metrics_are_exported_and_conform(registry: Registry) -> None:
    rt = Runtime(procs=2, name="exported", instrument=True, registry=registry)
    telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
    try:
        for _ in range(1000):
            rt.go(int)
        rt.submit(int).result(timeout=5)
        with urllib.request.urlopen(telemetry.prometheus_url or "", timeout=5) as resp:
            text = resp.read().decode()
        report = check_prometheus_text(text, strict=True)
        assert report.ok, report.render_text()
        for name in (
            "scheduler.processors",
            "scheduler.threads",
            "scheduler.tasks",
            "scheduler.steals",
            "scheduler.handoffs",
            "scheduler.preemptions",
            "scheduler.completed_tasks",
        ):
            assert report.series.get(name), name
        assert re.search(
            r"^scheduler_processors\{", text, re.M
        )  # labelled series (the scope labels vary by release)
    finally:
        rt.shutdown()
        telemetry.shutdown(timeout=5)
    completed = [
        p.value  # type: ignore[attr-defined]
        for (name, _), p in _points(registry).items()
        if name == "scheduler.completed_tasks"
    ]
    assert completed == [1001]  # final counts stay visible after shutdown
    assert rt.metrics is not None
    rt.metrics.close()
    assert "exported" not in registry.names()


def test_user_supplied_metrics_must_be_gmp(registry: Registry) -> None:
    with pytest.raises(ValueError, match=r"scheduler\.kind=gmp"):
        Runtime(procs=1, metrics=SchedulerMetrics("x", kind="custom", registry=registry))
    metrics = SchedulerMetrics("mine", kind="gmp", registry=registry)
    rt = Runtime(procs=1, metrics=metrics)
    rt.submit(int).result(timeout=5)
    rt.shutdown()
    assert "mine" in registry.names()  # not owned: still registered


class _ListHooks:
    """Hooks of a user's own: bounds as a list, nothing reported."""

    def __init__(self, bounds: list[object]) -> None:
        self.bounds = bounds
        self.stats: Callable[[], RuntimeStats] | None = None

    def latency_bounds_ns(self) -> list[object]:
        return self.bounds

    def rejected(self, reason: str, tenant: str | None) -> None:
        pass

    def bind(self, stats: Callable[[], RuntimeStats]) -> None:
        self.stats = stats

    def close(self) -> None:
        pass


def test_hooks_of_a_user_s_own_may_give_their_bounds_as_any_sequence() -> None:
    # The compiled scheduler checks types: a list where the protocol says tuple
    # must still work there, as it does interpreted.
    hooks = _ListHooks([1_000, 1_000_000])
    with Runtime(name="own-hooks", hooks=hooks) as rt:  # type: ignore[arg-type]
        for t in [rt.go(abs, -1) for _ in range(50)]:
            t.join()
    assert hooks.stats is not None
    latency = hooks.stats().latency
    assert latency["global"].bounds_ns == (1_000, 1_000_000)
    assert sum(q.count for q in latency.values()) == 50


@pytest.mark.parametrize(
    "bounds", [[1_000, 1_000], [2_000, 1_000], [0, 5], [1.5, 2], [True, 5], ["10"]]
)
def test_bounds_that_are_not_increasing_positive_integers_are_refused(bounds: list[object]) -> None:
    with pytest.raises(ValueError, match=r"positive, strictly increasing integers"):
        Runtime(name="bad-bounds", hooks=_ListHooks(bounds))  # type: ignore[arg-type]
