"""One process, two real backends: the same PromQL gives the same answers.

A runtime workload and the shared deterministic workload are exported over
OTLP/HTTP to VictoriaMetrics (Debian's 1.112, OTLP ingestion with Prometheus
naming) while the real Prometheus server scrapes the process's endpoint.
Neither backend is ours; "identical on both paths" is judged by their answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest

from schedobs.contract import Registry
from schedobs.export import configure
from schedobs.runtime import Runtime

from ._prometheus_server import PrometheusServer, poll
from ._victoria_metrics import VictoriaMetrics
from ._workload import REJECTIONS, record

pytestmark = pytest.mark.integration

NAME = "two-backends"
QUERIES = {
    "rejected by reason": (
        f'sum by (error_type) (scheduler_rejected_tasks_total{{scheduler_name="{NAME}"}})'
    ),
    "latency p90": (
        "histogram_quantile(0.9, sum by (le) "
        f'(scheduler_schedule_latency_milliseconds_bucket{{scheduler_name="{NAME}"}}))'
    ),
    "latency p50 by queue": (
        "histogram_quantile(0.5, sum by (le, scheduler_queue) "
        f'(scheduler_schedule_latency_milliseconds_bucket{{scheduler_name="{NAME}"}}))'
    ),
    "latency count": (
        f'sum(scheduler_schedule_latency_milliseconds_count{{scheduler_name="{NAME}"}})'
    ),
    "queue length": f'sum by (scheduler_queue) (scheduler_queue_length{{scheduler_name="{NAME}"}})',
    "runtime latency count": (
        'sum(scheduler_schedule_latency_milliseconds_count{scheduler_name="two-backends-rt"})'
    ),
}


def _answers(query: Callable[[str], list[dict[str, object]]], promql: str) -> dict[str, float]:
    """A query's result as {labels: value}, without the labels each backend adds itself."""
    out = {}
    for item in query(promql):
        metric = item["metric"]
        assert isinstance(metric, dict)
        key = ",".join(f"{k}={v}" for k, v in sorted(metric.items()))
        value = item["value"]
        assert isinstance(value, list)
        out[key] = float(value[1])
    return out


def test_prometheus_and_victoriametrics_answer_the_same_promql(
    registry: Registry, prometheus_server: PrometheusServer, victoria_metrics: VictoriaMetrics
) -> None:
    telemetry = configure(
        "two-backends",
        prometheus="127.0.0.1:0",
        otlp_endpoint=f"{victoria_metrics.url}/opentelemetry",  # + /v1/metrics over HTTP
        otlp_protocol="http/protobuf",
        otlp_traces=False,
        export_interval=3600,  # exports when flushed: both backends see one final state
        registry=registry,
        set_global=False,
    )
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        prometheus_server.scrape(f"{host}:{port}")
        record(registry, name=NAME)
        with Runtime(procs=2, name="two-backends-rt", instrument=True, registry=registry) as rt:
            futures = [rt.submit(math.sqrt, i) for i in range(2_000)]
            for f in futures:
                f.result(timeout=30)
        assert telemetry.force_flush(timeout=10)
        # Prometheus has the final state once a scrape after the workload landed.
        refused = sum(REJECTIONS.values())
        prometheus_server.wait_value(
            f'sum(scheduler_rejected_tasks_total{{scheduler_name="{NAME}"}})', refused
        )
        # A scrape that began after the workload ended: the runtime's last counts too
        # (sleeping past two scrapes was not enough on a busy machine's schedule).
        prometheus_server.wait_scrape_after(f"{host}:{port}", time.time())
        for label, promql in QUERIES.items():
            expected = _answers(prometheus_server.query, promql)
            assert expected, f"{label}: Prometheus has no answer"
            got = poll(
                lambda q=promql, e=expected: (
                    a if (a := _answers(victoria_metrics.query, q)) == e else None
                ),
                20.0,
                f"{label} from VictoriaMetrics == {expected} "
                f"(last: {_answers(victoria_metrics.query, promql)})",
            )
            assert got == expected
    finally:
        telemetry.shutdown(timeout=5)
