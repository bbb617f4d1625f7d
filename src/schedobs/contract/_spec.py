"""The scheduler metric contract as data.

Everything that defines what schedobs exports lives here, once: metric names,
instrument kinds, units, attribute keys and their closed value sets, histogram
boundaries and the exact meaning of each metric.  The recorder, the export
bridge, the conformance checker and the rendered documentation all read from
this module, so they cannot drift apart.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "CONTRACT",
    "CONTRACT_VERSION",
    "LATENCY_BOUNDARIES_MS",
    "OTHER",
    "AttributeSpec",
    "Contract",
    "InstrumentKind",
    "MetricSpec",
    "prometheus_name",
]

CONTRACT_VERSION = "1.6.0"

#: The value that folds everything beyond a cap or outside a closed set.
OTHER = "_OTHER"

#: Schedule-latency bucket upper bounds in milliseconds (inclusive, as in OTel
#: explicit-bucket histograms and Prometheus ``le``).  From 10 µs, below which a
#: pure-Python dispatch cannot go, to 10 s, beyond which a task is starved.
LATENCY_BOUNDARIES_MS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
)  # fmt: skip


class InstrumentKind(str, enum.Enum):
    """The OpenTelemetry instrument a contract metric is exported as."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"

    @property
    def prometheus_type(self) -> str:
        """The ``# TYPE`` a Prometheus exposition gives this kind."""
        return {"gauge": "gauge", "counter": "counter", "histogram": "histogram"}[self.value]


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute key the contract allows.

    ``values`` is the closed set of allowed values, or ``None`` for a user-given
    value (scheduler name, tenant) whose cardinality is bounded by other means
    (documented in ``description``).
    """

    key: str
    description: str
    values: tuple[str, ...] | None = None

    @property
    def prometheus_label(self) -> str:
        """The label name of this key after the standard OTel→Prometheus translation."""
        return _sanitize(self.key)


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the contract."""

    name: str
    instrument: InstrumentKind
    unit: str
    description: str
    required_attributes: tuple[str, ...]
    optional_attributes: tuple[str, ...] = ()
    boundaries: tuple[float, ...] | None = None
    #: Whether a conforming scheduler must export it.  Optional metrics may be
    #: absent, but when present they must match their spec.
    required: bool = True
    #: Whether values may be negative (a clock offset); counts never are.
    signed: bool = False

    @property
    def attributes(self) -> tuple[str, ...]:
        """All allowed attribute keys, required first."""
        return self.required_attributes + self.optional_attributes

    @property
    def prometheus_name(self) -> str:
        """The metric family name in a Prometheus exposition (without sample suffixes)."""
        return prometheus_name(self.name, self.unit, self.instrument)


@dataclass(frozen=True)
class Contract:
    """A versioned set of metric and attribute specifications."""

    version: str
    metrics: tuple[MetricSpec, ...]
    attributes: Mapping[str, AttributeSpec] = field(default_factory=dict)

    def metric(self, name: str) -> MetricSpec:
        """Return the spec of the metric called ``name`` (OTel name)."""
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise KeyError(f"no metric {name!r} in contract v{self.version}")

    def by_prometheus_name(self) -> dict[str, MetricSpec]:
        """Map each Prometheus family name to its spec."""
        return {spec.prometheus_name: spec for spec in self.metrics}


# The standard translation (OTel spec "Prometheus and OpenMetrics Compatibility"):
# non-alphanumerics become "_", UCUM annotations in braces vanish, known units
# become a word suffix, monotonic counters get "_total".  Only the units that the
# contract uses need to be known here; a test pins this against the real exporter.
_UNIT_WORDS = {"ms": "milliseconds", "s": "seconds", "ns": "nanoseconds", "1": "", "By": "bytes"}
_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
_ANNOTATION = re.compile(r"\{[^}]*\}")


def _sanitize(name: str) -> str:
    return _NON_ALNUM.sub("_", name)


def prometheus_name(name: str, unit: str, instrument: InstrumentKind) -> str:
    """Translate an OTel metric name and unit into its Prometheus family name.

    >>> prometheus_name("scheduler.schedule.latency", "ms", InstrumentKind.HISTOGRAM)
    'scheduler_schedule_latency_milliseconds'
    >>> prometheus_name("scheduler.rejected_tasks", "{task}", InstrumentKind.COUNTER)
    'scheduler_rejected_tasks_total'
    """
    base = _sanitize(name)
    unit_word = _UNIT_WORDS.get(unit, _sanitize(_ANNOTATION.sub("", unit)))
    if unit_word and not base.endswith("_" + unit_word):
        base = f"{base}_{unit_word}"
    if instrument is InstrumentKind.COUNTER:
        base += "_total"
    return base


