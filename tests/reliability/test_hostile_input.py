"""Hostile input: cardinality attacks, default bind addresses, bad configuration."""

from __future__ import annotations

import tracemalloc

import pytest

from schedobs.clock import ClockServer
from schedobs.contract import Registry, SchedulerMetrics
from schedobs.export import configure
from schedobs.runtime import Runtime
from schedobs.tenancy import Tenant, TenantScheduler


def test_100k_distinct_tenant_names_keep_series_and_memory_bounded(registry: Registry) -> None:
    metrics = SchedulerMetrics("attacked", registry=registry, tenant_cap=16)
    for i in range(2_000):  # warm up: every structure that will exist, exists
        metrics.reject("quota_exceeded", tenant=f"attacker-{i}")
        metrics.observe_latency(0.3, tenant=f"attacker-{i}")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(2_000, 100_000):
        metrics.reject("quota_exceeded", tenant=f"attacker-{i}")
        metrics.observe_latency(0.3, tenant=f"attacker-{i}")
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    series = [p for s in registry.collect() for p in s.points]
    assert len(series) == 2 * 17  # 16 tenants + _OTHER, for each metric
    assert grown < 256 * 1024  # 98,000 new names left no trace
    total = sum(p.value for p in series if hasattr(p, "value"))  # type: ignore[union-attr]
    assert total == 100_000


def test_listening_sockets_bind_to_loopback_by_default(registry: Registry) -> None:
    telemetry = configure(registry=registry, set_global=False, prometheus="127.0.0.1:0")
    try:
        assert telemetry.prometheus_address is not None
        assert telemetry.prometheus_address[0] == "127.0.0.1"
    finally:
        telemetry.shutdown(timeout=5)
    from schedobs.export._settings import DEFAULT_PROMETHEUS, resolve_settings

    assert DEFAULT_PROMETHEUS.startswith("127.0.0.1:")
    with ClockServer(port=0) as server:
        assert server.address[0] == "127.0.0.1"
    import inspect

    assert inspect.signature(ClockServer).parameters["host"].default == "127.0.0.1"
    from schedobs._cli import build_parser

    args = build_parser().parse_args(["clock", "serve"])
    assert args.host == "127.0.0.1"
    assert resolve_settings(
        service_name=None, zone=None, otlp_endpoint=None, otlp_protocol=None,
        export_interval=None, export_timeout=None, prometheus=None, env={},
    ).prometheus is None  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"otlp_endpoint": "ftp://x"}, ValueError),
        ({"export_interval": -1}, ValueError),
        ({"prometheus": "localhost"}, ValueError),
        ({"clock": "no-port"}, ValueError),
        ({"clock": 7}, TypeError),
        ({"resource_attributes": None, "zone": 7}, TypeError),
    ],
)
def test_invalid_configuration_is_a_clear_error_and_starts_nothing(
    registry: Registry, kwargs: dict[str, object], error: type[Exception]
) -> None:
    import threading

    threads = threading.active_count()
    with pytest.raises(error):
        configure(registry=registry, set_global=False, **kwargs)  # type: ignore[arg-type]
    assert threading.active_count() == threads


def test_tenant_names_from_requests_cannot_blow_up_the_tenant_scheduler() -> None:
    with Runtime(procs=1) as rt:
        ts = TenantScheduler(rt, [Tenant("known")], instrument=False)
        for i in range(10_000):
            with pytest.raises(KeyError):
                ts.submit(f"unknown-{i}", int)
        assert ts.tenants() == ["known"]


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_configure_that_fails_late_leaves_no_port_or_thread_behind(registry: Registry) -> None:
    """A reader already registered with another MeterProvider makes the SDK refuse
    ``MeterProvider(...)`` after the scrape endpoint is listening: it must be closed
    again, and no prober or exporter thread left, as the docstring promises."""
    import socket
    import threading

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    taken = InMemoryMetricReader()
    MeterProvider(metric_readers=[taken])
    port = _free_tcp_port()
    threads = {t.name for t in threading.enumerate()}
    with pytest.raises(Exception, match="registered"):
        configure(
            registry=registry,
            set_global=False,
            prometheus=f"127.0.0.1:{port}",
            otlp_endpoint="http://127.0.0.1:1",
            metric_readers=[taken],
            clock="127.0.0.1:1",
        )
    assert {t.name for t in threading.enumerate()} - threads == set()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the scrape port is free again
