"""The Collector stopped for 5 s mid-run and started again.

Spans: every span the process ended is either at the far end of the Collector
or counted in ``schedobs.spans.dropped`` — exactly.  Metrics: every failed
export is counted in ``schedobs.metric_exports.failed``; the contract's
cumulative counts reach the far end complete once the Collector is back.
Each kind of failure is logged once, not per failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from schedobs.contract import Registry, SchedulerMetrics
from schedobs.export import configure
from schedobs.testing import GrpcOtlpReceiver

from .._collector import ROOT, Collector, otlp_ports
from .._prometheus_server import PrometheusServer, free_port, poll

pytestmark = pytest.mark.integration

NAME = "outage"


def test_a_collector_outage_is_counted_and_delivery_resumes(
    registry: Registry,
    prometheus_server: PrometheusServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    grpc_receiver: GrpcOtlpReceiver,
    start_collector: Callable[..., Collector],
) -> None:
    sink = grpc_receiver
    ports = otlp_ports()
    exporter = f"127.0.0.1:{free_port()}"
    collector = start_collector(
        ROOT / "collector-config" / "otel-collector.yaml",
        {
            **ports,
            "exporters::prometheus::endpoint": exporter,
            "exporters::otlp_grpc/traces::endpoint": sink.endpoint.removeprefix("http://"),
            "processors::batch::timeout": "200ms",
        },
    )
    # Exporters that give up after 2 s: the 5 s outage outlasts their retries, so
    # that exports fail (and are counted) rather than only being late.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    telemetry = configure(
        NAME,
        prometheus="127.0.0.1:0",
        otlp_endpoint="http://" + ports["receivers::otlp::protocols::grpc::endpoint"],
        export_interval=1.0,
        export_timeout=2.0,
        registry=registry,
        set_global=False,
    )
    caplog.set_level(logging.WARNING, logger="schedobs")
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        direct = f"{host}:{port}"
        prometheus_server.scrape(direct, exporter)
        metrics = SchedulerMetrics(NAME, registry=registry)
        latency = metrics.latency(queue="work")
        tracer = telemetry.tracer_provider.get_tracer("outage")
        created = 0

        def work(seconds: float) -> None:
            nonlocal created
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                with tracer.start_as_current_span("task"):
                    latency.observe(1.5)
                    metrics.reject("queue_full")
                created += 1
                time.sleep(0.02)

        work(2.0)
        collector.stop()
        work(5.0)
        collector.start()
        work(2.0)
        assert telemetry.force_flush(timeout=20)

        assert telemetry.accounting is not None
        dropped = dict(telemetry.accounting.dropped)
        lost = dropped["export_failed"] + dropped["queue_full"]

        def delivered() -> set[bytes]:
            return {
                span.span_id
                for request in list(sink.trace_requests)
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            }

        # The Collector forwards what it accepted after its own batch timeout.
        poll(
            lambda: len(delivered()) + lost >= created or None,
            15.0,
            f"{created} spans delivered or counted ({len(delivered())} + {dropped})",
        )
        assert len(delivered()) + lost == created, (len(delivered()), dropped, created)

        # The counts are the process's own on both paths; the cumulative totals made it
        # through once the Collector was back.
        for path in (direct, exporter):
            prometheus_server.wait_value(
                f'sum(scheduler_schedule_latency_milliseconds_count{{scheduler_name="{NAME}",'
                f'instance="{path}"}})',
                created,
                timeout=30,
            )
        failed_exports = poll(
            lambda: (
                prometheus_server.value(
                    f'sum(schedobs_metric_exports_failed_total{{instance="{direct}"}})'
                )
                or None
            ),
            10.0,
            "failed metric exports counted",
        )
        # The exporter retries for up to its timeout (2 s) before it gives up: one failed
        # export or more in 5 s (each is counted, however long it tried).
        assert failed_exports >= 1
        spans_lost = prometheus_server.value(
            f'sum(schedobs_spans_dropped_total{{instance="{direct}"}})'
        )
        assert spans_lost == dropped["export_failed"] + dropped["queue_full"]
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert sum("metric export" in w for w in warnings) == 1, warnings
        assert sum("span export failed" in w for w in warnings) <= 1, warnings
    finally:
        telemetry.shutdown(timeout=5)
