"""Check an OTLP ``ExportMetricsServiceRequest`` against the contract."""

from __future__ import annotations

import math

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from schedobs.contract import CONTRACT, Contract, InstrumentKind, MetricSpec

from ._report import Report
from ._rules import Findings, attribute_problems, close_match

__all__ = ["check_otlp_metrics"]

_NAMESPACES = ("scheduler.", "schedobs.", "clock.")
_DATA_FIELD = {
    InstrumentKind.GAUGE: "gauge",
    InstrumentKind.COUNTER: "sum",
    InstrumentKind.HISTOGRAM: "histogram",
}


def _attributes(spec: MetricSpec, kvs: list[KeyValue], found: Findings) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for kv in kvs:
        if kv.value.WhichOneof("value") != "string_value":
            found.violation(
                spec.name, "bad-attribute-value", f"attribute {kv.key!r} is not a string"
            )
            return None
        out[kv.key] = kv.value.string_value
    return out


def check_otlp_metrics(
    request: ExportMetricsServiceRequest | bytes,
    *,
    contract: Contract = CONTRACT,
    strict: bool = False,
    source: str = "OTLP request",
    allow_empty: bool = False,
) -> Report:
    """Validate an OTLP metrics export request (message or serialized bytes).

    A request with no contract metric at all is a violation unless ``allow_empty``.

    Checks every metric in the ``scheduler.``/``schedobs.`` namespaces: known
    name, data type (gauge, monotonic sum, histogram), unit, attribute keys and
    closed values, bucket boundaries and histogram consistency.
    """
    if isinstance(request, (bytes, bytearray)):
        message = ExportMetricsServiceRequest()
        message.ParseFromString(bytes(request))
        request = message
    found = Findings()
    known = {spec.name: spec for spec in contract.metrics}
    seen: list[str] = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if not metric.name.startswith(_NAMESPACES):
                    continue
                spec = known.get(metric.name)
                if spec is None:
                    found.violation(
                        metric.name,
                        "unknown-metric",
                        "this name is in the contract's namespace but is not a contract metric"
                        + close_match(metric.name, known),
                    )
                    continue
                seen.append(metric.name)
                _check_metric(spec, metric, contract, found)
    found.missing(contract, seen, strict, "otel", allow_empty)
    return found.report(source, contract)


def _check_metric(spec: MetricSpec, metric: Metric, contract: Contract, found: Findings) -> None:
    kind = metric.WhichOneof("data")
    want = _DATA_FIELD[spec.instrument]
    if kind != want:
        found.violation(spec.name, "wrong-type", f"data is {kind}, the contract says {want}")
        return
    if metric.unit != spec.unit:
        found.violation(
            spec.name, "wrong-unit", f"unit is {metric.unit!r}, the contract says {spec.unit!r}"
        )
    if kind == "sum" and not metric.sum.is_monotonic:
        found.violation(spec.name, "wrong-type", "sum is not monotonic; a counter must be")
    if kind == "sum" and metric.sum.aggregation_temporality not in (
        AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
        AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA,
    ):
        found.violation(spec.name, "wrong-type", "sum has no aggregation temporality")
    points = getattr(metric, kind).data_points
    for point in points:
        attrs = _attributes(spec, list(point.attributes), found)
        if attrs is None:
            continue
        found.count_series(spec)
        for rule, message in attribute_problems(spec, attrs, contract):
            found.violation(spec.name, rule, message, attrs)
        if kind == "histogram":
            _check_histogram_point(spec, point, attrs, found)
        else:
            value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
            if (value < 0 and not spec.signed) or not math.isfinite(value):
                found.violation(spec.name, "bad-value", f"value {value} is not >= 0", attrs)


def _check_histogram_point(
    spec: MetricSpec, point: object, attrs: dict[str, str], found: Findings
) -> None:
    bounds = list(point.explicit_bounds)  # type: ignore[attr-defined]
    counts = list(point.bucket_counts)  # type: ignore[attr-defined]
    expected = list(spec.boundaries or ())
    if bounds != expected:
        found.violation(
            spec.name,
            "bad-buckets",
            f"explicit_bounds {bounds} differ from the contract's {expected}",
            attrs,
        )
    if len(counts) != len(bounds) + 1:
        found.violation(
            spec.name,
            "inconsistent-histogram",
            f"{len(counts)} bucket counts for {len(bounds)} bounds (want bounds + 1)",
            attrs,
        )
    total = sum(counts)
    if total != point.count:  # type: ignore[attr-defined]
        found.violation(
            spec.name,
            "inconsistent-histogram",
            f"bucket counts add up to {total}, count is {point.count}",  # type: ignore[attr-defined]
            attrs,
        )
