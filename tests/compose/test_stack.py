"""``make test-compose``: the example stack comes up on images built here and works.

Checked from the host, through the ports the stack publishes on 127.0.0.1: every
scrape target up; ``schedobs check`` passes on the Collector's endpoint; each
contract series reaches Prometheus by one path (no double counting); exemplars
reach Prometheus and lead to traces that are in Phoenix; the cross-zone
services' spans in Phoenix nest without a causality violation; the Celery
example reports; every expression of the dashboard returns data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from typing import Any

import pytest

from ._stack import COMPOSE_DIR, Stack

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]

TARGETS = {"collector:8889", "collector:8888", "celery-zone-a:9465", "celery-zone-b:9466"}


def _targets_up(stack: Stack) -> dict[str, str] | None:
    body = stack.get(stack.prometheus + "/api/v1/targets")
    health = {t["labels"]["instance"]: t["health"] for t in body["data"]["activeTargets"]}
    return health if set(health) == TARGETS and set(health.values()) == {"up"} else None


def test_every_scrape_target_is_up(stack: Stack) -> None:
    health = stack.wait(lambda: _targets_up(stack), 240, "every Prometheus target up")
    assert set(health) == TARGETS
    state = stack.state()
    for service in ("collector", "prometheus", "phoenix", "victoria-metrics", "redis", "demo",
                    "clock", "celery-zone-a", "celery-zone-b", "celery-producer"):  # fmt: skip
        assert state[service].startswith("running"), (service, state[service])
    # The two zone services make their 20 calls and exit cleanly.
    stack.wait(
        lambda: all("Exited (0)" in stack.state()[s] for s in ("service-a", "service-b")) or None,
        120,
        "service-a and service-b done",
    )
    assert "grafana" not in state  # an optional profile, not started by default


def test_schedobs_check_passes_on_the_collector_s_endpoint(stack: Stack) -> None:
    stack.wait(
        lambda: (
            stack.query('scheduler_queue_length{job="collector",scheduler_name="demo"}') or None
        ),
        180,
        "the demo's queue length through the collector",
    )
    result = subprocess.run(
        [sys.executable, "-m", "schedobs", "check", stack.collector_metrics, "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["violations"] == []
    assert report["series"]["scheduler.schedule.latency"] > 0


@pytest.mark.parametrize(
    "metric",
    ["scheduler_schedule_latency_milliseconds_count", "scheduler_rejected_tasks_total",
     "scheduler_queue_length"],
)  # fmt: skip
def test_each_series_reaches_prometheus_by_one_path(stack: Stack, metric: str) -> None:
    """The demo sends OTLP only and is not scraped; the Celery workers are scraped and
    send no OTLP: every scheduler is reported by exactly one scrape job."""
    stack.wait(lambda: stack.query(metric) or None, 180, f"{metric} in Prometheus")
    per_scheduler = stack.query(f"count by (scheduler_name) (count by (scheduler_name, job) "
                                f"({metric}))")  # fmt: skip
    names = {item["metric"]["scheduler_name"] for item in per_scheduler}
    assert "demo" in names and (metric == "scheduler_rejected_tasks_total" or "celery" in names)
    for item in per_scheduler:
        assert item["value"][1] == "1", item["metric"]


def test_exemplars_reach_prometheus_and_lead_to_traces_in_phoenix(stack: Stack) -> None:
    query = 'scheduler_schedule_latency_milliseconds_bucket{scheduler_name="e2e-server"}'

    def exemplar_traces() -> set[str] | None:
        now = time.time()
        body = stack.get(
            stack.prometheus
            + "/api/v1/query_exemplars?"
            + urllib.parse.urlencode({"query": query, "start": now - 900, "end": now + 60})
        )
        found = {e["labels"]["trace_id"] for s in body["data"] for e in s["exemplars"]}
        return found or None

    traces = stack.wait(exemplar_traces, 180, "exemplars of e2e-server's latency")
    in_phoenix = {s["trace_id"] for s in stack.spans()}
    assert traces <= in_phoenix, traces - in_phoenix


def test_cross_zone_spans_in_phoenix_nest_without_a_causality_violation(stack: Stack) -> None:
    def pair() -> tuple[list[Any], dict[str, Any]] | None:
        spans = stack.spans()
        calls = {s["span_id"]: s for s in spans if s["name"] == "call"}
        handles = [s for s in spans if s["name"] == "handle"]
        return (handles, calls) if len(calls) >= 20 and len(handles) >= 20 else None

    handles, calls = stack.wait(pair, 180, "20 client calls and 20 server spans in Phoenix")
    violations = []
    for child in handles:
        parent = calls[child["parent_span_id"]]
        # Phoenix keeps microseconds: compare at that resolution.
        if not (
            parent["start_time_unix_nano"] // 1000 <= child["start_time_unix_nano"] // 1000
            and child["end_time_unix_nano"] // 1000 <= parent["end_time_unix_nano"] // 1000 + 1
        ):
            violations.append((parent, child))
    assert violations == [], violations[:2]


def test_the_celery_example_reports_through_prometheus(stack: Stack) -> None:
    def started() -> float | None:
        result = stack.query(
            'sum(scheduler_schedule_latency_milliseconds_count{job="celery",scheduler_name="celery"})'
        )
        return float(result[0]["value"][1]) if result and float(result[0]["value"][1]) > 0 else None

    assert stack.wait(started, 240, "Celery tasks started") > 0
    queues = stack.query('scheduler_queue_length{job="celery",scheduler_queue="reserved"}')
    assert {q["metric"]["messaging_destination_name"] for q in queues} >= {"emails", "reports"}


def test_every_dashboard_expression_returns_data(stack: Stack) -> None:
    dashboard = json.loads(
        (COMPOSE_DIR.parents[1] / "operations" / "grafana" / "schedobs-dashboard.json").read_text()
    )
    expressions = [
        (panel["title"], target["expr"].replace("$scheduler", ".+"))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    assert len(expressions) >= 8
    # rate()/increase() over [1m] need two scrapes of every series (5 s apart).
    for title, expr in expressions:
        result = stack.wait(lambda e=expr: stack.query(e) or None, 180, f"{title}: {expr}")
        assert result, (title, expr)


def test_victoria_metrics_has_the_collector_s_remote_write(stack: Stack) -> None:
    result = stack.wait(
        lambda: (
            stack.query(
                'sum(scheduler_schedule_latency_milliseconds_count{scheduler_name="demo"})',
                base=stack.victoria_metrics,
            )
            or None
        ),
        180,
        "the demo's latency count in VictoriaMetrics",
    )
    assert float(result[0]["value"][1]) > 0
