from __future__ import annotations

from collections.abc import Iterator

import pytest

from schedobs.contract import Registry
from schedobs.runtime import Runtime
from schedobs.testing import GrpcOtlpReceiver, HttpOtlpReceiver

from ._chrony_server import ChronyServer
from ._prometheus_server import PrometheusServer
from ._redis_server import RedisServer
from ._victoria_metrics import VictoriaMetrics


@pytest.fixture
def registry() -> Registry:
    """A fresh registry: tests never touch the process-wide one."""
    return Registry()


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The real Debian Prometheus server on a free loopback port (one per session)."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chrony_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChronyServer]:
    """Debian's chronyd as an NTP server on a free loopback port (never touches the clock)."""
    server = ChronyServer(tmp_path_factory.mktemp("chrony"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Debian's redis-server on a free loopback port (one per session; tests use own keys)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics, a real OTLP metrics backend, on a free loopback port."""
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoria-metrics"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcOtlpReceiver]:
    with GrpcOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def http_receiver() -> Iterator[HttpOtlpReceiver]:
    with HttpOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def rt() -> Iterator[Runtime]:
    """A two-processor runtime, drained and shut down after the test."""
    with Runtime(procs=2, name="test") as runtime:
        yield runtime


@pytest.fixture
def rt1() -> Iterator[Runtime]:
    """One processor: makes ordering and hand-off observable."""
    with Runtime(procs=1, name="test1") as runtime:
        yield runtime