# --- attribute keys ---------------------------------------------------------

SCHEDULER_NAME = "scheduler.name"
SCHEDULER_KIND = "scheduler.kind"
SCHEDULER_QUEUE = "scheduler.queue"
SCHEDULER_TENANT = "scheduler.tenant"
ERROR_TYPE = "error.type"
#: The OpenTelemetry messaging convention's name for the queue a message was
#: routed to: a distributed scheduler's own queue names (Celery's routing queue).
DESTINATION = "messaging.destination.name"
UNRESOLVED_REASON = "scheduler.unresolved.reason"

PROCESSOR_STATE = "scheduler.processor.state"
THREAD_STATE = "scheduler.thread.state"
TASK_STATE = "scheduler.task.state"
SCALE_DIRECTION = "scheduler.scale.direction"

KINDS = ("gmp", "asyncio", "thread_pool", "celery", "custom")
PROCESSOR_STATES = ("busy", "idle")
THREAD_STATES = ("running", "spinning", "syscall", "idle")
TASK_STATES = ("runnable", "running", "syscall", "waiting")
SCALE_DIRECTIONS = ("out", "in")
QUEUES = ("global", "local", "ready", "timer", "work", "broker", "reserved")
REASONS = (
    "queue_full",
    "quota_exceeded",
    "constraint_violation",
    "shutdown",
    "revoked",
    "expired",
    "unknown_task",
    "invalid_message",
    OTHER,
)
UNRESOLVED_REASONS = ("negative", "within_uncertainty", "uncorrected")

_ATTRIBUTES = (
    AttributeSpec(
        SCHEDULER_NAME,
        "Name of the scheduler instance, given by the service (for example `ingest`). "
        "One value per scheduler object; never derived from task data.",
    ),
    AttributeSpec(
        SCHEDULER_KIND,
        "Which kind of scheduler produced the series.",
        KINDS,
    ),
    AttributeSpec(
        SCHEDULER_QUEUE,
        "Which queue the runnable tasks wait in: `global` and `local` (GMP run queues), "
        "`ready` and `timer` (event loops), `work` (thread-pool work queue), `broker` (a "
        "distributed task queue's broker, such as Celery's Redis lists) and `reserved` "
        "(tasks a worker has taken from the broker and holds until a slot is free: Celery's "
        "prefetched tasks).",
        QUEUES,
    ),
    AttributeSpec(
        SCHEDULER_TENANT,
        "Tenant the task belongs to. Capped per scheduler (default 64 distinct values); "
        f"tenants beyond the cap are reported as `{OTHER}`.",
    ),
    AttributeSpec(
        ERROR_TYPE,
        "Why a task was refused: `queue_full` (a bounded queue had no room), `quota_exceeded` "
        "(the tenant's quota would be exceeded), `constraint_violation` (the task's declared "
        "resources exceed the scheduler's limits), `shutdown` (the scheduler no longer accepts "
        "work), `revoked` (cancelled before it started), `expired` (its deadline passed before "
        "it started), `unknown_task` (no worker knows the task's name), `invalid_message` (the "
        f"message could not be read as a task), `{OTHER}` (any other reason).",
        REASONS,
    ),
    AttributeSpec(
        DESTINATION,
        "The queue a distributed scheduler routed the task to (Celery's routing queue, as "
        "named by the application). Capped per scheduler (default 32 distinct values); names "
        f"beyond the cap are reported as `{OTHER}`.",
    ),
    AttributeSpec(
        UNRESOLVED_REASON,
        "Why a latency measured across two hosts' clocks cannot be told apart from zero: "
        "`negative` (it came out below zero), `within_uncertainty` (it is smaller than the "
        "combined uncertainty of the two clock corrections), `uncorrected` (an end had no "
        "clock estimate, so the error is unknown).",
        UNRESOLVED_REASONS,
    ),
    AttributeSpec(
        PROCESSOR_STATE,
        "Whether a processor (a GMP P) is held by a thread that runs tasks (`busy`) or not.",
        PROCESSOR_STATES,
    ),
    AttributeSpec(
        THREAD_STATE,
        "What a scheduler thread (a GMP M) is doing: running tasks, spinning in search of "
        "work, blocked in a system call, or parked.",
        THREAD_STATES,
    ),
    AttributeSpec(
        SCALE_DIRECTION,
        "Whether the elastic processor pool grew (`out`) or shrank (`in`).",
        SCALE_DIRECTIONS,
    ),
    AttributeSpec(
        TASK_STATE,
        "Where a live task is: waiting in a run queue, running, inside a blocking call, or "
        "parked (sleeping, waiting on a channel or a wait group).",
        TASK_STATES,
    ),
)

