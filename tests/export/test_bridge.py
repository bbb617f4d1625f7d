"""The producer bridge: contract metrics appear in any SDK reader, merged with SDK metrics."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Histogram,
    InMemoryMetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource

from schedobs.contract import CONTRACT_VERSION, LATENCY_BOUNDARIES_MS, Registry, SchedulerMetrics
from schedobs.export import SCOPE, attach


def _provider(registry: Registry, reader: InMemoryMetricReader) -> MeterProvider:
    resource = Resource.create({"service.name": "bridge-test"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    attach(reader, resource=resource, registry=registry)
    return provider


def _scopes(data: MetricsData) -> dict[str, list[str]]:
    return {
        sm.scope.name: [m.name for m in sm.metrics]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
    }


def test_contract_metrics_appear_without_any_sdk_instrument(registry: Registry) -> None:
    reader = InMemoryMetricReader()
    provider = _provider(registry, reader)
    m = SchedulerMetrics("s", registry=registry)
    m.observe_latency(0.3)
    data = reader.get_metrics_data()
    assert data is not None
    assert _scopes(data) == {"schedobs": ["scheduler.schedule.latency"]}
    rm = data.resource_metrics[0]
    assert rm.resource.attributes["service.name"] == "bridge-test"
    sm = rm.scope_metrics[0]
    assert sm.scope == SCOPE
    assert sm.scope.attributes is not None
    assert sm.scope.attributes["schedobs.contract.version"] == CONTRACT_VERSION
    metric = sm.metrics[0]
    assert metric.unit == "ms"
    assert isinstance(metric.data, Histogram)
    point = metric.data.data_points[0]
    assert point.count == 1
    assert list(point.explicit_bounds) == list(LATENCY_BOUNDARIES_MS)
    provider.shutdown()


def test_merged_with_the_sdks_own_metrics_in_one_resource(registry: Registry) -> None:
    reader = InMemoryMetricReader()
    provider = _provider(registry, reader)
    provider.get_meter("app").create_counter("app.requests").add(2)
    SchedulerMetrics("s", registry=registry).reject("shutdown")
    data = reader.get_metrics_data()
    assert data is not None
    assert len(data.resource_metrics) == 1
    assert _scopes(data) == {"app": ["app.requests"], "schedobs": ["scheduler.rejected_tasks"]}
    counter = data.resource_metrics[0].scope_metrics[1].metrics[0].data
    assert isinstance(counter, Sum)
    assert counter.is_monotonic
    provider.shutdown()


def test_empty_registry_adds_nothing(registry: Registry) -> None:
    reader = InMemoryMetricReader()
    provider = _provider(registry, reader)
    assert reader.get_metrics_data() is None
    provider.shutdown()


def test_counts_are_exact_while_collecting_concurrently(registry: Registry) -> None:
    reader = InMemoryMetricReader()
    provider = _provider(registry, reader)
    m = SchedulerMetrics("s", registry=registry)
    h = m.latency()
    stop = threading.Event()
    seen: list[int] = []

    def collect() -> None:
        while not stop.is_set():
            data = reader.get_metrics_data()
            if data is not None:
                seen.append(
                    data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0].count
                )  # type: ignore[union-attr]

    collector = threading.Thread(target=collect)
    collector.start()
    workers = [
        threading.Thread(target=lambda: [h.observe(0.05) for _ in range(25_000)]) for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    collector.join()
    final = reader.get_metrics_data()
    assert final is not None
    assert (
        final.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0].count == 100_000
    )  # type: ignore[union-attr]
    assert seen == sorted(seen)  # cumulative, never backwards
    provider.shutdown()


def test_attach_needs_a_registered_reader(registry: Registry) -> None:
    with pytest.raises(ValueError, match="not registered with a MeterProvider"):
        attach(InMemoryMetricReader(), resource=Resource.create({}), registry=registry)


def test_attach_twice_is_refused(registry: Registry) -> None:
    reader = InMemoryMetricReader()
    provider = _provider(registry, reader)
    with pytest.raises(ValueError, match="already attached"):
        attach(reader, resource=Resource.create({}), registry=registry)
    provider.shutdown()
