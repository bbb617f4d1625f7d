from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from .._collector import Collector
from .._prometheus_server import PrometheusServer


@pytest.fixture(scope="module")
def exemplar_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The real Prometheus with exemplar storage (it then asks targets for OpenMetrics)."""
    server = PrometheusServer(tmp_path_factory.mktemp("prom-ex"), features=("exemplar-storage",))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    """Start a real Collector on a configuration (see :class:`Collector`); every one it
    started is stopped when the test ends, however it ends."""
    started: list[Collector] = []

    def start(config: Path, overrides: Mapping[str, str], name: str = "otelcol") -> Collector:
        collector = Collector(tmp_path, config, overrides, name=name)
        started.append(collector)
        return collector

    yield start
    for collector in reversed(started):
        collector.stop()