# --- metrics ----------------------------------------------------------------

QUEUE_LENGTH = MetricSpec(
    name="scheduler.queue.length",
    instrument=InstrumentKind.GAUGE,
    unit="{task}",
    description=(
        "Number of runnable tasks waiting in a queue at collection time, per queue. "
        "Excludes running, blocked and sleeping tasks."
    ),
    required_attributes=(SCHEDULER_NAME, SCHEDULER_KIND, SCHEDULER_QUEUE),
    optional_attributes=(SCHEDULER_TENANT, DESTINATION),
)

SCHEDULE_LATENCY = MetricSpec(
    name="scheduler.schedule.latency",
    instrument=InstrumentKind.HISTOGRAM,
    unit="ms",
    description=(
        "Time from each transition of a task to runnable (enqueue, wake-up, re-enqueue after a "
        "yield or preemption) until it starts running. Time blocked, sleeping or gated by a "
        "quota is never counted. Where a task becomes runnable on one host and starts on "
        "another (a distributed task queue: publish, or a later ETA, until start), both ends "
        "are read on clocks corrected to a common reference; a value that still comes out "
        "negative is kept (counted in the lowest bucket and as the min; the sum, a counter in "
        "OpenMetrics, adds it as 0) and counted in scheduler.schedule.unresolved, never "
        "dropped."
    ),
    required_attributes=(SCHEDULER_NAME, SCHEDULER_KIND),
    optional_attributes=(SCHEDULER_QUEUE, SCHEDULER_TENANT, DESTINATION),
    boundaries=LATENCY_BOUNDARIES_MS,
)

REJECTED_TASKS = MetricSpec(
    name="scheduler.rejected_tasks",
    instrument=InstrumentKind.COUNTER,
    unit="{task}",
    description="Number of tasks refused admission, by reason. A refused task never ran.",
    required_attributes=(SCHEDULER_NAME, SCHEDULER_KIND, ERROR_TYPE),
    optional_attributes=(SCHEDULER_TENANT, DESTINATION),
)

# --- optional metrics of distributed schedulers (a task crosses hosts) ---------------

QUEUE_WAIT = MetricSpec(
    name="scheduler.queue.wait",
    instrument=InstrumentKind.HISTOGRAM,
    unit="ms",
    description=(
        "The part of scheduler.schedule.latency a task spent in one queue, where it passes "
        "through several: `broker` (publish until a worker received it, across two hosts' "
        "corrected clocks) and `reserved` (received until started, on the worker's own "
        "clock; for an ETA task, from when it became due). Not a second count of the same "
        "tasks in scheduler.schedule.latency: sum it only within one `scheduler.queue`."
    ),
    required_attributes=(SCHEDULER_NAME, SCHEDULER_KIND, SCHEDULER_QUEUE),
    optional_attributes=(SCHEDULER_TENANT, DESTINATION),
    boundaries=LATENCY_BOUNDARIES_MS,
    required=False,
)
UNRESOLVED = MetricSpec(
    name="scheduler.schedule.unresolved",
    instrument=InstrumentKind.COUNTER,
    unit="{task}",
    description=(
        "Schedule latencies measured across two hosts' clocks that the clock corrections "
        "cannot tell apart from zero, by reason. Each is also in "
        "scheduler.schedule.latency, as measured: this counts how much of that distribution "
        "the clocks cannot resolve."
    ),
    required_attributes=(SCHEDULER_NAME, SCHEDULER_KIND, UNRESOLVED_REASON),
    optional_attributes=(DESTINATION,),
    required=False,
)
RETRIED_TASKS = MetricSpec(
    name="scheduler.retried_tasks",
    instrument=InstrumentKind.COUNTER,
    unit="{task}",
    description=(
        "Tasks that asked to be run again after they started (Celery's Task.retry). The "
        "retry is a new publish: its schedule latency is measured afresh."
    ),
    required_attributes=(SCHEDULER_NAME, SCHEDULER_KIND),
    optional_attributes=(DESTINATION,),
    required=False,
)

