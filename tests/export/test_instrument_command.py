"""A service run by the real ``opentelemetry-instrument`` command (opentelemetry-distro)
adds schedobs to the providers it configured: the contract reaches the OTLP receiver
through the service's own pipeline, once — no second MeterProvider, no second resource."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from schedobs.testing import GrpcOtlpReceiver

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent / "_instrumented_app.py"


def test_the_contract_leaves_by_the_pipeline_opentelemetry_instrument_built(
    grpc_receiver: GrpcOtlpReceiver,
) -> None:
    command = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert command, "opentelemetry-instrument is missing (opentelemetry-distro, a dev extra)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        "OTEL_SERVICE_NAME": "instrumented-service",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the application's force_flush exports
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
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
