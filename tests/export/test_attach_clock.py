"""Clock compensation for providers someone else built: attach_clock() and the
ClockCompensation wrappers, on the SDK's own providers with a real probe server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import NoOpTracerProvider

from schedobs.clock import ClockServer
from schedobs.export import (
    ClockCompensation,
    RewritingMetricExporter,
    RewritingSpanExporter,
    attach_clock,
)
from schedobs.export._sdk import span_exporter_slots


class _Spans(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


class _Metrics(MetricExporter):
    def export(self, metrics_data, timeout_millis=10_000, **kwargs):  # type: ignore[no-untyped-def]
        from opentelemetry.sdk.metrics.export import MetricExportResult

        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


@pytest.fixture
def clock() -> Iterator[ClockCompensation]:
    with ClockServer(port=0) as server:
        made = ClockCompensation.create(f"{server.address[0]}:{server.address[1]}", interval=0.2)
        try:
            yield made
        finally:
            made.close()


def _exporters(tracers: TracerProvider) -> list[object]:
    return [getattr(holder, name) for holder, name in span_exporter_slots(tracers)]


def test_every_exporter_is_wrapped_once_and_the_clock_metrics_join(
    clock: ClockCompensation,
) -> None:
    tracers = TracerProvider()
    tracers.add_span_processor(BatchSpanProcessor(_Spans()))
    tracers.add_span_processor(SimpleSpanProcessor(_Spans()))
    periodic = PeriodicExportingMetricReader(_Metrics(), export_interval_millis=3_600_000)
    memory = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[periodic, memory])
    try:
        assert attach_clock(clock, tracer_provider=tracers, meter_provider=meters) is clock
        attach_clock(clock, tracer_provider=tracers, meter_provider=meters)  # nothing twice
        wrapped = _exporters(tracers)
        assert len(wrapped) == 2
        assert all(isinstance(e, RewritingSpanExporter) for e in wrapped)
        assert all(not isinstance(e._inner, RewritingSpanExporter) for e in wrapped)  # type: ignore[attr-defined]
        assert isinstance(periodic._exporter, RewritingMetricExporter)
        assert not isinstance(periodic._exporter._inner, RewritingMetricExporter)
        names = [
            metric.name
            for rm in memory.get_metrics_data().resource_metrics  # type: ignore[union-attr]
            for sm in rm.scope_metrics
            for metric in sm.metrics
        ]
        assert names.count("clock.probes") == 1  # registered once, not per call
    finally:
        tracers.shutdown()
        meters.shutdown()


def test_providers_that_are_not_the_sdk_s_are_refused(clock: ClockCompensation) -> None:
    with pytest.raises(TypeError, match="TracerProvider is a NoOpTracerProvider"):
        attach_clock(clock, tracer_provider=NoOpTracerProvider(), meter_provider=MeterProvider())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MeterProvider is a NoOpMeterProvider"):
        attach_clock(clock, tracer_provider=TracerProvider(), meter_provider=NoOpMeterProvider())  # type: ignore[arg-type]


def test_providers_with_nothing_to_correct_are_refused_and_start_nothing() -> None:
    clock = ClockCompensation.create("127.0.0.1:9")
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with pytest.raises(ValueError, match="no span exporter and no periodic metric exporter"):
        attach_clock(clock, tracer_provider=TracerProvider(), meter_provider=meters)
    assert not clock.prober._thread.is_alive()
    meters.shutdown()


def test_wrapping_a_wrapped_exporter_is_refused(clock: ClockCompensation) -> None:
    spans = clock.wrap_span_exporter(_Spans())
    with pytest.raises(ValueError, match="already rewrites"):
        clock.wrap_span_exporter(spans)
    with pytest.raises(ValueError, match="already rewrites"):
        clock.wrap_metric_exporter(clock.wrap_metric_exporter(_Metrics()))


@pytest.mark.parametrize("max_adjust", [0, -1.0, True, "1"])
def test_a_bad_max_adjust_is_refused(max_adjust: object) -> None:
    with pytest.raises(ValueError, match="max_adjust must be"):
        ClockCompensation.create("127.0.0.1:9", max_adjust=max_adjust)  # type: ignore[arg-type]


def test_start_twice_is_one_start(clock: ClockCompensation) -> None:
    assert clock.start() is clock.start() is clock