DISTRIBUTED_METRICS = (QUEUE_WAIT, UNRESOLVED, RETRIED_TASKS)

# --- optional runtime metrics (schedulers that have the concepts export them) --------

_BASE = (SCHEDULER_NAME, SCHEDULER_KIND)

PROCESSORS = MetricSpec(
    name="scheduler.processors",
    instrument=InstrumentKind.GAUGE,
    unit="{processor}",
    description="Logical processors (the GMP P, the GOMAXPROCS analogue), by state.",
    required_attributes=(*_BASE, PROCESSOR_STATE),
    required=False,
)
THREADS = MetricSpec(
    name="scheduler.threads",
    instrument=InstrumentKind.GAUGE,
    unit="{thread}",
    description="Scheduler threads (the GMP M), by state.",
    required_attributes=(*_BASE, THREAD_STATE),
    required=False,
)
TASKS = MetricSpec(
    name="scheduler.tasks",
    instrument=InstrumentKind.GAUGE,
    unit="{task}",
    description="Live tasks (submitted, not finished), by state.",
    required_attributes=(*_BASE, TASK_STATE),
    required=False,
)
STEALS = MetricSpec(
    name="scheduler.steals",
    instrument=InstrumentKind.COUNTER,
    unit="{steal}",
    description="Times an idle processor took half of another processor's run queue.",
    required_attributes=_BASE,
    required=False,
)
HANDOFFS = MetricSpec(
    name="scheduler.handoffs",
    instrument=InstrumentKind.COUNTER,
    unit="{handoff}",
    description=(
        "Times the monitor took a processor from a thread blocked in a system call and gave "
        "it to another thread."
    ),
    required_attributes=_BASE,
    required=False,
)
PREEMPTIONS = MetricSpec(
    name="scheduler.preemptions",
    instrument=InstrumentKind.COUNTER,
    unit="{preemption}",
    description=(
        "Times a task that ran longer than the preemption threshold (10 ms) was made to yield "
        "at its next checkpoint."
    ),
    required_attributes=_BASE,
    required=False,
)
COMPLETED_TASKS = MetricSpec(
    name="scheduler.completed_tasks",
    instrument=InstrumentKind.COUNTER,
    unit="{task}",
    description="Tasks that finished (returned, raised or were cancelled before starting).",
    required_attributes=_BASE,
    required=False,
)

SCALE_EVENTS = MetricSpec(
    name="scheduler.scale_events",
    instrument=InstrumentKind.COUNTER,
    unit="{event}",
    description="Decisions of the elastic processor pool's autoscaler, by direction.",
    required_attributes=(*_BASE, SCALE_DIRECTION),
    required=False,
)

GC_THRESHOLD = MetricSpec(
    name="scheduler.gc.threshold",
    instrument=InstrumentKind.GAUGE,
    unit="{allocation}",
    description=(
        "CPython's generation-0 garbage-collection threshold as set by the runtime's opt-in "
        "GC tuner (net allocations between young collections)."
    ),
    required_attributes=_BASE,
    required=False,
)

RUNTIME_METRICS = (
    PROCESSORS,
    THREADS,
    TASKS,
    STEALS,
    HANDOFFS,
    PREEMPTIONS,
    COMPLETED_TASKS,
    SCALE_EVENTS,
    GC_THRESHOLD,
)

# --- optional clock-compensation metrics (hosts that probe a reference clock) ------

CLOCK_OFFSET = MetricSpec(
    name="clock.offset",
    instrument=InstrumentKind.GAUGE,
    unit="ns",
    description=(
        "Estimated offset of this host's clock: reference time minus local time, now. "
        "Exported timestamps are corrected by it."
    ),
    required_attributes=(),
    required=False,
    signed=True,
)
CLOCK_UNCERTAINTY = MetricSpec(
    name="clock.offset.uncertainty",
    instrument=InstrumentKind.GAUGE,
    unit="ns",
    description=(
        "One-sigma uncertainty of clock.offset, including priors for the path asymmetry "
        "that a two-way exchange cannot measure."
    ),
    required_attributes=(),
    required=False,
)
CLOCK_PROBE_RTT = MetricSpec(
    name="clock.probe.rtt",
    instrument=InstrumentKind.GAUGE,
    unit="ns",
    description="Round-trip time of the last clock probe to the reference server.",
    required_attributes=(),
    required=False,
)

