# mypy: disable-error-code="operator, index"
"""Timestamps corrected before export: one smooth shift per span, guardrails, metrics too."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schedobs.check import check_otlp_metrics
from schedobs.clock import ClockCorrector, ClockServer, OffsetEstimator
from schedobs.contract import Registry
from schedobs.export import ClockCompensation, configure
from schedobs.testing import GrpcOtlpReceiver, latest_points, wait_until


def _estimator(offset_ns: int, freq_ppm: float = 0.0) -> OffsetEstimator:
    """An estimator fed with exact samples of a given offset and drift."""
    est = OffsetEstimator()
    base = time.time_ns()
    for k in range(20):
        local = base + k * 1_000_000_000
        theta = offset_ns + freq_ppm * 1e-6 * (local - base)
        t1, t4 = local, local + 100_000
        t2 = round(t1 + theta + 50_000)
        est.add_sample(t1, t2, t2, t4)
    return est


def _spans():  # type: ignore[no-untyped-def]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        span.add_event("halfway")
        time.sleep(0.01)
    return exporter.get_finished_spans()


def test_spans_shift_as_one_smooth_correction() -> None:
    corrector = ClockCorrector(_estimator(25_000_000, freq_ppm=40.0))
    (original,) = _spans()
    (fixed,) = corrector.rewrite_spans([original])
    assert original.start_time is not None and original.end_time is not None
    assert fixed.start_time is not None and fixed.end_time is not None
    shift = fixed.start_time - original.start_time
    assert abs(shift - 25_000_000) < 2_000_000 * 40e-6 * 1e3 + 1_000  # offset at the start
    est = corrector.estimator.estimate(at_ns=original.start_time)
    assert est is not None
    assert abs(est.freq_ppm - 40.0) < 5.0
    duration = original.end_time - original.start_time
    new_duration = fixed.end_time - fixed.start_time
    assert abs(new_duration - duration * (1 + est.freq_ppm * 1e-6)) <= 1  # only a ppm factor
    assert fixed.events[0].timestamp - original.events[0].timestamp == pytest.approx(
        shift, abs=1_000
    )
    assert fixed.attributes is not None
    assert fixed.attributes["clock.offset_ns"] == shift
    assert 0 < fixed.attributes["clock.uncertainty_ns"] < 10_000
    assert fixed.context == original.context and fixed.name == original.name


def test_adjustments_are_capped() -> None:
    corrector = ClockCorrector(_estimator(5_000_000_000), max_adjust_ns=1_000_000_000)
    (original,) = _spans()
    (fixed,) = corrector.rewrite_spans([original])
    assert fixed.start_time - original.start_time == 1_000_000_000  # type: ignore[operator]
    assert fixed.attributes["clock.capped"] is True  # type: ignore[index]
    assert corrector.capped == 1


def test_no_estimate_means_no_change() -> None:
    corrector = ClockCorrector(OffsetEstimator())
    spans = _spans()
    assert list(corrector.rewrite_spans(spans)) == list(spans)


def test_metric_timestamps_are_corrected(registry: Registry) -> None:
    reader = InMemoryMetricReader()
    telemetry = configure(
        prometheus=None, registry=registry, metric_readers=[reader], set_global=False
    )
    try:
        from schedobs.contract import SchedulerMetrics

        SchedulerMetrics("m", registry=registry).reject("shutdown")
        data = reader.get_metrics_data()
        assert data is not None
        fixed = ClockCorrector(_estimator(7_000_000)).rewrite_metrics(data)
        before = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
        after = fixed.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
        assert abs(after.time_unix_nano - before.time_unix_nano - 7_000_000) < 1_000
        assert abs(after.start_time_unix_nano - before.start_time_unix_nano - 7_000_000) < 1_000
    finally:
        telemetry.shutdown(timeout=5)


def test_configure_with_a_reference_server_corrects_exported_spans(
    registry: Registry, grpc_receiver: GrpcOtlpReceiver
) -> None:
    skew = 40_000_000  # the reference runs 40 ms ahead of this host

    def reference_clock() -> int:
        return time.time_ns() + skew

    with ClockServer(port=0, clock_ns=reference_clock) as server:
        telemetry = configure(
            "clocked",
            otlp_endpoint=grpc_receiver.endpoint,
            export_interval=3600,
            prometheus=None,
            registry=registry,
            clock=ClockCompensation.create(
                f"{server.address[0]}:{server.address[1]}", interval=0.05
            ),
            set_global=False,
        )
        try:
            clock = telemetry.clock
            assert clock is not None
            wait_until(lambda: clock.prober.samples >= 6, what="six clock samples")
            before = time.time_ns()
            with telemetry.tracer_provider.get_tracer("t").start_as_current_span("rpc"):
                pass
            assert telemetry.force_flush(timeout=10)
            grpc_receiver.wait_for(lambda r: r.trace_requests and r.metrics_requests)
        finally:
            telemetry.shutdown(timeout=10)
    span = grpc_receiver.trace_requests[0].resource_spans[0].scope_spans[0].spans[0]
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert abs(attrs["clock.offset_ns"].int_value - skew) < 2_000_000
    assert abs(span.start_time_unix_nano - (before + skew)) < 50_000_000
    points = latest_points(grpc_receiver.metrics_requests)
    offsets = [p for (name, _), p in points.items() if name == "clock.offset"]
    assert offsets
    assert abs(offsets[0].value - skew) < 2_000_000
    report = check_otlp_metrics(grpc_receiver.metrics_requests[-1])
    assert report.ok, report.render_text()
    assert report.series.get("clock.offset") == 1


def test_clock_settings_are_validated(registry: Registry) -> None:
    with pytest.raises(ValueError, match="must look like"):
        configure(clock="nowhere", registry=registry, prometheus=None, set_global=False)
    with pytest.raises(TypeError, match="clock must be a reference string"):
        configure(clock=b"127.0.0.1:1", registry=registry, prometheus=None, set_global=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'clock_refrence'"):
        configure(clock_refrence="127.0.0.1:1", registry=registry, set_global=False)


def test_clock_takes_a_reference_a_compensation_or_a_rewriter(registry: Registry) -> None:
    """One ``clock=`` parameter: what each form starts, and who stops it."""
    with ClockServer(port=0) as server:
        reference = f"{server.address[0]}:{server.address[1]}"
        made = []
        for clock in (reference, ClockCompensation.create(reference, interval=0.05)):
            telemetry = configure(
                clock=clock, registry=registry, prometheus=None, otlp_endpoint=None,
                set_global=False,
            )  # fmt: skip
            assert telemetry.clock is not None
            assert telemetry.clock.prober.reference == server.address
            assert telemetry.clock.prober._thread.is_alive()  # started by configure()
            telemetry.shutdown(timeout=2)
            assert not telemetry.clock.prober._thread.is_alive()  # stopped by shutdown()
            made.append(telemetry.clock)
        assert made[1] is not made[0]
        assert made[0].prober.interval == 5.0  # a reference string: the defaults
        assert made[1].prober.interval == 0.05

    corrector = ClockCorrector(OffsetEstimator())
    telemetry = configure(clock=corrector, registry=registry, prometheus=None, set_global=False)
    assert telemetry.clock is None  # a rewriter alone: nothing to probe
    telemetry.shutdown(timeout=2)


def test_the_0_1_keywords_still_work_and_say_what_replaced_them(registry: Registry) -> None:
    with ClockServer(port=0) as server:
        reference = f"{server.address[0]}:{server.address[1]}"
        with pytest.warns(DeprecationWarning, match="clock="):
            telemetry = configure(
                clock_reference=reference, clock_interval=0.05, clock_max_adjust=2.0,
                registry=registry, prometheus=None, set_global=False,
            )  # fmt: skip
        try:
            assert telemetry.clock is not None
            assert telemetry.clock.prober.interval == 0.05
            assert telemetry.clock.corrector.max_adjust_ns == 2_000_000_000
        finally:
            telemetry.shutdown(timeout=2)
    with pytest.warns(DeprecationWarning, match="clock="), pytest.raises(ValueError, match="exclu"):
        configure(
            clock_reference="127.0.0.1:1",
            timestamp_rewriter=ClockCorrector(OffsetEstimator()),
            registry=registry,
            prometheus=None,
            set_global=False,
        )
    with pytest.raises(ValueError, match="give only clock="):
        configure(clock="127.0.0.1:1", clock_interval=1.0, registry=registry, set_global=False)
    # A probing setting without a reference did nothing in 0.1.0: now it says so.
    with (
        pytest.warns(DeprecationWarning, match="clock="),
        pytest.raises(ValueError, match=r"clock_interval=, clock_key= set how clock_reference="),
    ):
        configure(clock_key=b"k" * 20, clock_interval=1.0, registry=registry, set_global=False)
