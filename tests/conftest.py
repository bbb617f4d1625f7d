from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator

import pytest

from schedobs.contract import Registry
from schedobs.runtime import Runtime
from schedobs.testing import GrpcOtlpReceiver, HttpOtlpReceiver

from ._chrony_server import ChronyServer
from ._prometheus_server import PrometheusServer
from ._redis_server import RedisServer
from ._victoria_metrics import VictoriaMetrics

# Past a test's own timeout, by this much, the process is stopped with every thread's stack.
_HANG_GRACE_S = 60.0
# The run's own stderr, kept before a test's output is captured: the stacks must outlive
# the capture, which the process's exit discards.
_stderr_fd = 2


def pytest_configure(config: pytest.Config) -> None:
    global _stderr_fd
    _stderr_fd = os.dup(2)  # between the capture's phases: the real stderr


@pytest.fixture(autouse=True)
def _hang_watchdog(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop the run, with every thread's stack on stderr, if a test outlives its timeout.

    pytest-timeout raises in the main thread from a signal handler, which runs only
    when that thread gets the GIL.  A compiled loop that never calls into Python
    never hands the GIL over (docs/compiled.md), so that timeout never fired and a
    hang held CI to its own limit with nothing to read.  faulthandler's watchdog is
    a C thread that needs no GIL.
    """
    marker = request.node.get_closest_marker("timeout")
    limit = marker.args[0] if marker and marker.args else request.config.getoption("timeout")
    if limit is None:
        limit = request.config.getini("timeout")
    seconds = float(limit or 0)
    if seconds <= 0:
        yield
        return
    faulthandler.dump_traceback_later(seconds + _HANG_GRACE_S, exit=True, file=_stderr_fd)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


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
