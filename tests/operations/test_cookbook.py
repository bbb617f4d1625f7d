"""Every query of the operations cookbook is valid PromQL for the real Prometheus, and the
ones over the core contract return data once a workload has been scraped."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from schedobs.contract import Registry
from schedobs.export import configure

from .._prometheus_server import PrometheusServer, poll
from .._workload import record

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "operations" / "README.md"


def cookbook() -> list[str]:
    block = re.search(r"## PromQL cookbook\n\n```promql\n(.*?)```", README.read_text(), re.S)
    assert block, "operations/README.md has no cookbook"
    queries: list[str] = []
    for line in block.group(1).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("  ") and queries:
            queries[-1] += " " + line.strip()  # a continuation line
        else:
            queries.append(line.strip())
    return queries


def test_the_cookbook_is_valid_promql_and_answers_on_a_real_workload(
    registry: Registry, prometheus_server: PrometheusServer
) -> None:
    queries = cookbook()
    assert len(queries) >= 10
    record(registry, name="cookbook")
    telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        prometheus_server.scrape(f"{host}:{port}")
        # rate() needs two scrapes (250 ms apart) of the workload's series.
        poll(
            lambda: (
                prometheus_server.query('scheduler_queue_length{scheduler_name="cookbook"}') or None
            ),
            20.0,
            "the workload scraped",
        )
        prometheus_server.wait_scrape_after(f"{host}:{port}", time.time())  # the second
        for query in queries:
            prometheus_server.query(query)  # asserts status "success": it parses and runs
        for query in queries[:3]:  # the latency and share queries over the core contract
            assert prometheus_server.query(query.replace("[5m]", "[1m]")), query
    finally:
        telemetry.shutdown(timeout=5)
