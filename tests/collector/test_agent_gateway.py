"""The scale-out shape: an agent Collector per host forwarding to a gateway Collector.

Two Collector processes run ``collector-config/agent.yaml`` and
``collector-config/gateway.yaml`` as they are (ports moved).  The contract's
answers at the gateway's Prometheus endpoint are the direct path's, and a
gateway outage of a few seconds costs nothing: the agent's sending queue holds
the data and retries, so the process neither fails an export nor loses a span.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from schedobs.contract import Registry, SchedulerMetrics
from schedobs.export import configure
from schedobs.testing import GrpcOtlpReceiver

from .._collector import ROOT, Collector, otlp_ports
from .._prometheus_server import PrometheusServer, free_port, poll
from .test_pipelines import assert_same_answers

pytestmark = pytest.mark.integration

NAME = "agent-gateway"


def test_agent_to_gateway_answers_as_the_direct_path_and_rides_out_a_gateway_outage(
    registry: Registry,
    prometheus_server: PrometheusServer,
    grpc_receiver: GrpcOtlpReceiver,
    start_collector: Callable[..., Collector],
) -> None:
    sink = grpc_receiver
    gateway_otlp = f"127.0.0.1:{free_port()}"
    exporter = f"127.0.0.1:{free_port()}"
    gateway = start_collector(
        ROOT / "collector-config" / "gateway.yaml",
        {
            "receivers::otlp::protocols::grpc::endpoint": gateway_otlp,
            "exporters::prometheus::endpoint": exporter,
            "exporters::otlp_grpc/traces::endpoint": sink.endpoint.removeprefix("http://"),
            "processors::batch::timeout": "200ms",
        },
        name="gateway",
    )
    agent_ports = otlp_ports()
    start_collector(
        ROOT / "collector-config" / "agent.yaml",
        {**agent_ports, "exporters::otlp_grpc/gateway::endpoint": gateway_otlp},
        name="agent",
    )
    telemetry = configure(
        NAME,
        prometheus="127.0.0.1:0",
        otlp_endpoint="http://" + agent_ports["receivers::otlp::protocols::grpc::endpoint"],
        export_interval=1.0,
        registry=registry,
        set_global=False,
    )
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        direct = f"{host}:{port}"
        prometheus_server.scrape(direct, exporter)
        metrics = SchedulerMetrics(NAME, registry=registry)
        tracer = telemetry.tracer_provider.get_tracer("agent-gateway")
        created = 0

        def work(n: int) -> None:
            nonlocal created
            for i in range(n):
                with tracer.start_as_current_span("task"):
                    metrics.latency(queue="global" if i % 3 else "local").observe(0.05 * i)
                    if i % 7 == 0:
                        metrics.reject("queue_full")
                metrics.set_queue_length(i % 11, queue="global")
                created += 1
                time.sleep(0.01)

        work(100)
        gateway.stop()
        work(200)  # two seconds and more with the gateway away
        time.sleep(2.0)
        gateway.start()
        work(100)
        assert telemetry.force_flush(timeout=20)

        spans = poll(
            lambda: (
                n
                if (
                    n := len(
                        {
                            s.span_id
                            for r in list(sink.trace_requests)
                            for rs in r.resource_spans
                            for ss in rs.scope_spans
                            for s in ss.spans
                        }
                    )
                )
                >= created
                else None
            ),
            40.0,
            f"{created} spans through agent and gateway",
        )
        assert spans == created
        assert telemetry.accounting is not None
        assert telemetry.accounting.dropped == {"queue_full": 0, "export_failed": 0}

        assert_same_answers(
            (prometheus_server.query, f'scheduler_name="{NAME}",instance="{direct}"'),
            (prometheus_server.query, f'scheduler_name="{NAME}",instance="{exporter}"'),
            path="via agent and gateway",
            timeout=40.0,
        )
        assert prometheus_server.value(
            f'sum(schedobs_metric_exports_failed_total{{instance="{direct}"}})'
        ) in (None, 0.0)
    finally:
        telemetry.shutdown(timeout=5)
