"""Spans keep their clock-corrected timestamps through the real Collector.

The two-zone example (a server 37 ms ahead and drifting, a client 12 ms
behind, both compensated against a schedobs clock server) exports to the
Collector running ``collector-config/otel-collector.yaml``; at the far end of
its trace pipeline every span start is within its uncertainty of the truth and
every server span nests inside its client span — no violation of causality.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schedobs.clock import ClockServer
from schedobs.testing import GrpcOtlpReceiver

from .._collector import ROOT, Collector, otlp_ports
from .._prometheus_server import free_port
from ..clock.test_end_to_end import _run, check_corrected

pytestmark = pytest.mark.integration


def test_corrected_spans_nest_at_the_far_end_of_the_collector(
    grpc_receiver: GrpcOtlpReceiver, start_collector: Callable[..., Collector]
) -> None:
    ports = otlp_ports()
    start_collector(
        ROOT / "collector-config" / "otel-collector.yaml",
        {
            **ports,
            "exporters::prometheus::endpoint": f"127.0.0.1:{free_port()}",
            "exporters::otlp_grpc/traces::endpoint": grpc_receiver.endpoint.removeprefix("http://"),
        },
    )
    with ClockServer(port=0) as clock:
        reference = f"{clock.address[0]}:{clock.address[1]}"
        send_to = "http://" + ports["receivers::otlp::protocols::grpc::endpoint"]
        servers, clients = _run(grpc_receiver, reference, send_to=send_to)
    check_corrected(servers, clients)
