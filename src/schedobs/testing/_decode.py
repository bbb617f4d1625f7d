"""Decode OTLP metric requests into plain values, for assertions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

__all__ = ["OtlpPoint", "latest_points"]

Attrs = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class OtlpPoint:
    """One decoded data point; ``value`` is the number, or the count for a histogram."""

    metric: str
    unit: str
    kind: str
    attributes: dict[str, str]
    value: float
    sum: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()
    time_unix_nano: int = 0
    start_time_unix_nano: int = 0


def latest_points(
    requests: Iterable[ExportMetricsServiceRequest],
) -> dict[tuple[str, Attrs], OtlpPoint]:
    """The last point of every (metric, attribute set) across ``requests``, in order."""
    out: dict[tuple[str, Attrs], OtlpPoint] = {}
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    for p in getattr(metric, kind).data_points:
                        attrs = {kv.key: kv.value.string_value for kv in p.attributes}
                        if kind == "histogram":
                            point = OtlpPoint(
                                metric.name, metric.unit, kind, attrs, float(p.count),
                                sum=p.sum, bucket_counts=tuple(p.bucket_counts),
                                explicit_bounds=tuple(p.explicit_bounds),
                                time_unix_nano=p.time_unix_nano,
                                start_time_unix_nano=p.start_time_unix_nano,
                            )  # fmt: skip
                        else:
                            which = p.WhichOneof("value")
                            value = float(p.as_int if which == "as_int" else p.as_double)
                            point = OtlpPoint(
                                metric.name, metric.unit, kind, attrs, value,
                                time_unix_nano=p.time_unix_nano,
                                start_time_unix_nano=p.start_time_unix_nano,
                            )  # fmt: skip
                        out[(metric.name, frozenset(attrs.items()))] = point
    return out
