"""configure(): resource, endpoints, errors, globals, shutdown."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from schedobs.contract import Registry, SchedulerMetrics
from schedobs.export import configure


def test_resource_and_prometheus_only(registry: Registry) -> None:
    telemetry = configure(
        "svc",
        zone="eu-west-1a",
        resource_attributes={"deployment.environment": "test"},
        prometheus="127.0.0.1:0",
        registry=registry,
        set_global=False,
    )
    try:
        attrs = telemetry.resource.attributes
        assert attrs["service.name"] == "svc"
        assert attrs["cloud.availability_zone"] == "eu-west-1a"
        assert attrs["deployment.environment"] == "test"
        assert not telemetry.settings.otlp_enabled
        url = telemetry.prometheus_url
        assert url is not None and url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        SchedulerMetrics("p", registry=registry).reject("shutdown")
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        assert 'scheduler_rejected_tasks_total{error_type="shutdown"' in text
        assert 'cloud_availability_zone="eu-west-1a"' in text  # in target_info
    finally:
        assert telemetry.shutdown(timeout=5)
    assert telemetry.shutdown(timeout=5)  # idempotent


def test_provider_force_flush_does_not_duplicate_scraped_series(registry: Registry) -> None:
    telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
    try:
        SchedulerMetrics("dup", registry=registry).set_queue_length(1, queue="work")
        telemetry.meter_provider.force_flush()
        telemetry.force_flush()
        with urllib.request.urlopen(telemetry.prometheus_url or "", timeout=5) as resp:
            text = resp.read().decode()
        assert text.count("scheduler_queue_length{") == 1
    finally:
        telemetry.shutdown(timeout=5)


def test_prometheus_disabled(registry: Registry) -> None:
    telemetry = configure(prometheus=None, registry=registry, set_global=False)
    assert telemetry.prometheus_url is None and telemetry.prometheus_address is None
    assert telemetry.shutdown(timeout=5)


def test_port_in_use_is_a_clear_error_and_starts_nothing(registry: Registry) -> None:
    import threading

    threads = set(threading.enumerate())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(
            OSError, match=f"cannot serve Prometheus metrics on 127.0.0.1:{port}.*in use"
        ):
            configure(prometheus=f"127.0.0.1:{port}", registry=registry, set_global=False)
    assert set(threading.enumerate()) - threads == set()  # no reader, prober or server thread


def test_invalid_settings_fail_before_anything_starts(registry: Registry) -> None:
    with pytest.raises(ValueError, match="otlp_protocol"):
        configure(otlp_protocol="thrift", registry=registry, set_global=False)
    with pytest.raises(TypeError, match="clock must be a reference string"):
        configure(clock=object(), registry=registry, set_global=False)  # type: ignore[arg-type]


def test_global_providers_are_installed_once_per_process() -> None:
    # In a child process: the OpenTelemetry globals cannot be reset in this one.
    code = textwrap.dedent(
        """
        from opentelemetry import metrics, trace
        import schedobs
        t = schedobs.configure("g", prometheus=None)
        assert metrics.get_meter_provider() is t.meter_provider
        assert trace.get_tracer_provider() is t.tracer_provider
        try:
            schedobs.configure("g2", prometheus=None)
        except RuntimeError as exc:
            assert "set only once per process" in str(exc), exc
            print("refused")
        t.shutdown(timeout=5)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "refused"


def test_configure_takes_a_sampler_and_extra_span_processors(registry: Registry) -> None:
    """A service that samples, or enriches its spans, keeps doing so under configure()."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased

    memory = InMemorySpanExporter()
    telemetry = configure(
        prometheus=None, registry=registry, set_global=False,
        sampler=TraceIdRatioBased(1.0), span_processors=[SimpleSpanProcessor(memory)],
    )  # fmt: skip
    try:
        with telemetry.tracer_provider.get_tracer("t").start_as_current_span("kept"):
            pass
        assert [s.name for s in memory.get_finished_spans()] == ["kept"]
    finally:
        telemetry.shutdown(timeout=5)
    silent = configure(prometheus=None, registry=Registry(), set_global=False, sampler=ALWAYS_OFF)
    try:
        with silent.tracer_provider.get_tracer("t").start_as_current_span("dropped") as span:
            assert not span.get_span_context().trace_flags.sampled
    finally:
        silent.shutdown(timeout=5)
    with pytest.raises(TypeError, match="sampler must be an OpenTelemetry Sampler"):
        configure(prometheus=None, registry=Registry(), set_global=False, sampler="always_on")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="span_processors must hold SpanProcessor"):
        configure(prometheus=None, registry=Registry(), set_global=False, span_processors=[print])  # type: ignore[list-item]
