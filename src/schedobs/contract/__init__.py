"""The scheduler metric contract: its specification and its recording API.

The contract is data (:data:`CONTRACT`): three standard metrics that every
scheduler exports the same way, with closed attribute sets, plus optional
metrics.  :class:`SchedulerMetrics` records them from a scheduler's hot path,
pre-aggregating in plain Python; a :class:`Registry` hands the aggregates to
the exporters at collection time.

This package depends on no OpenTelemetry SDK code (docs/architecture.md).

Example::

    from schedobs.contract import SchedulerMetrics

    metrics = SchedulerMetrics("ingest", kind="custom")
    latency = metrics.latency(queue="work")
    latency.observe(0.8)                     # milliseconds
    metrics.reject("queue_full")
    metrics.queue_length_callback(lambda: len(work_queue), queue="work")
"""

from . import _exemplars as exemplars
from ._batch import LatencyBatch
from ._exemplars import Exemplar
from ._exemplars import disable as disable_exemplars
from ._exemplars import enable as enable_contract_exemplars
from ._instruments import LatencyHistogram, QueueLengthGauge, RejectionCounter
from ._points import CounterPoint, GaugePoint, HistogramPoint, MetricSnapshot, Point
from ._quantile import estimate_quantile
from ._registry import REGISTRY, Registry
from ._render import render_json, render_markdown
from ._scheduler_metrics import (
    DEFAULT_DESTINATION_CAP,
    DEFAULT_TENANT_CAP,
    MAX_LABEL_LENGTH,
    HistogramValue,
    Observation,
    SchedulerMetrics,
)
from ._spec import (
    CLOCK_LAST_SAMPLE,
    CLOCK_OFFSET,
    CLOCK_PROBE_OUTCOME,
    CLOCK_PROBE_OUTCOMES,
    CLOCK_PROBE_RTT,
    CLOCK_PROBES,
    CLOCK_UNCERTAINTY,
    COMPLETED_TASKS,
    CONTRACT,
    CONTRACT_VERSION,
    DESTINATION,
    DISTRIBUTED_METRICS,
    DROPPED_OBSERVATIONS,
    DROPPED_SPANS,
    FAILED_METRIC_EXPORTS,
    GC_THRESHOLD,
    HANDOFFS,
    KINDS,
    LATENCY_BOUNDARIES_MS,
    OTHER,
    PREEMPTIONS,
    PROCESSOR_STATE,
    PROCESSORS,
    QUEUE_LENGTH,
    QUEUE_WAIT,
    QUEUES,
    REASONS,
    REJECTED_TASKS,
    RETRIED_TASKS,
    SCALE_DIRECTION,
    SCALE_EVENTS,
    SCHEDULE_LATENCY,
    SCHEDULER_QUEUE,
    SCHEDULER_TENANT,
    SPAN_DROP_REASON,
    STEALS,
    TASK_STATE,
    TASKS,
    THREAD_STATE,
    THREADS,
    UNRESOLVED,
    UNRESOLVED_REASON,
    UNRESOLVED_REASONS,
    AttributeSpec,
    Contract,
    InstrumentKind,
    MetricSpec,
    prometheus_name,
)

__all__ = [
    "CLOCK_LAST_SAMPLE",
    "CLOCK_OFFSET",
    "CLOCK_PROBES",
    "CLOCK_PROBE_OUTCOME",
    "CLOCK_PROBE_OUTCOMES",
    "CLOCK_PROBE_RTT",
    "CLOCK_UNCERTAINTY",
    "COMPLETED_TASKS",
    "CONTRACT",
    "CONTRACT_VERSION",
    "DEFAULT_DESTINATION_CAP",
    "DEFAULT_TENANT_CAP",
    "DESTINATION",
    "DISTRIBUTED_METRICS",
    "DROPPED_OBSERVATIONS",
    "DROPPED_SPANS",
    "FAILED_METRIC_EXPORTS",
    "GC_THRESHOLD",
    "HANDOFFS",
    "KINDS",
    "LATENCY_BOUNDARIES_MS",
    "MAX_LABEL_LENGTH",
    "OTHER",
    "PREEMPTIONS",
    "PROCESSORS",
    "PROCESSOR_STATE",
    "QUEUES",
    "QUEUE_LENGTH",
    "QUEUE_WAIT",
    "REASONS",
    "REGISTRY",
    "REJECTED_TASKS",
    "RETRIED_TASKS",
    "SCALE_DIRECTION",
    "SCALE_EVENTS",
    "SCHEDULER_QUEUE",
    "SCHEDULER_TENANT",
    "SCHEDULE_LATENCY",
    "SPAN_DROP_REASON",
    "STEALS",
    "TASKS",
    "TASK_STATE",
    "THREADS",
    "THREAD_STATE",
    "UNRESOLVED",
    "UNRESOLVED_REASON",
    "UNRESOLVED_REASONS",
    "AttributeSpec",
    "Contract",
    "CounterPoint",
    "Exemplar",
    "GaugePoint",
    "HistogramPoint",
    "HistogramValue",
    "InstrumentKind",
    "LatencyBatch",
    "LatencyHistogram",
    "MetricSnapshot",
    "MetricSpec",
    "Observation",
    "Point",
    "QueueLengthGauge",
    "Registry",
    "RejectionCounter",
    "SchedulerMetrics",
    "disable_exemplars",
    "enable_contract_exemplars",
    "estimate_quantile",
    "exemplars",
    "prometheus_name",
    "render_json",
    "render_markdown",
]
