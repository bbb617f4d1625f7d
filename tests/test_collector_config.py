"""The collector configurations are consistent and match their documented ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "collector-config").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_there_are_both_configurations() -> None:
    assert {p.name for p in CONFIGS} == {"otel-collector.yaml", "otel-collector-remote-write.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_pipeline_references_defined_components(path: Path) -> None:
    config = _load(path)
    for name, pipeline in config["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config[section], f"{name}: {section} {component} undefined"
        assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must come first"
    assert set(config["service"]["pipelines"]) == {"metrics", "traces"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_ports_match_the_readme_and_bind_to_loopback(path: Path) -> None:
    config = _load(path)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:4318"
    assert config["exporters"]["otlp/traces"]["endpoint"] == "127.0.0.1:14317"
    readme = (ROOT / "collector-config" / "README.md").read_text()
    for port in ("4317", "4318", "8889", "14317"):
        assert f"| {port} |" in readme
    if "prometheus" in config["exporters"]:
        assert config["exporters"]["prometheus"]["endpoint"] == "127.0.0.1:8889"
