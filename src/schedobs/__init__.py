"""schedobs: observe task schedulers with OpenTelemetry.

One standard picture of a scheduler: a queue-length gauge, a schedule-latency
histogram and a rejected-tasks counter (the *contract*), recorded cheaply from
the scheduler's hot path and exported through the OpenTelemetry SDK to OTLP and
to a Prometheus scrape endpoint.

Quickstart::

    import schedobs

    telemetry = schedobs.configure("my-service")        # Prometheus on 127.0.0.1:9464
    metrics = schedobs.SchedulerMetrics("jobs", kind="custom")
    latency = metrics.latency(queue="work")

    latency.observe(0.7)                                  # ms, on each task start
    metrics.reject("queue_full")                          # on each refusal
    metrics.queue_length_callback(lambda: len(queue), queue="work")

Subpackages: :mod:`schedobs.contract` (the contract and the recorder),
:mod:`schedobs.export` (SDK wiring), :mod:`schedobs.check` (conformance
checker), :mod:`schedobs.testing` (OTLP receivers and helpers for tests).
"""

from ._version import __version__
from .contract import (
    CONTRACT,
    CONTRACT_VERSION,
    REGISTRY,
    LatencyHistogram,
    QueueLengthGauge,
    Registry,
    RejectionCounter,
    SchedulerMetrics,
)
from .export import ClockCompensation, Telemetry, TimestampRewriter, configure

__all__ = [
    "CONTRACT",
    "CONTRACT_VERSION",
    "REGISTRY",
    "ClockCompensation",
    "LatencyHistogram",
    "QueueLengthGauge",
    "Registry",
    "RejectionCounter",
    "SchedulerMetrics",
    "Telemetry",
    "TimestampRewriter",
    "__version__",
    "configure",
]