CLOCK_PROBE_OUTCOME = "clock.probe.outcome"
CLOCK_PROBE_OUTCOMES = ("sample", "lost", "kiss", "unsynchronised", "invalid")
CLOCK_PROBES = MetricSpec(
    name="clock.probes",
    instrument=InstrumentKind.COUNTER,
    unit="{probe}",
    description=(
        "Clock probes by outcome: `sample` (the estimator used it), `lost` (no valid reply in "
        "time), `kiss` (an NTP kiss-o'-death), `unsynchronised` (the server is not synchronised "
        "itself), `invalid` (a forged, malformed or impossible reply)."
    ),
    required_attributes=(CLOCK_PROBE_OUTCOME,),
    required=False,
)
CLOCK_LAST_SAMPLE = MetricSpec(
    name="clock.probe.last_sample",
    instrument=InstrumentKind.GAUGE,
    unit="s",
    description=(
        "Unix time of the last probe that produced a sample; absent before the first. "
        "Alert on its age: the reference has stopped answering."
    ),
    required_attributes=(),
    required=False,
)

CLOCK_METRICS = (CLOCK_OFFSET, CLOCK_UNCERTAINTY, CLOCK_PROBE_RTT, CLOCK_PROBES, CLOCK_LAST_SAMPLE)

#: Self-metric: observations that the recorder refused to aggregate.
DROPPED_OBSERVATIONS = MetricSpec(
    name="schedobs.observations.dropped",
    instrument=InstrumentKind.COUNTER,
    unit="{observation}",
    description=(
        "Latency observations that were NaN, infinite or negative and therefore left out of "
        "scheduler.schedule.latency, by reason (`nan`, `infinite`, `negative`)."
    ),
    required_attributes=(SCHEDULER_NAME, SCHEDULER_KIND, "reason"),
    required=False,
)

DROP_REASONS = ("nan", "infinite", "negative")

SPAN_DROP_REASON = "schedobs.drop.reason"
SPAN_DROP_REASONS = ("queue_full", "export_failed")

#: Self-metric: spans that never reached the collector.
DROPPED_SPANS = MetricSpec(
    name="schedobs.spans.dropped",
    instrument=InstrumentKind.COUNTER,
    unit="{span}",
    description=(
        "Spans lost on the way out: the batch queue was full (`queue_full`) or the exporter "
        "gave up on their batch (`export_failed`). Logged once, counted here."
    ),
    required_attributes=(SPAN_DROP_REASON,),
    required=False,
)

#: Self-metric: metric exports that did not reach the collector.
FAILED_METRIC_EXPORTS = MetricSpec(
    name="schedobs.metric_exports.failed",
    instrument=InstrumentKind.COUNTER,
    unit="{export}",
    description=(
        "OTLP metric exports that failed (the collector unreachable, refusing or too slow). "
        "The contract's metrics are cumulative, so the next successful export carries every "
        "count; what a failure costs is the points in between. Logged once per outage."
    ),
    required_attributes=(),
    required=False,
)

CONTRACT = Contract(
    version=CONTRACT_VERSION,
    metrics=(
        QUEUE_LENGTH,
        SCHEDULE_LATENCY,
        REJECTED_TASKS,
        *DISTRIBUTED_METRICS,
        *RUNTIME_METRICS,
        *CLOCK_METRICS,
        DROPPED_OBSERVATIONS,
        DROPPED_SPANS,
        FAILED_METRIC_EXPORTS,
    ),
    attributes=MappingProxyType(
        {spec.key: spec for spec in _ATTRIBUTES}
        | {"reason": AttributeSpec("reason", "Why an observation was dropped.", DROP_REASONS)}
        | {
            CLOCK_PROBE_OUTCOME: AttributeSpec(
                CLOCK_PROBE_OUTCOME, "What became of a clock probe.", CLOCK_PROBE_OUTCOMES
            )
        }
        | {
            SPAN_DROP_REASON: AttributeSpec(
                SPAN_DROP_REASON, "Why a span was lost before export.", SPAN_DROP_REASONS
            )
        }
    ),
)
