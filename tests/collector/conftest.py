from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._prometheus_server import PrometheusServer


@pytest.fixture(scope="module")
def exemplar_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The real Prometheus with exemplar storage (it then asks targets for OpenMetrics)."""
    server = PrometheusServer(tmp_path_factory.mktemp("prom-ex"), features=("exemplar-storage",))
    try:
        yield server
    finally:
        server.stop()
