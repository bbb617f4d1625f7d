"""Every expression of the dashboard (operations/grafana/schedobs-dashboard.json) returns
data from the real Prometheus scraping a workload that has every panel's series: a
runtime serving tenants, rejections, and clock compensation against a reference."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from schedobs.clock import ClockServer
from schedobs.export import ClockCompensation, configure
from schedobs.runtime import RejectedError, Runtime
from schedobs.tenancy import Tenant, TenantScheduler

from .._prometheus_server import PrometheusServer, poll

pytestmark = pytest.mark.integration

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "operations" / "grafana" / "schedobs-dashboard.json"
)


def test_every_dashboard_expression_returns_data(prometheus_server: PrometheusServer) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        (panel["title"], target["expr"].replace("$scheduler", ".+"))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    variable = dashboard["templating"]["list"][0]["query"]  # label_values(metric, label)
    metric, _, label = variable.removeprefix("label_values(").removesuffix(")").partition(", ")
    assert len(expressions) >= 8
    with ClockServer(port=0) as clock:
        telemetry = configure(
            "dashboard", prometheus="127.0.0.1:0", set_global=False,
            clock=ClockCompensation.create(f"{clock.address[0]}:{clock.address[1]}",
                                           interval=0.05),
        )  # fmt: skip
        try:
            host, port = telemetry.prometheus_address or ("", 0)
            prometheus_server.scrape(f"{host}:{port}")
            with Runtime(procs=2, name="dash", instrument=True, registry=telemetry.registry) as rt:
                ts = TenantScheduler(
                    rt,
                    [Tenant("gold", max_running=2), Tenant("bronze", max_running=1, max_queued=5)],
                    registry=telemetry.registry,
                )
                deadline = time.monotonic() + 3.0  # rate() over [1m] needs two scrapes or more
                while time.monotonic() < deadline:
                    for tenant in ("gold", "bronze", "bronze", "bronze"):
                        with contextlib.suppress(RejectedError):  # bronze overflows: refusals
                            ts.submit(tenant, time.sleep, 0.001)
                    time.sleep(0.005)
                ts.shutdown(wait=True)
                for title, expr in expressions:
                    result = poll(
                        lambda e=expr: prometheus_server.query(e) or None, 20.0, f"{title}: {expr}"
                    )
                    assert result, (title, expr)
                names = poll(
                    lambda: {r["metric"][label] for r in prometheus_server.query(metric)} or None,
                    10.0,
                    "the dashboard's scheduler variable",
                )
                assert "dash" in names
        finally:
            telemetry.shutdown(timeout=5)
