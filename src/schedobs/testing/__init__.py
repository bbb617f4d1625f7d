"""Helpers for testing code instrumented with schedobs.

Real OTLP receivers (gRPC and HTTP) on loopback that decode what exporters
send, a decoder of received metric requests into plain values, and
:func:`wait_all_tasks_blocked`, which waits for a runtime to go quiet where a
test would otherwise sleep, :func:`wait_until`, which polls another thread's
progress with a bound and a message, a simulated fleet of clocks with ground truth
(:class:`Fleet`, :class:`FleetModel`) to judge the clock estimator on, and
:func:`faketime_env`, which gives a process a wall clock of its own under
libfaketime while ``CLOCK_MONOTONIC`` stays shared.

Example::

    from schedobs.testing import GrpcOtlpReceiver, latest_points

    with GrpcOtlpReceiver() as receiver:
        telemetry = schedobs.configure("svc", otlp_endpoint=receiver.endpoint,
                                       prometheus=None, set_global=False)
        ...
        telemetry.force_flush()
        points = latest_points(receiver.metrics_requests)
"""

from ._clockfleet import Clock, Fleet, FleetModel
from ._decode import OtlpPoint, latest_points
from ._faketime import faketime_env, find_libfaketime
from ._otlp_receiver import Fault, GrpcOtlpReceiver, HttpOtlpReceiver, OtlpReceiver
from ._quiet import wait_all_tasks_blocked
from ._wait import wait_until

__all__ = [
    "Clock",
    "Fault",
    "Fleet",
    "FleetModel",
    "GrpcOtlpReceiver",
    "HttpOtlpReceiver",
    "OtlpPoint",
    "OtlpReceiver",
    "faketime_env",
    "find_libfaketime",
    "latest_points",
    "wait_all_tasks_blocked",
    "wait_until",
]
