"""Two services in two processes, with skewed clocks (one drifting), exchange RPCs.

With either reference (a schedobs probe server in this process, or chrony as
an NTP server on loopback; both serve the true clock), every exported span
start is within 3σ of the real time its process read at that instant, and
every server span lies inside its client span.  Without compensation the
injected skew shows, as the control.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from schedobs.clock import ClockServer
from schedobs.testing import GrpcOtlpReceiver

from .._prometheus_server import poll

pytestmark = pytest.mark.integration

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "two_zones_service.py"
SERVER_OFFSET_NS = 37_000_000  # the server host runs 37 ms ahead
SERVER_DRIFT_PPM = 40.0
CLIENT_OFFSET_NS = -12_000_000  # the client host runs 12 ms behind


def _start(role: str, receiver: str, reference: str, offset: int, drift: float, *extra: str):  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, str(SERVICE), role, receiver, reference, str(offset), str(drift), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read(proc, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"process ended early: {proc.stderr.read()[-2000:]}")
        if line.startswith(prefix):
            fields: list[str] = line.split()[1:]
            return fields


def _run(
    receiver: GrpcOtlpReceiver, ref: str, send_to: str | None = None
) -> tuple[list[object], dict[bytes, object]]:
    """Run the pair; the spans are read from ``receiver``, which is also where they are
    sent unless ``send_to`` (a Collector in front of it) is given."""
    send_to = send_to or receiver.endpoint
    server = _start("server", send_to, ref, SERVER_OFFSET_NS, SERVER_DRIFT_PPM)
    try:
        _read(server, "SKEW")
        port = _read(server, "PORT")[0]
        client = _start("client", send_to, ref, CLIENT_OFFSET_NS, 0.0, f"127.0.0.1:{port}")
        _read(client, "DONE")
        _read(server, "DONE")
        client.communicate(timeout=30)  # also closes the pipes
        assert client.returncode == 0
    finally:
        if server.poll() is None and server.returncode is None:
            server.wait(30)
        server.communicate(timeout=30)
    assert server.returncode == 0
    if send_to != receiver.endpoint:  # a Collector batches before it forwards
        poll(lambda: _count(receiver) >= 40 or None, 30.0, "40 spans through the collector")
    spans = {}
    for request in receiver.trace_requests:
        for rs in request.resource_spans:
            service = next(
                kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"
            )
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans[span.span_id] = (service, span)
    servers = [s for svc, s in spans.values() if svc == "e2e-server"]
    clients = {sid: s for sid, (svc, s) in spans.items() if svc == "e2e-client"}
    assert len(servers) == 20
    assert len(clients) == 20
    return servers, clients


def _count(receiver: GrpcOtlpReceiver) -> int:
    return sum(
        len(ss.spans)
        for request in receiver.trace_requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
    )


def check_corrected(servers: list[object], clients: dict[bytes, object]) -> None:
    """Every span start within its uncertainty of the truth; every server span inside
    its client span."""
    # The truth is the unskewed time each process read next to the span's start,
    # independent of the estimate (a sign error in the correction fails here).
    for span in [*servers, *clients.values()]:
        attrs = _attrs(span)
        real = attrs["e2e.real_start_ns"].int_value  # type: ignore[attr-defined]
        window = attrs["e2e.real_window_ns"].int_value  # type: ignore[attr-defined]
        sigma = attrs["clock.uncertainty_ns"].int_value  # type: ignore[attr-defined]
        error = abs(span.start_time_unix_nano - real)  # type: ignore[attr-defined]
        # 3σ, plus half the window the real time was read in (a thread switch
        # between the readings widens it), plus the readings' own cost.
        assert error <= 3 * sigma + window // 2 + 20_000, (error, sigma, window)
    for child in servers:
        parent = clients[child.parent_span_id]  # type: ignore[attr-defined]
        # Without correction the child would start ~49 ms after its parent ended.
        assert parent.start_time_unix_nano <= child.start_time_unix_nano  # type: ignore[attr-defined]
        assert child.end_time_unix_nano <= parent.end_time_unix_nano  # type: ignore[attr-defined]


def _attrs(span) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {kv.key: kv.value for kv in span.attributes}


@pytest.fixture(params=["schedobs", "ntp"])
def reference(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "ntp":
        chrony = request.getfixturevalue("chrony_server")
        yield f"ntp://{chrony.address}"
        return
    with ClockServer(port=0) as server:
        yield f"{server.address[0]}:{server.address[1]}"


def test_corrected_rpc_spans_nest_and_match_the_truth(
    grpc_receiver: GrpcOtlpReceiver, reference: str
) -> None:
    servers, clients = _run(grpc_receiver, reference)
    check_corrected(servers, clients)


def test_without_compensation_the_skew_shows(grpc_receiver: GrpcOtlpReceiver) -> None:
    # The control: the same run with REFERENCE=none exports the injected skew as it is.
    servers, clients = _run(grpc_receiver, "none")
    for span in servers:
        attrs = _attrs(span)
        assert "clock.offset_ns" not in attrs
        error = span.start_time_unix_nano - attrs["e2e.real_start_ns"].int_value  # type: ignore[attr-defined]
        assert abs(error - SERVER_OFFSET_NS) < 2_000_000  # 37 ms ahead (+ 40 ppm over seconds)
        parent = clients[span.parent_span_id]  # type: ignore[attr-defined]
        assert span.start_time_unix_nano > parent.end_time_unix_nano  # type: ignore[attr-defined]


def test_the_example_sends_only_traces_over_http_to_a_traces_only_backend() -> None:
    """``--protocol http/protobuf --signals traces``: spans reach ``/v1/traces`` and no
    metric export is attempted (a traces-only backend would answer it 404/405)."""
    from schedobs.testing import HttpOtlpReceiver

    with HttpOtlpReceiver() as receiver:
        flags = ("--protocol", "http/protobuf", "--signals", "traces")
        server = _start("server", receiver.endpoint, "none", 0, 0.0, *flags)
        try:
            port = _read(server, "PORT")[0]
            client = _start(
                "client", receiver.endpoint, "none", 0, 0.0, f"127.0.0.1:{port}", *flags
            )
            _read(client, "DONE")
            _read(server, "DONE")
            client.communicate(timeout=30)
        finally:
            if server.poll() is None:
                server.wait(30)
            server.communicate(timeout=30)
        assert receiver.trace_requests
        assert receiver.metrics_requests == [] and receiver.unrouted == []
