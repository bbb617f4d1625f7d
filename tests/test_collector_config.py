"""The collector configuration is internally consistent and matches its documented ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "collector-config" / "otel-collector.yaml"


def _load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


def test_every_pipeline_references_defined_components() -> None:
    config = _load()
    for name, pipeline in config["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config[section], f"{name}: {section} {component} undefined"
        assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must come first"


def test_ports_match_the_readme_and_bind_to_loopback() -> None:
    config = _load()
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:4318"
    assert config["exporters"]["prometheus"]["endpoint"] == "127.0.0.1:8889"
    readme = (ROOT / "collector-config" / "README.md").read_text()
    for port in ("4317", "4318", "8889"):
        assert f"| {port} |" in readme
