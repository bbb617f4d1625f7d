"""One family per metric name, whatever the Prometheus exporter release emits."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

from schedobs.export._prometheus import _SerializedCollector


class _Split:
    """What exporter releases before 0.63b0 do: a family per attribute set."""

    def collect(self) -> list[object]:
        a = CounterMetricFamily("rejected", "refused", labels=["name", "reason"])
        a.add_metric(["s", "queue_full"], 3)
        b = CounterMetricFamily("rejected", "refused", labels=["name", "reason", "tenant"])
        b.add_metric(["s", "queue_full", "gold"], 2)
        h1 = HistogramMetricFamily("lat", "latency", labels=["queue"])
        h1.add_metric(["work"], buckets=[("1.0", 1), ("+Inf", 2)], sum_value=3.0)
        h2 = HistogramMetricFamily("lat", "latency", labels=["queue", "tenant"])
        h2.add_metric(["work", "gold"], buckets=[("1.0", 0), ("+Inf", 1)], sum_value=5.0)
        return [a, b, h1, h2]


def test_split_families_are_merged_with_empty_labels() -> None:
    inner = CollectorRegistry(auto_describe=False)
    inner.register(_Split())  # type: ignore[arg-type]
    outer = CollectorRegistry(auto_describe=False)
    outer.register(_SerializedCollector(inner))  # type: ignore[arg-type]
    text = generate_latest(outer).decode()
    assert text.count("# TYPE rejected_total counter") + text.count("# TYPE rejected counter") == 1
    assert text.count("# TYPE lat histogram") == 1
    assert 'rejected_total{name="s",reason="queue_full",tenant=""} 3.0' in text
    assert 'rejected_total{name="s",reason="queue_full",tenant="gold"} 2.0' in text
    assert 'lat_bucket{le="1.0",queue="work",tenant=""} 1.0' in text
    assert 'lat_sum{queue="work",tenant=""} 3.0' in text  # no le="" on _sum


def test_uniform_attributes_pad_every_point_to_the_same_keys() -> None:
    """For exporter releases before 0.63b0, which label all of a metric's series with one
    point's keys: the bridge gives every point the same keys (missing ones empty)."""
    from schedobs.contract import Registry, SchedulerMetrics
    from schedobs.export._bridge import _uniform, to_sdk_metrics

    registry = Registry()
    m = SchedulerMetrics("u", kind="custom", registry=registry)
    m.reject("queue_full", tenant="gold")
    m.reject("shutdown")
    (metric,) = [x for x in to_sdk_metrics(registry.collect(), 1) if "rejected" in x.name]
    keys = [set(p.attributes or {}) for p in metric.data.data_points]
    assert keys[0] != keys[1]
    padded = [dict(p.attributes or {}) for p in _uniform(metric).data.data_points]
    assert {frozenset(p) for p in padded} == {frozenset(keys[0] | keys[1])}
    assert sorted(str(p["scheduler.tenant"]) for p in padded) == ["", "gold"]
