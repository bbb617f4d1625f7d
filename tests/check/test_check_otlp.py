"""The OTLP checker passes real exporter output and fails, precisely, on altered payloads."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from schedobs.check import check_otlp_metrics
from schedobs.contract import Registry
from schedobs.export import configure
from schedobs.testing import GrpcOtlpReceiver

from .._workload import record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def payload() -> bytes:
    """A real ExportMetricsServiceRequest from the SDK's gRPC exporter."""
    registry = Registry()
    record(registry, name="otlpchk")
    with GrpcOtlpReceiver() as receiver:
        telemetry = configure(
            otlp_endpoint=receiver.endpoint,
            export_interval=3600,
            prometheus=None,
            registry=registry,
            set_global=False,
        )
        telemetry.force_flush(timeout=10)
        receiver.wait_for(lambda r: r.metrics_requests)
        telemetry.shutdown(timeout=10)
        return bytes(receiver.metrics_requests[0].SerializeToString())


def _altered(
    payload: bytes, name: str, change: Callable[[Metric], None]
) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    request.ParseFromString(payload)
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    change(metric)
    return request


def test_real_payload_conforms(payload: bytes) -> None:
    report = check_otlp_metrics(payload, strict=True)
    assert report.ok, report.render_text()
    assert {k: v for k, v in report.series.items() if k.startswith("scheduler.")} == {
        "scheduler.queue.length": 2,
        "scheduler.schedule.latency": 2,
        "scheduler.rejected_tasks": 3,
    }


def _set_unit(m: Metric) -> None:
    m.unit = "s"


def _bounds(m: Metric) -> None:
    m.histogram.data_points[0].explicit_bounds[0] = 0.02


def _count(m: Metric) -> None:
    m.histogram.data_points[0].count += 1


def _non_monotonic(m: Metric) -> None:
    m.sum.is_monotonic = False


def _bad_reason(m: Metric) -> None:
    m.sum.data_points[0].attributes[2].value.string_value = "full"


def _rename(m: Metric) -> None:
    m.name = "scheduler.schedule.latency_ms"


def _as_gauge(m: Metric) -> None:
    points = list(m.sum.data_points)
    m.ClearField("sum")
    m.gauge.data_points.extend(points)


@pytest.mark.parametrize(
    ("name", "change", "rule", "text"),
    [
        (
            "scheduler.schedule.latency",
            _set_unit,
            "wrong-unit",
            "unit is 's', the contract says 'ms'",
        ),
        ("scheduler.schedule.latency", _bounds, "bad-buckets", "explicit_bounds [0.02,"),
        ("scheduler.schedule.latency", _count, "inconsistent-histogram", "bucket counts add up to"),
        ("scheduler.rejected_tasks", _non_monotonic, "wrong-type", "sum is not monotonic"),
        ("scheduler.rejected_tasks", _bad_reason, "bad-attribute-value", "'full' is not one of"),
        (
            "scheduler.rejected_tasks",
            _as_gauge,
            "wrong-type",
            "data is gauge, the contract says sum",
        ),
        (
            "scheduler.schedule.latency",
            _rename,
            "unknown-metric",
            "did you mean 'scheduler.schedule.latency'",
        ),
    ],
)
def test_altered_payloads_are_flagged(
    payload: bytes, name: str, change: Callable[[Metric], None], rule: str, text: str
) -> None:
    report = check_otlp_metrics(_altered(payload, name, change))
    assert not report.ok
    assert any(v.rule == rule and text in v.message for v in report.violations), (
        report.render_text()
    )
