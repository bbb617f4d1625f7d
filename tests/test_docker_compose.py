"""The docker-compose example, validated without a Docker engine; its services run in other tests."""

from __future__ import annotations

import json
import re
import shlex
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


def _prometheus_names() -> set[str]:
    names = set()
    for spec in CONTRACT.metrics:
        names.add(spec.prometheus_name)
        if spec.instrument is InstrumentKind.HISTOGRAM:
            names.update(spec.prometheus_name + s for s in ("_bucket", "_sum", "_count"))
    return names


def test_services_dependencies_and_mounts() -> None:
    compose = _yaml(COMPOSE_DIR / "docker-compose.yml")
    services = compose["services"]
    assert {"demo", "clock", "service-a", "service-b", "collector", "prometheus", "jaeger",
            "grafana"} <= set(services)  # fmt: skip
    for name, svc in services.items():
        assert "image" in svc, name
        for dep in svc.get("depends_on", []):
            assert dep in services, (name, dep)
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert (COMPOSE_DIR / source).exists(), (name, source)


def test_ports_agree_across_compose_collector_and_prometheus() -> None:
    compose = _yaml(COMPOSE_DIR / "docker-compose.yml")["services"]
    assert "4317:4317" in compose["collector"]["ports"]
    assert "8889:8889" in compose["collector"]["ports"]
    collector = _yaml(COMPOSE_DIR / "otel-collector.yaml")
    assert collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert collector["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:8889"
    assert collector["exporters"]["otlp/traces"]["endpoint"] == "jaeger:4317"
    for pipeline in collector["service"]["pipelines"].values():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline[section]:
                assert component in collector[section]
    targets = {
        t
        for job in _yaml(COMPOSE_DIR / "prometheus.yml")["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    assert targets == {"collector:8889", "demo:9464", "celery-zone-a:9465", "celery-zone-b:9466"}
    for worker, port in (("celery-zone-a", 9465), ("celery-zone-b", 9466)):
        assert f"--prometheus 0.0.0.0:{port}" in compose[worker]["command"]
        assert compose[worker]["environment"]["SCHEDOBS_BROKER"] == "redis://redis:6379/0"
    assert "9464:9464" in compose["demo"]["ports"]


def test_the_demo_command_is_valid_cli() -> None:
    command = _yaml(COMPOSE_DIR / "docker-compose.yml")["services"]["demo"]["command"]
    argv = shlex.split(command.split("&&", 1)[1].strip().rstrip('"'))
    assert argv[0] == "schedobs"
    args = build_parser().parse_args(argv[1:])
    assert args.otlp_endpoint == "http://collector:4317"
    assert args.prometheus == "0.0.0.0:9464"


def test_every_dashboard_query_names_a_contract_metric() -> None:
    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "schedobs.json").read_text())
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
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Queue length by queue", "Schedule latency heatmap", "Refusal rate by reason",
            "Clock offset"} <= titles  # fmt: skip


def test_grafana_provisioning_points_at_the_services() -> None:
    datasources = _yaml(
        COMPOSE_DIR / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    )
    urls = {d["name"]: d["url"] for d in datasources["datasources"]}
    assert urls == {"Prometheus": "http://prometheus:9090", "Jaeger": "http://jaeger:16686"}
    providers = _yaml(COMPOSE_DIR / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
