"""schedobs → the real Collector → real backends gives the answers of the direct path.

The process exports over OTLP (gRPC, then HTTP) to the Collector running
``collector-config/otel-collector.yaml`` as it is (only its ports moved); the
real Prometheus scrapes both the Collector's Prometheus exporter and the
process's own endpoint, and the same PromQL must give the same answers on both
and the values the workload knows it recorded.  The remote-write configuration
writes into VictoriaMetrics, judged the same way.  Spans go through the same
Collector to an OTLP sink; exemplars must lead to them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from schedobs.check import check_prometheus_endpoint
from schedobs.contract import Registry, disable_exemplars
from schedobs.export import Telemetry, configure
from schedobs.runtime import Runtime
from schedobs.testing import GrpcOtlpReceiver

from .._collector import ROOT, Collector, otlp_ports
from .._prometheus_server import PrometheusServer, free_port, poll
from .._victoria_metrics import VictoriaMetrics
from .._workload import LATENCIES, QUEUES, REJECTIONS, record

pytestmark = pytest.mark.integration

SCRAPE_CONFIG = ROOT / "collector-config" / "otel-collector.yaml"
REMOTE_WRITE_CONFIG = ROOT / "collector-config" / "otel-collector-remote-write.yaml"

# {sel} is the series selector: a scheduler name and, in Prometheus, the target.
QUERIES = {
    "rejected by reason": "sum by (error_type) (scheduler_rejected_tasks_total{{{sel}}})",
    "latency count": "sum(scheduler_schedule_latency_milliseconds_count{{{sel}}})",
    "latency count by queue": (
        "sum by (scheduler_queue) (scheduler_schedule_latency_milliseconds_count{{{sel}}})"
    ),
    "latency p90": (
        "histogram_quantile(0.9, sum by (le) "
        "(scheduler_schedule_latency_milliseconds_bucket{{{sel}}}))"
    ),
    "latency p50 by queue": (
        "histogram_quantile(0.5, sum by (le, scheduler_queue) "
        "(scheduler_schedule_latency_milliseconds_bucket{{{sel}}}))"
    ),
    "queue length by queue": "sum by (scheduler_queue) (scheduler_queue_length{{{sel}}})",
}


def answers(query: Callable[[str], list[dict[str, Any]]], promql: str) -> dict[str, float]:
    """A query's result as {labels: value}."""
    out = {}
    for item in query(promql):
        key = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()))
        out[key] = float(item["value"][1])
    return out


Query = Callable[[str], list[dict[str, Any]]]


def assert_same_answers(
    direct: tuple[Query, str],
    other: tuple[Query, str],
    *,
    expected: dict[str, dict[str, float]] | None = None,
    path: str,
    context: Callable[[], str] = str,
    timeout: float = 30.0,
) -> None:
    """Every query in :data:`QUERIES` answers the same over ``other`` as over ``direct``
    (each a backend's query function and a series selector), and, for the queries in
    ``expected``, what the workload recorded.  ``context()`` is added to a failure."""
    for label, template in QUERIES.items():
        via_direct, via_other = (template.format(sel=sel) for sel in (direct[1], other[1]))
        want = poll(
            lambda q=via_direct: a if (a := answers(direct[0], q)) else None,
            20.0,
            f"{label}: direct scrape",
        )
        if expected is not None and label in expected:
            assert want == expected[label], label
        got = poll(
            lambda q=via_other, w=want: a if (a := answers(other[0], q)) == w else None,
            timeout,
            f"{label} {path} == {want} (last: {answers(other[0], via_other)}; {context()})",
        )
        assert got == want


def known(name: str) -> dict[str, dict[str, float]]:
    """What the workload recorded, in the shape of the queries' answers."""
    return {
        "rejected by reason": {
            f"error_type={reason}": float(sum(n for (r, _), n in REJECTIONS.items() if r == reason))
            for reason, _ in REJECTIONS
        },
        "latency count": {"": float(sum(len(v) for v in LATENCIES.values()))},
        "latency count by queue": {
            f"scheduler_queue={queue}": float(len(values))
            for (queue, _), values in LATENCIES.items()
        },
        "queue length by queue": {f"scheduler_queue={q}": float(n) for q, n in QUEUES.items()},
    }


@pytest.fixture
def trace_sink() -> Iterator[GrpcOtlpReceiver]:
    with GrpcOtlpReceiver() as sink:
        yield sink


def _configure(name: str, endpoint: str, protocol: str, registry: Registry) -> Telemetry:
    return configure(
        name,
        prometheus="127.0.0.1:0",
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,
        export_interval=3600,  # exported when flushed: both paths see one final state
        registry=registry,
        set_global=False,
    )


