"""SchedulerMetrics: validation at the call site, tenant cap, registry membership."""

from __future__ import annotations

import threading

import pytest

from schedobs.contract import OTHER, REGISTRY, Registry, SchedulerMetrics


def test_invalid_constructor_arguments(registry: Registry) -> None:
    with pytest.raises(ValueError, match="unknown kind 'k8s'; the contract allows gmp, asyncio"):
        SchedulerMetrics("a", kind="k8s", registry=registry)
    with pytest.raises(TypeError, match="name must be a str"):
        SchedulerMetrics(3, registry=registry)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be 1 to 128 printable"):
        SchedulerMetrics("", registry=registry)
    with pytest.raises(ValueError, match="printable"):
        SchedulerMetrics("a\nb", registry=registry)
    with pytest.raises(ValueError, match="tenant_cap"):
        SchedulerMetrics("a", registry=registry, tenant_cap=-1)
    assert registry.names() == []


def test_invalid_series_attributes(registry: Registry) -> None:
    m = SchedulerMetrics("a", registry=registry)
    with pytest.raises(ValueError, match="unknown queue 'runq'; the contract allows global"):
        m.observe_latency(1.0, queue="runq")
    with pytest.raises(ValueError, match="unknown reason 'full'; the contract allows queue_full"):
        m.reject("full")
    with pytest.raises(TypeError, match="reason must be a str"):
        m.reject(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tenant must be a str"):
        m.reject("shutdown", tenant=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tenant must be 1 to 128"):
        m.reject("shutdown", tenant="x" * 129)
    # Nothing half-created by the failures.
    assert list(m.collect()) == []


def test_duplicate_names_are_refused_and_close_frees_the_name(registry: Registry) -> None:
    m = SchedulerMetrics("pool", registry=registry)
    with pytest.raises(ValueError, match="already registered"):
        SchedulerMetrics("pool", kind="asyncio", registry=registry)
    m.close()
    m.close()  # idempotent
    SchedulerMetrics("pool", registry=registry)
    assert registry.names() == ["pool"]


def test_default_registry_is_used_when_none_given() -> None:
    m = SchedulerMetrics("default-registry-test")
    try:
        assert "default-registry-test" in REGISTRY.names()
    finally:
        m.close()
    assert "default-registry-test" not in REGISTRY.names()


def test_tenants_beyond_the_cap_fold_into_other(registry: Registry) -> None:
    m = SchedulerMetrics("t", registry=registry, tenant_cap=2)
    for tenant in ["a", "b", "c", "d", "a", OTHER]:
        m.observe_latency(1.0, tenant=tenant)
    counts = {
        dict(p.attributes).get("scheduler.tenant"): p.count  # type: ignore[union-attr]
        for s, p in m.collect()
    }
    assert counts == {"a": 2, "b": 1, OTHER: 3}


def test_a_flood_of_tenant_names_keeps_series_and_handles_bounded(registry: Registry) -> None:
    m = SchedulerMetrics("flood", registry=registry, tenant_cap=8)
    for i in range(20_000):
        m.reject("quota_exceeded", tenant=f"tenant-{i}")
        m.observe_latency(0.5, tenant=f"tenant-{i}")
    points = list(m.collect())
    assert len(points) == 2 * 9  # 8 tenants + _OTHER, for each metric
    assert len(m._rejections) == 9 and len(m._latency) == 9
    total = sum(p.value for s, p in points if s.name == "scheduler.rejected_tasks")  # type: ignore[union-attr]
    assert total == 20_000


def test_handles_are_shared_between_threads(registry: Registry) -> None:
    m = SchedulerMetrics("shared", registry=registry)
    handles: list[object] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        handles.append(m.latency(queue="local", tenant="x"))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(h) for h in handles}) == 1


def test_convenience_calls_are_exact_under_concurrency(registry: Registry) -> None:
    m = SchedulerMetrics("busy", registry=registry)
    n = 10_000

    def work(i: int) -> None:
        tenant = f"t{i % 3}"
        for _ in range(n):
            m.observe_latency(0.2, queue="global", tenant=tenant)
            m.reject("queue_full", tenant=tenant)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sum(p.count for s, p in m.collect() if s.name == "scheduler.schedule.latency")  # type: ignore[union-attr]
    rej = sum(p.value for s, p in m.collect() if s.name == "scheduler.rejected_tasks")  # type: ignore[union-attr]
    assert lat == rej == 6 * n


def test_registry_groups_by_metric_in_contract_order(registry: Registry) -> None:
    a = SchedulerMetrics("a", registry=registry)
    b = SchedulerMetrics("b", kind="thread_pool", registry=registry)
    b.reject("shutdown")
    a.observe_latency(1.0)
    b.observe_latency(2.0)
    a.set_queue_length(1, queue="work")
    snaps = registry.collect()
    assert [s.spec.name for s in snaps] == [
        "scheduler.queue.length",
        "scheduler.schedule.latency",
        "scheduler.rejected_tasks",
    ]
    assert len(snaps[1].points) == 2


def test_callbacks_report_pulled_counters_gauges_and_histograms(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    from schedobs.contract import QUEUE_LENGTH, SCHEDULE_LATENCY
    from schedobs.contract._spec import COMPLETED_TASKS

    m = SchedulerMetrics("pull", kind="gmp", registry=registry)
    counts = [0] * 20
    counts[3] = 5
    m.register_callback(
        lambda: [
            (QUEUE_LENGTH, {"scheduler.queue": "global"}, 4),
            (COMPLETED_TASKS, {}, 9),
            (SCHEDULE_LATENCY, {"scheduler.queue": "local"}, (counts, 0.4, 0.06, 0.09)),
        ]
    )
    got = {s.name: p for s, p in m.collect()}
    assert got["scheduler.queue.length"].value == 4
    assert got["scheduler.completed_tasks"].value == 9
    h = got["scheduler.schedule.latency"]
    assert (h.count, h.sum, h.min, h.max) == (5, 0.4, 0.06, 0.09)
    assert dict(h.attributes)["scheduler.queue"] == "local"

    bad = [
        (QUEUE_LENGTH, {"scheduler.queue": "nowhere"}, 1),  # value outside the closed set
        (QUEUE_LENGTH, {}, 1),  # required attribute missing
        (COMPLETED_TASKS, {}, -1),
        (SCHEDULE_LATENCY, {}, ([1, 2], 0.0, 0.0, 0.0)),  # wrong number of buckets
        (SCHEDULE_LATENCY, {}, (counts, float("nan"), 0.0, 0.0)),
        ("not a spec", {}, 1),
    ]
    for observation in bad:
        other = SchedulerMetrics(f"bad{bad.index(observation)}", registry=registry)
        other.register_callback(lambda o=observation: [o])
        with caplog.at_level("ERROR", logger="schedobs"):
            assert list(other.collect()) == []
    assert len([r for r in caplog.records if "metrics callback" in r.message]) == len(bad)
    with pytest.raises(TypeError, match="callback must be callable"):
        m.register_callback(3)  # type: ignore[arg-type]
