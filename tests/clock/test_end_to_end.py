"""Two services in two processes, one with a skewed and drifting clock, exchange RPCs.

After correction before export, every server span lies inside its client span,
and each corrected server timestamp is within its reported uncertainty of the
truth (the reference server in this process runs on the true clock).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from schedobs.clock import ClockServer
from schedobs.testing import GrpcOtlpReceiver

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


def test_corrected_rpc_spans_nest_and_match_the_truth(grpc_receiver: GrpcOtlpReceiver) -> None:
    with ClockServer(port=0) as reference:
        ref = f"{reference.address[0]}:{reference.address[1]}"
        server = _start("server", grpc_receiver.endpoint, ref, SERVER_OFFSET_NS, SERVER_DRIFT_PPM)
        try:
            skew = _read(server, "SKEW")
            port = _read(server, "PORT")[0]
            client = _start(
                "client", grpc_receiver.endpoint, ref, CLIENT_OFFSET_NS, 0.0, f"127.0.0.1:{port}"
            )
            _read(client, "DONE")
            _read(server, "DONE")
            client.communicate(timeout=30)  # also closes the pipes
            assert client.returncode == 0
        finally:
            if server.poll() is None and server.returncode is None:
                server.wait(30)
            server.communicate(timeout=30)
        assert server.returncode == 0
    start_real, offset, drift = int(skew[0]), int(skew[2]), float(skew[3])

    spans = {}
    for request in grpc_receiver.trace_requests:
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
    for child in servers:
        parent = clients[child.parent_span_id]
        # Without correction the child would start ~49 ms after its parent ended.
        assert parent.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= parent.end_time_unix_nano
        attrs = {kv.key: kv.value for kv in child.attributes}
        uncertainty = attrs["clock.uncertainty_ns"].int_value
        correction = attrs["clock.offset_ns"].int_value
        # Truth: the server's local reading L was real + offset + drift·elapsed.
        local = child.start_time_unix_nano - correction
        elapsed = (local - start_real - offset) / (1 + drift)
        real = start_real + elapsed
        error = abs(child.start_time_unix_nano - real)
        assert error <= 5 * uncertainty + 200_000, (error, uncertainty)
