"""configure() against real OTLP receivers (gRPC and HTTP) on loopback."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace import ReadableSpan

from schedobs.check import check_otlp_metrics
from schedobs.contract import LATENCY_BOUNDARIES_MS, Registry
from schedobs.export import configure
from schedobs.testing import (
    GrpcOtlpReceiver,
    HttpOtlpReceiver,
    OtlpReceiver,
    latest_points,
    wait_until,
)

from .._workload import LATENCIES, QUEUES, REJECTIONS, record

pytestmark = pytest.mark.integration


def _attrs(**kw: str | None) -> frozenset[tuple[str, str]]:
    base = {"scheduler.name": "e2e", "scheduler.kind": "custom"}
    base.update({k.replace("_", "."): v for k, v in kw.items() if v is not None})
    return frozenset(base.items())


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_contract_metrics_arrive_exactly_over_otlp(
    protocol: str,
    registry: Registry,
    grpc_receiver: GrpcOtlpReceiver,
    http_receiver: HttpOtlpReceiver,
) -> None:
    receiver: OtlpReceiver = grpc_receiver if protocol == "grpc" else http_receiver
    expected = record(registry)
    telemetry = configure(
        "otlp-e2e",
        zone="az-1",
        otlp_endpoint=receiver.endpoint,
        otlp_protocol=protocol,
        export_interval=3600,  # only force_flush exports
        prometheus=None,
        registry=registry,
        set_global=False,
    )
    try:
        with telemetry.tracer_provider.get_tracer("t").start_as_current_span("work"):
            pass
        assert telemetry.force_flush(timeout=10)
        receiver.wait_for(lambda r: r.metrics_requests and r.trace_requests)
    finally:
        assert telemetry.shutdown(timeout=10)

    request = receiver.metrics_requests[-1]
    resource = {
        kv.key: kv.value.string_value for kv in request.resource_metrics[0].resource.attributes
    }
    assert resource["service.name"] == "otlp-e2e"
    assert resource["cloud.availability_zone"] == "az-1"
    scopes = {sm.scope.name for sm in request.resource_metrics[0].scope_metrics}
    assert "schedobs" in scopes  # the contract; "schedobs.self" carries the self-metrics

    report = check_otlp_metrics(request, strict=True)
    assert report.ok, report.render_text()

    points = latest_points(receiver.metrics_requests)
    for (queue, tenant), values in LATENCIES.items():
        p = points[
            ("scheduler.schedule.latency", _attrs(scheduler_queue=queue, scheduler_tenant=tenant))
        ]
        assert p.unit == "ms" and p.kind == "histogram"
        assert p.value == len(values)
        assert list(p.bucket_counts) == expected.counts[(queue, tenant)]
        assert p.sum == pytest.approx(expected.sums[(queue, tenant)])
        assert p.explicit_bounds == LATENCY_BOUNDARIES_MS
    for (reason, tenant), n in REJECTIONS.items():
        p = points[("scheduler.rejected_tasks", _attrs(error_type=reason, scheduler_tenant=tenant))]
        assert (p.kind, p.unit, p.value) == ("sum", "{task}", n)
    for queue, n in QUEUES.items():
        p = points[("scheduler.queue.length", _attrs(scheduler_queue=queue))]
        assert (p.kind, p.unit, p.value) == ("gauge", "{task}", n)

    spans = [
        s
        for r in receiver.trace_requests
        for rs in r.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert [s.name for s in spans] == ["work"]


class _ShiftBySecond:
    """A test rewriter: +1 s on every timestamp (the clock-compensation seam)."""

    SHIFT = 1_000_000_000

    def __init__(self) -> None:
        self.span_batches = 0
        self.metric_batches = 0

    def rewrite_spans(self, spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
        self.span_batches += 1
        out = []
        for s in spans:
            out.append(
                ReadableSpan(
                    name=s.name,
                    context=s.context,
                    parent=s.parent,
                    resource=s.resource,
                    attributes=s.attributes,
                    events=s.events,
                    links=s.links,
                    kind=s.kind,
                    status=s.status,
                    start_time=(s.start_time or 0) + self.SHIFT,
                    end_time=(s.end_time or 0) + self.SHIFT,
                    instrumentation_scope=s.instrumentation_scope,
                )
            )
        return out

    def rewrite_metrics(self, data: MetricsData) -> MetricsData:
        self.metric_batches += 1
        from dataclasses import replace

        return MetricsData(
            resource_metrics=[
                replace(rm, scope_metrics=[
                    replace(sm, metrics=[
                        replace(m, data=replace(m.data, data_points=[
                            replace(p, time_unix_nano=p.time_unix_nano + self.SHIFT)
                            for p in m.data.data_points
                        ]))
                        for m in sm.metrics
                    ])
                    for sm in rm.scope_metrics
                ])
                for rm in data.resource_metrics
            ]
        )  # fmt: skip


def test_timestamp_rewriter_runs_before_otlp_export(
    registry: Registry, grpc_receiver: GrpcOtlpReceiver
) -> None:
    record(registry)
    rewriter = _ShiftBySecond()
    before = time.time_ns()
    telemetry = configure(
        "seam",
        otlp_endpoint=grpc_receiver.endpoint,
        export_interval=3600,
        prometheus=None,
        registry=registry,
        clock=rewriter,
        set_global=False,
    )
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("s"):
        pass
    assert telemetry.force_flush(timeout=10)
    grpc_receiver.wait_for(lambda r: r.metrics_requests and r.trace_requests)
    assert telemetry.shutdown(timeout=10)
    after = time.time_ns()
    assert rewriter.metric_batches >= 1 and rewriter.span_batches >= 1
    for p in latest_points(grpc_receiver.metrics_requests).values():
        assert before + rewriter.SHIFT <= p.time_unix_nano <= after + rewriter.SHIFT
    span = grpc_receiver.trace_requests[0].resource_spans[0].scope_spans[0].spans[0]
    assert before + rewriter.SHIFT <= span.start_time_unix_nano <= after + rewriter.SHIFT


class _Broken:
    def rewrite_spans(self, spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
        raise RuntimeError("broken span rewriter")

    def rewrite_metrics(self, data: MetricsData) -> MetricsData:
        raise RuntimeError("broken metric rewriter")


def test_a_failing_rewriter_exports_uncorrected_and_logs_once(
    registry: Registry, grpc_receiver: GrpcOtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    record(registry)
    telemetry = configure(
        otlp_endpoint=grpc_receiver.endpoint,
        export_interval=3600,
        prometheus=None,
        registry=registry,
        clock=_Broken(),
        set_global=False,
    )
    for _ in range(3):
        assert telemetry.force_flush(timeout=10)
    grpc_receiver.wait_for(lambda r: len(r.metrics_requests) >= 3)
    assert telemetry.shutdown(timeout=10)
    failures = [r for r in caplog.records if "metric timestamp rewriting failed" in r.message]
    assert len(failures) == 1


@pytest.mark.parametrize("prometheus", [None, "127.0.0.1:0"], ids=["otlp only", "with scrape"])
def test_shutdown_returns_within_its_bound_when_the_collector_is_down(
    registry: Registry, prometheus: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """With the scrape endpoint on it took 3.44 s for shutdown(timeout=3) and logged a
    12-line traceback (the Prometheus reader's "deadline already exceeded")."""
    # A receiver that is started and stopped: its port is closed now.
    with GrpcOtlpReceiver() as gone:
        endpoint = gone.endpoint
    record(registry)
    telemetry = configure(
        otlp_endpoint=endpoint,
        export_interval=3600,
        export_timeout=30,
        prometheus=prometheus,
        registry=registry,
        set_global=False,
    )
    caplog.set_level(logging.WARNING)
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("lost"):
        pass
    started = time.monotonic()
    assert telemetry.shutdown(timeout=2.0) is False
    elapsed = time.monotonic() - started
    assert elapsed < 2.0 + 0.1, elapsed  # bounded, whatever the SDK's retry back-off does
    # The exports still retrying are stopped, not left to retry for export_timeout
    # (30 s) in the background, logging into whatever the service does next.
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("schedobs-shutdown")],
        timeout=3,
        what="the shutdown's export threads to end",
    )
    ours = [r for r in caplog.records if r.name == "schedobs"]
    assert len(ours) == 1 and "did not finish within 2.0 s" in ours[0].getMessage(), ours
    assert not any(r.exc_info for r in ours)
    # The span that was never sent is counted, and the exporters were shut down once.
    assert telemetry.accounting is not None
    assert telemetry.accounting.dropped["export_failed"] == 1
    assert not [r for r in caplog.records if "already shutdown" in r.getMessage()]


def test_a_part_that_fails_while_another_is_late_is_still_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The race behind a once-flaky shutdown: the metrics part ended in time with the
    SDK's two-line error (its Prometheus reader found the deadline gone) while the
    traces part was still retrying. Both go into one single-line warning."""
    from schedobs.export._configure import _run_bounded

    release = threading.Event()

    def metrics() -> None:
        raise Exception(  # the SDK's own type and shape
            "MeterProvider.shutdown failed because the following metric readers failed "
            "during shutdown:\n_PullReader: Exception(\"Didn't get to execute, deadline "
            'already exceeded")'
        )

    caplog.set_level(logging.WARNING, logger="schedobs")
    try:
        done = _run_bounded({"metrics": metrics, "traces": release.wait}, 0.2, "shutdown")
    finally:
        release.set()
    ours = [r.getMessage() for r in caplog.records if r.name == "schedobs"]
    assert done is False
    assert len(ours) == 1 and "\n" not in ours[0], ours
    assert "did not finish within 0.2 s for traces" in ours[0]
    assert "metrics failed: Exception: MeterProvider.shutdown failed" in ours[0]
    assert "deadline already exceeded" in ours[0]