def _spans(sink: GrpcOtlpReceiver) -> list[Any]:
    return [
        span
        for request in sink.trace_requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_through_the_collector_prometheus_answers_as_on_the_direct_path(
    protocol: str,
    registry: Registry,
    exemplar_prometheus: PrometheusServer,
    trace_sink: GrpcOtlpReceiver,
    start_collector: Callable[..., Collector],
) -> None:
    ports = otlp_ports()
    exporter = f"127.0.0.1:{free_port()}"
    collector = start_collector(
        SCRAPE_CONFIG,
        {
            **ports,
            "exporters::prometheus::endpoint": exporter,
            "exporters::otlp_grpc/traces::endpoint": trace_sink.endpoint.removeprefix("http://"),
        },
    )
    name = "via-collector-" + protocol.split("/")[0]
    kind = "grpc" if protocol == "grpc" else "http"
    receiver = ports[f"receivers::otlp::protocols::{kind}::endpoint"]
    telemetry = _configure(name, f"http://{receiver}", protocol, registry)
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        direct = f"{host}:{port}"
        exemplar_prometheus.scrape(direct, exporter)
        start = time.time() - 5
        record(registry, name=name)
        tracer = telemetry.tracer_provider.get_tracer("collector-test")
        with Runtime(procs=2, name=name + "-rt", instrument=True, registry=registry) as rt:
            for _ in range(5):  # traced requests, each a task whose latency is an exemplar
                with tracer.start_as_current_span("request"):
                    rt.submit(math.sqrt, 2.0).result(timeout=10)
            assert telemetry.force_flush(timeout=10)

        assert_same_answers(
            (exemplar_prometheus.query, f'scheduler_name="{name}",instance="{direct}"'),
            (exemplar_prometheus.query, f'scheduler_name="{name}",instance="{exporter}"'),
            expected=known(name),
            path="via the collector",
            context=lambda: f"collector log: {collector.log()[-1500:]}",
        )

        # The Collector's endpoint passes the contract check (its resource labels are the
        # producer's, declared in target_info).
        report = check_prometheus_endpoint(f"http://{exporter}/metrics")
        assert report.ok, report.render_text()
        assert report.series["scheduler.schedule.latency"] >= 3

        # Exemplars survive the Collector: trace ids of spans that went through it.
        query = (
            f'scheduler_schedule_latency_milliseconds_bucket{{scheduler_name="{name}-rt",'
            f'instance="{exporter}"}}'
        )

        def stored() -> set[str] | None:
            found = {
                e["labels"]["trace_id"]
                for series in exemplar_prometheus.query_exemplars(query, start, time.time() + 5)
                for e in series["exemplars"]
            }
            return found or None

        trace_ids = poll(stored, 30.0, "exemplars from the collector's endpoint in Prometheus")
        exported = poll(
            lambda: (
                ids if len(ids := {s.trace_id.hex() for s in _spans(trace_sink)}) >= 5 else None
            ),
            30.0,
            "the five request spans at the far end of the collector",
        )
        assert trace_ids <= exported
    finally:
        telemetry.shutdown(timeout=5)
        disable_exemplars()


def test_remote_write_through_the_collector_answers_as_the_direct_scrape(
    registry: Registry,
    prometheus_server: PrometheusServer,
    victoria_metrics: VictoriaMetrics,
    trace_sink: GrpcOtlpReceiver,
    start_collector: Callable[..., Collector],
) -> None:
    ports = otlp_ports()
    collector = start_collector(
        REMOTE_WRITE_CONFIG,
        {
            **ports,
            "exporters::prometheusremotewrite::endpoint": f"{victoria_metrics.url}/api/v1/write",
            "exporters::otlp_grpc/traces::endpoint": trace_sink.endpoint.removeprefix("http://"),
        },
    )
    name = "via-remote-write"
    receiver = ports["receivers::otlp::protocols::grpc::endpoint"]
    telemetry = _configure(name, f"http://{receiver}", "grpc", registry)
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        direct = f"{host}:{port}"
        prometheus_server.scrape(direct)
        record(registry, name=name)
        assert telemetry.force_flush(timeout=10)
        assert_same_answers(
            (prometheus_server.query, f'scheduler_name="{name}",instance="{direct}"'),
            (victoria_metrics.query, f'scheduler_name="{name}"'),
            expected=known(name),
            path="in VictoriaMetrics",
            context=lambda: f"collector log: {collector.log()[-1500:]}",
        )
    finally:
        telemetry.shutdown(timeout=5)
