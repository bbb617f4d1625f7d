"""The OTEL_* exporter variables drive real exporters as the specification says."""

from __future__ import annotations

import logging
import re

import pytest

import schedobs
from schedobs.contract import Registry, SchedulerMetrics
from schedobs.testing import HttpOtlpReceiver

_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _run(registry: Registry) -> schedobs.Telemetry:
    telemetry = schedobs.configure("env", prometheus=None, set_global=False, registry=registry)
    SchedulerMetrics("s", registry=registry).reject("queue_full")
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("work"):
        pass
    telemetry.force_flush(timeout=10)
    return telemetry


def test_a_traces_only_backend_gets_traces_and_no_metric_export_is_attempted(
    env: pytest.MonkeyPatch, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with HttpOtlpReceiver() as receiver:
        env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.endpoint}/v1/traces")
        env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
        telemetry = _run(registry)
        try:
            assert telemetry.settings.metrics is None
            assert len(receiver.trace_requests) == 1
            assert receiver.metrics_requests == [] and receiver.unrouted == []
        finally:
            telemetry.shutdown(timeout=5)
    # No metric exporter was made, so nothing tried (and failed) to send metrics; the
    # log is process-wide, so only metric exports are looked for.
    tried = re.compile(r"export(ing)? metrics|metric export")
    assert not [r for r in caplog.records if tried.search(r.getMessage())]


def test_the_generic_endpoint_reaches_both_signal_paths_over_http(
    env: pytest.MonkeyPatch, registry: Registry
) -> None:
    with HttpOtlpReceiver() as receiver:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint + "/")
        env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        telemetry = _run(registry)
        try:
            assert receiver.trace_requests and receiver.metrics_requests
            assert receiver.unrouted == []
        finally:
            telemetry.shutdown(timeout=5)


def test_otel_traces_exporter_none_sends_metrics_only(
    env: pytest.MonkeyPatch, registry: Registry
) -> None:
    with HttpOtlpReceiver() as receiver:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        env.setenv("OTEL_TRACES_EXPORTER", "none")
        telemetry = _run(registry)
        try:
            assert receiver.metrics_requests and receiver.trace_requests == []
        finally:
            telemetry.shutdown(timeout=5)


def test_otel_sdk_disabled_serves_no_endpoint_and_sends_nothing(
    env: pytest.MonkeyPatch, registry: Registry
) -> None:
    """It used to leave the Prometheus endpoint serving."""
    with HttpOtlpReceiver() as receiver:
        env.setenv("OTEL_SDK_DISABLED", "true")
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        telemetry = schedobs.configure(
            "off", prometheus="127.0.0.1:0", set_global=False, registry=registry
        )
        try:
            SchedulerMetrics("s", registry=registry).reject("queue_full")
            assert telemetry.prometheus_address is None
            telemetry.force_flush(timeout=5)
            assert receiver.metrics_requests == [] and receiver.trace_requests == []
        finally:
            telemetry.shutdown(timeout=5)
