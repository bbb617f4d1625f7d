"""A service run by the real ``opentelemetry-instrument`` command (opentelemetry-distro)
adds schedobs to the providers it configured: the contract reaches the OTLP receiver
through the service's own pipeline, once — no second MeterProvider, no second resource."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedobs.testing import GrpcOtlpReceiver

from .._chrony_server import ChronyServer

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent / "_instrumented_app.py"


def _command() -> str:
    command = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert command, "opentelemetry-instrument is missing (opentelemetry-distro, a dev extra)"
    return command


def _otel_env(receiver: GrpcOtlpReceiver, service: str) -> dict[str, str]:
    """What a deployment sets for ``opentelemetry-instrument``: OTLP for traces and metrics."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        "OTEL_SERVICE_NAME": service,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the application's force_flush exports
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }


def test_the_contract_leaves_by_the_pipeline_opentelemetry_instrument_built(
    grpc_receiver: GrpcOtlpReceiver,
) -> None:
    command = _command()
    env = _otel_env(grpc_receiver, "instrumented-service")
    result = subprocess.run(
        [command, sys.executable, str(APP)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "READERS 1 AGAIN 0" in result.stdout, result.stdout + result.stderr

    per_export = [
        [
            (rm.resource, metric)
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == "scheduler.schedule.latency"
        ]
        for request in grpc_receiver.metrics_requests
    ]
    # One pipeline: each export (the application's flush, the SDK's final one at exit)
    # carries the latency series once, under the service's resource.
    assert per_export and all(len(found) <= 1 for found in per_export), per_export
    exported = [found[0] for found in per_export if found]
    assert exported
    for resource, latency in exported:
        service = {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"]
        assert service == "instrumented-service"
        (point,) = latency.histogram.data_points
        assert point.count == 1  # cumulative: the one observation, in every export
    # The observation in the request span keeps the span's trace id, the one exported.
    (exemplar,) = point.exemplars
    grpc_receiver.wait_for(lambda r: r.trace_requests, timeout=10)
    traces = {
        span.trace_id
        for request in grpc_receiver.trace_requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }
    assert exemplar.trace_id in traces


CLOCK_APP = Path(__file__).resolve().parent / "_instrumented_clock_app.py"
SKEW_NS = 250_000_000


def _monotonic_origin() -> tuple[int, int]:
    """``time_ns() - monotonic_ns()`` and its spread, from the closest of 20 bracketed reads."""
    best: tuple[int, int] | None = None
    for _ in range(20):
        first = time.monotonic_ns()
        wall = time.time_ns()
        last = time.monotonic_ns()
        if best is None or last - first < best[1]:
            best = (wall - (first + last) // 2, last - first)
    assert best is not None
    return best


def test_attach_clock_corrects_what_the_commands_exporters_send(
    grpc_receiver: GrpcOtlpReceiver, chrony_server: ChronyServer
) -> None:
    """The service's wall clock is 250 ms ahead (libfaketime); chrony is the reference.
    ``attach_clock`` wraps the exporters ``opentelemetry-instrument`` built: the span
    leaves at the real time within its uncertainty, the data points too, and the clock
    metrics ride the same pipeline."""
    from schedobs.testing import faketime_env, find_libfaketime

    if find_libfaketime() is None:
        pytest.skip("libfaketime is installed by `make test`")
    command = _command()
    env = faketime_env(f"+{SKEW_NS / 1e9}", _otel_env(grpc_receiver, "clocked-service"))
    # The real-time origin of the shared monotonic clock, read in this process
    # (unskewed): maps the app's monotonic readings to the true wall time.
    origin, spread = _monotonic_origin()
    result = subprocess.run(
        [command, sys.executable, str(CLOCK_APP), f"ntp://{chrony_server.address}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"START before=(\d+) after=(\d+) wall=(\d+) sigma=(\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    before, after, wall, sigma = map(int, found.groups())
    # The true time of the span's start (and of the skewed reading) lies in [earliest, latest].
    earliest, latest = origin + before - spread, origin + after + spread
    assert earliest - 1_000_000 <= wall - SKEW_NS <= latest + 1_000_000  # the skew is real

    grpc_receiver.wait_for(lambda r: r.trace_requests, timeout=10)
    (span,) = [
        span
        for request in grpc_receiver.trace_requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
        if span.name == "request"
    ]
    # Corrected once: within 3 sigma of when it started (not 250 ms off, nor 500).
    start = span.start_time_unix_nano
    assert earliest - 3 * sigma <= start <= latest + 3 * sigma, (start - earliest, latest - start)

    metrics_seen = [
        metric
        for request in grpc_receiver.metrics_requests
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    ]
    offsets = [m.gauge.data_points[0].as_int for m in metrics_seen if m.name == "clock.offset"]
    assert offsets and abs(abs(offsets[0]) - SKEW_NS) < 5_000_000
    # The data points of the application's flush are stamped when it collected them,
    # right after it read FLUSH: at the true time, not 250 ms ahead of it.
    (flushed,) = re.findall(r"FLUSH mono=(\d+)", result.stdout)
    first = next(m for m in metrics_seen if m.name == "scheduler.schedule.latency")
    stamp = first.histogram.data_points[0].time_unix_nano
    assert -3 * sigma - spread <= stamp - (origin + int(flushed)) < 3 * sigma + 100_000_000
