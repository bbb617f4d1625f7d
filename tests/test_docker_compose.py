"""The docker-compose example's files: what can be judged without a Docker engine.

The stack itself comes up in ``make test-compose`` (tests/compose/); these checks
keep the files honest in ``make test``: no runtime install on a mount, ports on
loopback, start order by health, one path per series, commands the CLI accepts,
dashboard queries on contract names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from schedobs._cli import build_parser
from schedobs.contract import CONTRACT, InstrumentKind

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "examples" / "docker-compose"


def _yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _yaml(COMPOSE_DIR / "docker-compose.yml")["services"]
    return services


def _prometheus_names() -> set[str]:
    names = set()
    for spec in CONTRACT.metrics:
        names.add(spec.prometheus_name)
        if spec.instrument is InstrumentKind.HISTOGRAM:
            names.update(spec.prometheus_name + s for s in ("_bucket", "_sum", "_count"))
    return names


def test_images_are_built_here_and_nothing_installs_at_run_time() -> None:
    services = _services()
    assert {"demo", "clock", "service-a", "service-b", "collector", "prometheus", "phoenix",
            "victoria-metrics", "redis", "celery-zone-a", "celery-zone-b",
            "celery-producer"} <= set(services)  # fmt: skip
    dockerfiles = {p.stem for p in (COMPOSE_DIR / "images").glob("*.Dockerfile")}
    for name, svc in services.items():
        command = json.dumps(svc.get("command", ""))
        assert "pip install" not in command, name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            # A file of this example, or the operations kit's dashboard: never the checkout.
            assert source.startswith("./") or source == "../../operations/grafana", (name, volume)
            assert (COMPOSE_DIR / source).exists(), (name, volume)
            assert volume.endswith(":ro"), (name, volume)
        if svc.get("profiles"):
            continue  # optional services use images from elsewhere, stated in the README
        image = svc["image"]
        assert image.startswith("schedobs/") and image.endswith(":bookworm"), (name, image)
        assert image.split("/")[1].split(":")[0] in dockerfiles, (name, image)
        assert svc.get("init") is True, name  # signals reach the process: it stops at once


def test_published_ports_are_on_loopback_and_movable() -> None:
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\$\{SCHEDOBS_[A-Z_]+_PORT:-\d+\}:\d+", port), (
                name, port,
            )  # fmt: skip


def test_start_order_waits_for_health() -> None:
    services = _services()
    for name, svc in services.items():
        for dependency, condition in svc.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            wanted = condition["condition"]
            assert wanted in ("service_healthy", "service_started"), (name, dependency)
            if wanted == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    assert services["service-a"]["depends_on"]["service-b"]["condition"] == "service_healthy"
    assert services["demo"]["depends_on"]["collector"]["condition"] == "service_healthy"


def test_each_series_has_one_path_to_prometheus() -> None:
    """Whatever sends OTLP to the collector is not also scraped (that counted the demo
    twice); whatever is scraped does not send OTLP."""
    services = _services()
    targets = {
        t
        for job in _yaml(COMPOSE_DIR / "prometheus.yml")["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    assert targets == {"collector:8889", "collector:8888", "celery-zone-a:9465",
                       "celery-zone-b:9466"}  # fmt: skip
    scraped = {t.split(":")[0] for t in targets} - {"collector"}
    for name in scraped:
        assert "collector:4317" not in json.dumps(services[name]), name  # no OTLP
    for name, svc in services.items():
        if "http://collector:4317" in json.dumps(svc.get("command", "")):
            assert name not in scraped, name
    demo = build_parser().parse_args(services["demo"]["command"][1:])
    assert demo.prometheus == "none" and demo.otlp_endpoint == "http://collector:4317"


def test_prometheus_keeps_exemplars_and_the_collector_serves_them() -> None:
    command = _services()["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command
    collector = _yaml(COMPOSE_DIR / "otel-collector.yaml")
    assert collector["exporters"]["prometheus"]["enable_open_metrics"] is True
    assert collector["exporters"]["otlp_grpc/traces"]["endpoint"] == "phoenix:4317"


def test_every_dashboard_query_names_a_contract_metric() -> None:
    dashboard = json.loads(
        (ROOT / "operations" / "grafana" / "schedobs-dashboard.json").read_text()
    )
    known = _prometheus_names()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"]]
    assert len(exprs) >= 8
    for expr in exprs:
        names = set(re.findall(r"\b((?:scheduler|clock|schedobs)_[a-z_]+)\b", expr))
        labels = {"scheduler_name", "scheduler_queue", "scheduler_tenant", "scheduler_kind"}
        names -= labels
        assert names, expr
        assert names <= known, (expr, names - known)


def test_grafana_provisioning_points_at_the_stack_s_backends() -> None:
    datasources = _yaml(
        COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    )
    (prometheus,) = datasources["datasources"]
    assert prometheus["url"] == "http://prometheus:9090"
    # An exemplar's trace id opens the trace in Phoenix.
    (link,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert link["name"] == "trace_id" and "127.0.0.1:6006" in link["url"]
    providers = _yaml(COMPOSE_DIR / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
