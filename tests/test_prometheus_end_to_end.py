"""The real Prometheus server scrapes configure()'s endpoint; values match what was recorded,
and match what the OTLP path delivered from the same process."""

from __future__ import annotations

import math

import pytest

from schedobs.check import check_prometheus_endpoint
from schedobs.contract import LATENCY_BOUNDARIES_MS, Registry
from schedobs.export import configure
from schedobs.testing import GrpcOtlpReceiver, latest_points

from ._prometheus_server import PrometheusServer
from ._workload import LATENCIES, QUEUES, REJECTIONS, record

pytestmark = pytest.mark.integration

LAT = "scheduler_schedule_latency_milliseconds"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def test_prometheus_server_sees_exact_contract_metrics(
    registry: Registry, prometheus_server: PrometheusServer, grpc_receiver: GrpcOtlpReceiver
) -> None:
    expected = record(registry, name="prom-e2e")
    telemetry = configure(
        "prom-e2e-service",
        prometheus="127.0.0.1:0",
        otlp_endpoint=grpc_receiver.endpoint,
        export_interval=3600,
        registry=registry,
        set_global=False,
    )
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        assert host == "127.0.0.1"
        prometheus_server.scrape(f"{host}:{port}")
        sel = 'scheduler_name="prom-e2e",scheduler_kind="custom"'

        total = sum(len(v) for v in LATENCIES.values())
        prometheus_server.wait_value(f"sum({LAT}_count{{{sel}}})", total)

        for (queue, tenant), values in LATENCIES.items():
            series = f'{sel},scheduler_queue="{queue}",scheduler_tenant="{tenant}"'
            assert prometheus_server.value(f"{LAT}_count{{{series}}}") == len(values)
            assert prometheus_server.value(f"{LAT}_sum{{{series}}}") == pytest.approx(
                expected.sums[(queue, tenant)]
            )
            buckets = prometheus_server.query(f"{LAT}_bucket{{{series}}}")
            got = {b["metric"]["le"]: float(b["value"][1]) for b in buckets}
            bounds = [*LATENCY_BOUNDARIES_MS, math.inf]
            want = dict(
                zip((_le(b) for b in bounds), expected.cumulative((queue, tenant)), strict=False)
            )
            assert got == want

        for (reason, tenant), n in REJECTIONS.items():
            series = f'{sel},error_type="{reason}"'
            series += f',scheduler_tenant="{tenant}"' if tenant else ',scheduler_tenant=""'
            assert prometheus_server.value(f"scheduler_rejected_tasks_total{{{series}}}") == n
        for queue, n in QUEUES.items():
            assert (
                prometheus_server.value(
                    f'scheduler_queue_length{{{sel},scheduler_queue="{queue}"}}'
                )
                == n
            )

        # The server's own view of the metadata (it negotiates OpenMetrics, whose
        # counter families drop `_total` and which carries the unit).
        meta = {
            name: (m[0]["type"], m[0]["unit"])
            for name in (LAT, "scheduler_queue_length", "scheduler_rejected_tasks")
            if (m := prometheus_server.metadata(name))
        }
        assert meta == {
            LAT: ("histogram", "milliseconds"),
            "scheduler_queue_length": ("gauge", ""),
            "scheduler_rejected_tasks": ("counter", ""),
        }

        # The same process's OTLP output carries identical values.
        assert telemetry.force_flush(timeout=10)
        otlp = latest_points(grpc_receiver.metrics_requests)
        for (name, attrs), point in otlp.items():
            labels = ",".join(f'{k.replace(".", "_")}="{v}"' for k, v in sorted(attrs))
            if name == "scheduler.schedule.latency":
                assert prometheus_server.value(f"{LAT}_count{{{labels}}}") == point.value
                assert prometheus_server.value(f"{LAT}_sum{{{labels}}}") == pytest.approx(point.sum)
            elif name == "scheduler.rejected_tasks":
                assert (
                    prometheus_server.value(f"scheduler_rejected_tasks_total{{{labels}}}")
                    == point.value
                )
            elif name == "scheduler.queue.length":
                assert prometheus_server.value(f"scheduler_queue_length{{{labels}}}") == point.value

        report = check_prometheus_endpoint(telemetry.prometheus_url or "", strict=True)
        assert report.ok, report.render_text()
        assert {k: v for k, v in report.series.items() if k.startswith("scheduler.")} == {
            "scheduler.queue.length": 2,
            "scheduler.schedule.latency": 2,
            "scheduler.rejected_tasks": 3,
        }
    finally:
        assert telemetry.shutdown(timeout=10)


def test_counts_keep_rising_between_scrapes(
    registry: Registry, prometheus_server: PrometheusServer
) -> None:
    record(registry, name="rising")
    telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        prometheus_server.scrape(f"{host}:{port}")
        q = 'sum(scheduler_rejected_tasks_total{scheduler_name="rising"})'
        prometheus_server.wait_value(q, sum(REJECTIONS.values()))
        m = registry._members["rising"][0]
        for _ in range(1000):
            m.reject("queue_full")  # type: ignore[attr-defined]
        prometheus_server.wait_value(q, sum(REJECTIONS.values()) + 1000)
    finally:
        telemetry.shutdown(timeout=10)
