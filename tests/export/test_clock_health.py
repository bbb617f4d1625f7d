"""A clock reference that does not answer is loud, and its state is exported as metrics."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import schedobs
from schedobs.clock import ClockServer
from schedobs.contract import CLOCK_LAST_SAMPLE, CLOCK_PROBE_OUTCOME, CLOCK_PROBES
from schedobs.testing import wait_until


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[dict[str, object], float]]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    value = point.value  # type: ignore[union-attr]
                    out.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return out


@pytest.mark.parametrize("scheme", ["", "ntp://"])
def test_a_silent_reference_is_logged_once_and_its_recovery_too(
    scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_udp_port()  # nothing listens: every probe is lost
    reader = InMemoryMetricReader()
    caplog.set_level(logging.WARNING, logger="schedobs")
    telemetry = schedobs.configure(
        "clock-health",
        prometheus=None,
        otlp_endpoint=None,
        set_global=False,
        metric_readers=[reader],
        clock=schedobs.ClockCompensation.create(f"{scheme}127.0.0.1:{port}", interval=0.05),
    )
    try:
        assert telemetry.clock is not None
        prober = telemetry.clock.prober

        def silence_warnings() -> list[str]:
            return [r.getMessage() for r in caplog.records if "no usable sample" in r.getMessage()]

        wait_until(silence_warnings, 10.0, what="the silence warning")
        time.sleep(0.3)  # more lost probes: still one warning
        (message,) = silence_warnings()
        assert f"127.0.0.1:{port}" in message and "uncorrected" in message
        assert prober.silent and prober.lost >= 5

        points = _points(reader)
        outcomes = {attrs[CLOCK_PROBE_OUTCOME]: v for attrs, v in points[CLOCK_PROBES.name]}
        assert outcomes["lost"] >= 5 and outcomes["sample"] == 0
        assert CLOCK_LAST_SAMPLE.name not in points  # never had one

        if scheme:
            return  # recovery is the same code for both protocols; a schedobs server is quick
        with ClockServer(port=port):
            wait_until(lambda: not prober.silent, 10.0, what="recovery")
            assert any("answers again" in r.getMessage() for r in caplog.records)
            points = _points(reader)
        outcomes = {attrs[CLOCK_PROBE_OUTCOME]: v for attrs, v in points[CLOCK_PROBES.name]}
        assert outcomes["sample"] >= 1
        ((_, last),) = points[CLOCK_LAST_SAMPLE.name]
        assert abs(last - time.time()) < 5
    finally:
        telemetry.shutdown(timeout=5)


def test_a_reference_that_answers_raises_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="schedobs")
    with ClockServer(port=0) as server:
        telemetry = schedobs.configure(
            "clock-health",
            prometheus=None,
            otlp_endpoint=None,
            set_global=False,
            clock=schedobs.ClockCompensation.create(
                f"127.0.0.1:{server.address[1]}", interval=0.05
            ),
        )
        try:
            assert telemetry.clock is not None
            wait_until(lambda: telemetry.clock.prober.samples >= 20, 10.0, what="samples")  # type: ignore[union-attr]
        finally:
            telemetry.shutdown(timeout=5)
    assert not [r for r in caplog.records if r.name.startswith("schedobs")]
