"""Every Collector configuration in the repository passes the real Collector's own check.

``otelcol validate`` (the Collector built from its Go modules by ``make``)
resolves each file and builds every component from it; a copy broken on
purpose must fail it, or the check proves nothing.  The rules of this
repository on top: memory_limiter first in every pipeline, and addresses on
loopback outside the compose network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .._collector import ROOT, validate

CONFIGS = sorted(
    [*(ROOT / "collector-config").glob("*.yaml"), *(ROOT / "examples").rglob("*.yaml")]
)
COLLECTOR_CONFIGS = [p for p in CONFIGS if "receivers" in yaml.safe_load(p.read_text())]


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_the_repository_s_collector_configurations_are_all_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in COLLECTOR_CONFIGS}
    assert {
        "collector-config/otel-collector.yaml",
        "collector-config/otel-collector-remote-write.yaml",
        "collector-config/agent.yaml",
        "collector-config/gateway.yaml",
        "examples/docker-compose/otel-collector.yaml",
    } <= names


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_collector_validates_it(path: Path) -> None:
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda c: c["service"]["pipelines"]["metrics"]["exporters"].append("nowhere"),
         "nowhere"),
        (lambda c: c["exporters"]["prometheus"].update(enable_open_metric=True),
         "enable_open_metric"),
        (lambda c: c["processors"]["batch"].update(timeout="soon"), "timeout"),
    ],
    ids=["undefined exporter", "misspelt key", "bad duration"],
)  # fmt: skip
def test_a_broken_copy_fails_validation(tmp_path: Path, breakage: Any, message: str) -> None:
    config = _load(ROOT / "collector-config" / "otel-collector.yaml")
    breakage(config)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    result = validate(broken)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_memory_limiter_comes_first_in_every_pipeline(path: Path) -> None:
    for name, pipeline in _load(path)["service"]["pipelines"].items():
        assert pipeline["processors"][0] == "memory_limiter", name


@pytest.mark.parametrize(
    "path",
    [p for p in COLLECTOR_CONFIGS if p.parent.name == "collector-config"],
    ids=lambda p: p.name,
)
def test_outside_a_container_network_every_address_is_loopback(path: Path) -> None:
    def endpoints(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [v for k, v in node.items() if k == "endpoint" and isinstance(v, str)]
            return found + [e for v in node.values() for e in endpoints(v)]
        if isinstance(node, list):
            return [e for v in node for e in endpoints(v)]
        return []

    config = _load(path)
    listening = endpoints(config["receivers"]) + endpoints(config.get("extensions", {}))
    for address in listening:
        assert address.startswith("127.0.0.1:"), (path.name, address)
    prom = config["exporters"].get("prometheus")
    if prom is not None:
        assert prom["endpoint"].startswith("127.0.0.1:")


def test_the_readme_lists_every_configuration_and_port() -> None:
    readme = (ROOT / "collector-config" / "README.md").read_text()
    for path in (ROOT / "collector-config").glob("*.yaml"):
        assert f"`{path.name}`" in readme, path.name
    for port in ("4317", "4318", "8889", "14317", "4327", "8899", "13133", "8888"):
        assert f"| {port} |" in readme, port
