"""The producer bridge: pre-aggregated contract metrics into any SDK metric reader.

The OTel specification's *MetricProducer* lets a reader pull pre-aggregated
metrics at collection time; the Python SDK does not implement it.  This module
is schedobs' one implementation of it.  :func:`attach` wraps a reader's
collection so that, whenever the reader collects (the periodic OTLP reader on
its timer, the Prometheus reader on each scrape), the registry is snapshotted
and its metrics are appended to what the SDK's own instruments produced::

    reader.collect() ─► SDK storage ─┐
                                     ├─► MetricsData ─► exporter / scrape
    reader.collect() ─► Registry ────┘   (scope "schedobs")

Both readers therefore see the same snapshot format, with identical names,
units, attributes and values, and nothing on the recording hot path touches
the SDK.  Points are cumulative (Prometheus requires it; OTLP backends that
want deltas convert, as the Collector's ``cumulativetodelta`` processor does).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from schedobs._version import __version__
from schedobs.contract import (
    CONTRACT_VERSION,
    REGISTRY,
    CounterPoint,
    GaugePoint,
    HistogramPoint,
    InstrumentKind,
    MetricSnapshot,
    Registry,
)

from ._exemplars import sdk_exemplars

__all__ = ["SCOPE", "attach", "to_sdk_metrics"]

#: The instrumentation scope of every contract metric.  Its version is the
#: package version; the contract version is a scope attribute, so a consumer
#: can tell which contract a series follows.
SCOPE = InstrumentationScope(
    "schedobs", __version__, attributes={"schedobs.contract.version": CONTRACT_VERSION}
)

_CUMULATIVE = AggregationTemporality.CUMULATIVE
_CollectFn = Callable[..., "MetricsData | None"]


def to_sdk_metrics(snapshots: Iterable[MetricSnapshot], now_ns: int) -> list[Metric]:
    """Translate registry snapshots into SDK ``Metric`` objects stamped ``now_ns``."""
    out: list[Metric] = []
    for snap in snapshots:
        spec = snap.spec
        data: Gauge | Sum | Histogram
        if spec.instrument is InstrumentKind.HISTOGRAM:
            bounds = list(spec.boundaries or ())
            data = Histogram(
                data_points=[
                    HistogramDataPoint(
                        attributes=dict(p.attributes),
                        start_time_unix_nano=p.start_ns,
                        time_unix_nano=now_ns,
                        count=p.count,
                        sum=p.sum,
                        bucket_counts=list(p.bucket_counts),
                        explicit_bounds=bounds,
                        min=p.min,
                        max=p.max,
                        exemplars=sdk_exemplars(p.exemplars),
                    )
                    for p in snap.points
                    if isinstance(p, HistogramPoint)
                ],
                aggregation_temporality=_CUMULATIVE,
            )
        elif spec.instrument is InstrumentKind.COUNTER:
            data = Sum(
                data_points=[
                    NumberDataPoint(
                        attributes=dict(p.attributes),
                        start_time_unix_nano=p.start_ns,
                        time_unix_nano=now_ns,
                        value=p.value,
                    )
                    for p in snap.points
                    if isinstance(p, CounterPoint)
                ],
                aggregation_temporality=_CUMULATIVE,
                is_monotonic=True,
            )
        else:
            data = Gauge(
                data_points=[
                    NumberDataPoint(
                        attributes=dict(p.attributes),
                        # As the SDK's own gauges: a gauge has no start time.
                        start_time_unix_nano=None,  # type: ignore[arg-type]
                        time_unix_nano=now_ns,
                        value=p.value,
                    )
                    for p in snap.points
                    if isinstance(p, GaugePoint)
                ]
            )
        out.append(Metric(name=spec.name, description=spec.description, unit=spec.unit, data=data))
    return out


def _merge(
    data: MetricsData | None, scope_metrics: ScopeMetrics, resource: Resource
) -> MetricsData:
    if data is None or not data.resource_metrics:
        return MetricsData(
            resource_metrics=[
                ResourceMetrics(
                    resource=resource, scope_metrics=[scope_metrics], schema_url=resource.schema_url
                )
            ]
        )
    first, *rest = data.resource_metrics
    merged = ResourceMetrics(
        resource=first.resource,
        scope_metrics=[*first.scope_metrics, scope_metrics],
        schema_url=first.schema_url,
    )
    return MetricsData(resource_metrics=[merged, *rest])


def _uniform(metric: Metric) -> Metric:
    data: Any = metric.data
    points: list[Any] = list(data.data_points)
    keys = {key for point in points for key in (point.attributes or {})}
    if all(set(point.attributes or {}) == keys for point in points):
        return metric
    padded = [
        dataclasses.replace(point, attributes=dict.fromkeys(keys, "") | dict(point.attributes))
        for point in points
    ]
    return dataclasses.replace(metric, data=dataclasses.replace(data, data_points=padded))


def attach(
    reader: MetricReader,
    *,
    resource: Resource,
    registry: Registry | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
    uniform_attributes: bool = False,
    observe: Callable[[list[Metric]], None] | None = None,
) -> None:
    """Make ``reader`` export ``registry``'s contract metrics with every collection.

    ``uniform_attributes``: give every point of a metric the same attribute keys
    (missing ones empty), for Prometheus exporter releases before 0.63b0, which
    label all of a metric's series with one point's keys (Prometheus reads an
    empty label as an absent one, so the exposition means what later releases say).
    ``observe``: called with the contract metrics of every collection (the
    Prometheus endpoint reads its exemplars there).

    ``reader`` must already be registered with a ``MeterProvider`` (pass it in
    ``MeterProvider(metric_readers=[...])`` first); ``resource`` should be that
    provider's resource, used when the SDK itself has nothing to export.
    :func:`schedobs.configure` does all of this for you.
    """
    source = REGISTRY if registry is None else registry
    # The SDK installs its collection function with ``_set_collect_callback``
    # when the reader joins a MeterProvider; it is the only hook that runs on
    # every path into a reader (timer, force_flush, Prometheus scrape).  A
    # workaround: the SDK has no public MetricProducer yet (issue
    # open-telemetry/opentelemetry-python#4768; PR #5419 proposes
    # ``metric_producers=`` on readers).  No release accepts it today; when one
    # does, this bridge should hand the registry over that way instead.
    # ``_sdk.check_sdk`` verifies the hook exists before configure() starts.
    inner: _CollectFn | None = getattr(reader, "_collect", None)
    if inner is None:
        raise ValueError(
            "reader is not registered with a MeterProvider yet: create "
            "MeterProvider(metric_readers=[reader]) before attaching the schedobs bridge"
        )
    if getattr(inner, "_schedobs_bridge", False):
        raise ValueError("a schedobs registry is already attached to this reader")

    def collect(reader_: MetricReader, *args: Any, **kwargs: Any) -> MetricsData | None:
        data: MetricsData | None = inner(reader_, *args, **kwargs)
        metrics = to_sdk_metrics(source.collect(), clock_ns())
        if uniform_attributes:
            metrics = [_uniform(metric) for metric in metrics]
        if observe is not None:
            observe(metrics)
        if not metrics:
            return data
        scope_metrics = ScopeMetrics(scope=SCOPE, metrics=metrics, schema_url="")
        return _merge(data, scope_metrics, resource)

    collect._schedobs_bridge = True  # type: ignore[attr-defined]
    # The SDK's annotation of this callback is narrower than how it calls it
    # (with ``timeout_millis=``, accepting ``None``); the wrapper mirrors the call.
    reader._set_collect_callback(collect)  # type: ignore[arg-type]
