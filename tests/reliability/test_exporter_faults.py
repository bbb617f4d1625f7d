"""Exporter faults: a collector absent, gone, slow or refusing. Nothing blocks the application,
nothing is silently lost, cumulative values survive, shutdown is bounded."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from schedobs.contract import Registry, SchedulerMetrics
from schedobs.export import Telemetry, configure
from schedobs.testing import Fault, GrpcOtlpReceiver, HttpOtlpReceiver, latest_points

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rejected(receiver: GrpcOtlpReceiver | HttpOtlpReceiver) -> float:
    points = latest_points(receiver.metrics_requests)
    return sum(p.value for (name, _), p in points.items() if name == "scheduler.rejected_tasks")


def _telemetry(registry: Registry, endpoint: str, protocol: str = "grpc") -> Telemetry:
    return configure(
        "faults",
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,
        export_interval=3600,
        export_timeout=2,
        prometheus=None,
        registry=registry,
        set_global=False,
    )


def test_collector_absent_at_start_then_present(registry: Registry) -> None:
    port = _free_port()
    telemetry = _telemetry(registry, f"http://127.0.0.1:{port}")
    metrics = SchedulerMetrics("early", registry=registry)
    try:
        t0 = time.monotonic()
        for _ in range(10_000):
            metrics.reject("queue_full")  # recording never touches the network
        assert time.monotonic() - t0 < 2.0
        telemetry.force_flush(timeout=3)  # fails: nobody listens; bounded
        with GrpcOtlpReceiver(port=port) as receiver:
            for _ in range(5):
                metrics.reject("queue_full")
            assert telemetry.force_flush(timeout=10)
            receiver.wait_for(lambda r: _rejected(r) >= 10_005, timeout=15)
            assert _rejected(receiver) == 10_005  # cumulative: nothing lost while absent
    finally:
        telemetry.shutdown(timeout=5)


@pytest.mark.parametrize("outage", [3.0, pytest.param(30.0, marks=pytest.mark.slow)])
def test_collector_gone_mid_run_then_back(registry: Registry, outage: float) -> None:
    receiver = GrpcOtlpReceiver()
    port = receiver.port
    telemetry = _telemetry(registry, receiver.endpoint)
    metrics = SchedulerMetrics("outage", registry=registry)
    try:
        metrics.reject("shutdown", count=100)
        assert telemetry.force_flush(timeout=10)
        receiver.wait_for(lambda r: _rejected(r) == 100)
        receiver.close()
        deadline = time.monotonic() + outage
        recorded = 100
        while time.monotonic() < deadline:  # the application goes on during the outage
            metrics.reject("shutdown", count=10)
            recorded += 10
            telemetry.force_flush(timeout=1)  # each one fails within its bound
        with GrpcOtlpReceiver(port=port) as back:
            assert telemetry.force_flush(timeout=10)
            back.wait_for(lambda r: _rejected(r) == recorded, timeout=20)
    finally:
        telemetry.shutdown(timeout=5)


def test_a_slow_collector_never_holds_the_application(registry: Registry) -> None:
    with GrpcOtlpReceiver() as receiver:
        receiver.fault = Fault(delay=2.0)
        telemetry = _telemetry(registry, receiver.endpoint)
        tracer = telemetry.tracer_provider.get_tracer("t")
        metrics = SchedulerMetrics("slow", registry=registry)
        try:
            for _ in range(3000):
                with tracer.start_as_current_span("work"):
                    metrics.observe_latency(0.1)
            # All of it happened while the collector had answered nothing at all.
            assert receiver.trace_requests == [] and receiver.metrics_requests == []
            receiver.fault = None
        finally:
            assert telemetry.shutdown(timeout=10) in (True, False)


@pytest.mark.parametrize(
    ("receiver_type", "status", "protocol"),
    [(GrpcOtlpReceiver, "UNAVAILABLE", "grpc"), (HttpOtlpReceiver, 503, "http/protobuf"),
     (HttpOtlpReceiver, 429, "http/protobuf")],
)  # fmt: skip
def test_refusing_collector_losses_are_counted_and_logged_once(
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    receiver_type: type,
    status: object,
    protocol: str,
) -> None:
    from importlib.metadata import version

    if tuple(int(x) for x in version("opentelemetry-exporter-otlp-proto-common").split(".")[:2]) < (
        1, 35,
    ):  # fmt: skip
        pytest.skip(
            "before 1.35 the OTLP exporters retry for up to 64 s whatever their timeout, so "
            "the losses are counted, but only after this test's flush bound"
        )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # give up on a batch quickly
    with receiver_type() as receiver:
        receiver.fault = Fault(status=status)
        telemetry = _telemetry(registry, receiver.endpoint, protocol)
        tracer = telemetry.tracer_provider.get_tracer("t")
        try:
            with caplog.at_level(logging.WARNING, logger="schedobs"):
                for _batch in range(3):
                    for _ in range(50):
                        with tracer.start_as_current_span("lost"):
                            pass
                    telemetry.tracer_provider.force_flush(timeout_millis=5000)
            accounting = telemetry.accounting
            assert accounting is not None
            assert accounting.dropped["export_failed"] == 150
            assert receiver.faulted >= 3
            said = [r for r in caplog.records if "span export failed" in r.message]
            assert len(said) == 1  # once, not per span or per batch
            # Recovery: the next spans arrive.
            receiver.fault = None
            with tracer.start_as_current_span("kept"):
                pass
            assert telemetry.force_flush(timeout=10)
            receiver.wait_for(lambda r: r.trace_requests and r.metrics_requests, timeout=15)
            dropped = {
                (n, frozenset(a)): p.value
                for (n, a), p in latest_points(receiver.metrics_requests).items()
                if n == "schedobs.spans.dropped"
            }
            assert 150.0 in dropped.values()
        finally:
            telemetry.shutdown(timeout=5)


def test_a_full_span_queue_drops_are_counted_and_logged_once(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    with GrpcOtlpReceiver() as receiver:
        receiver.fault = Fault(delay=1.0)  # the exporter is stuck: the queue fills
        telemetry = _telemetry(registry, receiver.endpoint)
        tracer = telemetry.tracer_provider.get_tracer("t")
        try:
            with caplog.at_level(logging.WARNING):
                for _ in range(6000):  # the SDK's queue holds 2048
                    with tracer.start_as_current_span("burst"):
                        pass
            accounting = telemetry.accounting
            assert accounting is not None
            assert accounting.dropped["queue_full"] > 0
            logged = [r for r in caplog.records if r.getMessage().startswith("Queue full")]
            assert len(logged) <= 1  # never per span (the SDK deduplicates it); the count is ours
            receiver.fault = None
        finally:
            telemetry.shutdown(timeout=10)


def test_a_metric_exporter_that_raises_gives_one_line_not_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Some exporter releases raise (a connection error) instead of returning FAILURE;
    the SDK's reader then logs a full traceback at every export and at shutdown.
    The 1.45 exporters do not raise, so a stand-in exporter produces the fault."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )

    from schedobs.export._guard import GuardedMetricExporter

    class Raising(MetricExporter):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def export(self, metrics_data, timeout_millis=10_000, **kwargs):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls <= 4:
                raise ConnectionError("[Errno 111] Connection refused")
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
            raise ConnectionError("gone")

    caplog.set_level(logging.DEBUG)
    inner = Raising()
    guarded = GuardedMetricExporter(inner, "http://127.0.0.1:4318/v1/metrics")
    reader = PeriodicExportingMetricReader(guarded, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_counter("c").add(1)
    for _ in range(3):
        provider.force_flush()
    provider.shutdown()
    assert inner.calls == 4 and guarded.errors == 5  # 4 exports and the shutdown
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    lines = [r.getMessage() for r in caplog.records if r.name == "schedobs"]
    assert lines == [
        "metric export to http://127.0.0.1:4318/v1/metrics failed: ConnectionError: "
        "[Errno 111] Connection refused (further failures are counted in "
        "schedobs.metric_exports.failed, not logged, until one succeeds)"
    ]
    assert guarded.failed == 4  # the exports; the shutdown is not an export
