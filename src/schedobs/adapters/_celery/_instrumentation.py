"""``CeleryInstrumentation``: the metric contract for Celery, across producers and workers.

Where each number comes from (Celery's signals; ``P`` producer process, ``W``
the worker's main process, ``C`` a prefork pool child)::

    P  before_task_publish  stamp the message: corrected publish time, its σ,
                            the ETA corrected by the producer's clock
    W  task_received        broker wait = received − publish (two clocks);
                            remember when, for the reserved wait
    C  task_prerun          start time and trace ids ──relay──► W records:
                            latency = start − max(publish, ETA) (two clocks),
                            reserved wait = start − received (one clock)
    C  task_retry           ──relay──► W counts a retry
    W  task_rejected, task_unknown, task_revoked    rejections, by reason
    W  collection           tasks reserved on this worker; broker queue
                            lengths where asked for (kombu's passive declare)

Every latency keeps its sign: a negative one, or one within its uncertainty
of zero, is recorded as measured and also counted in
``scheduler.schedule.unresolved`` (see :mod:`._timing`).  The pool children
send what they see to the main process (:mod:`._relay`), which owns the
metrics, the clock estimate and the export; with the solo or threads pool
everything happens in one process and nothing is relayed.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from opentelemetry import trace as otel_trace

from schedobs.contract import (
    DEFAULT_DESTINATION_CAP,
    DESTINATION,
    OTHER,
    QUEUE_LENGTH,
    QUEUE_WAIT,
    REJECTED_TASKS,
    RETRIED_TASKS,
    SCHEDULE_LATENCY,
    SCHEDULER_QUEUE,
    UNRESOLVED,
    UNRESOLVED_REASON,
    UNRESOLVED_REASONS,
    LatencyHistogram,
    Observation,
    Registry,
    RejectionCounter,
    SchedulerMetrics,
    exemplars,
)

from ._broker import BrokerQueues
from ._relay import Record, Relay, current_pid
from ._timing import HEADER, ClockSource, CorrectedClock, PublishStamp, Reading, TaskTiming, measure

__all__ = ["CeleryInstrumentation"]

_log = logging.getLogger("schedobs")

#: Received-but-not-started tasks remembered for the reserved wait.  A worker
#: holds at most its prefetch window plus its ETA tasks; beyond this the oldest
#: entries go (their start is still measured, without the split).
MAX_PENDING = 100_000
#: Distinct raw queue names whose series handles are cached; past the cap they
#: all fold into ``_OTHER`` anyway, so more entries would only cost memory.
_MAX_CACHED_QUEUES = 256
_SAMPLED = 0x01


class _QueueSeries:
    """The series handles of one routing queue (its name folded by the cap)."""

    __slots__ = ("broker", "destination", "latency", "reserved", "retried", "unresolved")

    def __init__(self, metrics: SchedulerMetrics, queue: str) -> None:
        dest = {DESTINATION: queue}
        self.latency: LatencyHistogram = metrics.histogram(SCHEDULE_LATENCY, dest)
        self.destination: str = self.latency.attributes[DESTINATION]
        self.broker = metrics.histogram(QUEUE_WAIT, {SCHEDULER_QUEUE: "broker", **dest})
        self.reserved = metrics.histogram(QUEUE_WAIT, {SCHEDULER_QUEUE: "reserved", **dest})
        self.retried: RejectionCounter = metrics.counter(RETRIED_TASKS, dest)
        self.unresolved = {
            reason: metrics.counter(UNRESOLVED, {UNRESOLVED_REASON: reason, **dest})
            for reason in UNRESOLVED_REASONS
        }


class CeleryInstrumentation:
    """The scheduler contract for a Celery application (``scheduler.kind=celery``).

    Install it in every process that publishes or runs tasks, at import time of
    the module that defines the app (before a worker forks its pool)::

        telemetry = schedobs.configure("billing-worker",
                                       clock_reference=app.conf.broker_url)
        CeleryInstrumentation(app, clock=telemetry.clock.estimator).install()

    Args:
        app: the Celery application (needed for ``broker_queues``).
        name: the ``scheduler.name`` of every series.
        clock: corrects this host's clock (``telemetry.clock.estimator``).
            Without one, latencies across hosts are the raw clocks' difference
            and are counted as ``unresolved{reason=uncorrected}``.
        registry: where the series are collected (default: the process-wide one).
        broker_queues: report ``scheduler.queue.length{scheduler.queue=broker}``
            for these queue names, read from the broker at each collection;
            ``"auto"`` for the queues the app declares.  Enable it in one
            process per broker: the length is the broker's, not this process's.
        destination_cap: distinct queue names reported before ``_OTHER``.
        on_timing: called with a :class:`TaskTiming` for every task started
            (in the worker's main process); for logs or tests.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        name: str = "celery",
        clock: ClockSource | None = None,
        registry: Registry | None = None,
        broker_queues: Sequence[str] | str | None = None,
        destination_cap: int = DEFAULT_DESTINATION_CAP,
        on_timing: Callable[[TaskTiming], None] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if clock is not None and not callable(getattr(clock, "estimate", None)):
            raise TypeError(
                "clock must be a clock estimator (telemetry.clock.estimator), "
                f"got {type(clock).__name__}"
            )
        if on_timing is not None and not callable(on_timing):
            raise TypeError(f"on_timing must be callable, got {type(on_timing).__name__}")
        queues = self._broker_queue_names(app, broker_queues)
        self.metrics = SchedulerMetrics(
            name, kind="celery", registry=registry, destination_cap=destination_cap
        )
        self.app = app
        self._clock = CorrectedClock(clock, clock_ns)
        self._clock_ns = clock_ns
        self._on_timing = on_timing
        self._relay = Relay(self._record)
        self._queues: dict[str, _QueueSeries] = {}
        # task id -> (received reading, its monotonic time, the decoded stamp), oldest first
        self._pending: OrderedDict[str, tuple[Reading, int, PublishStamp | None]] = OrderedDict()
        self._rejections: dict[tuple[str, str], RejectionCounter] = {}
        self._broker = None if not queues else BrokerQueues(app, queues)
        self._reserved_seen: set[str] = set()
        self._installed = False
        self._on_worker = False
        self._last_checked = 0  # the process that last put our prerun receiver last
        self._complained: set[str] = set()
        #: Tasks started without a schedobs stamp (published by an uninstrumented producer).
        self.unstamped = 0
        #: Received tasks forgotten before they started (more than ``MAX_PENDING`` waiting).
        self.evicted = 0
        if self._broker is not None:
            self.metrics.register_callback(self._broker_lengths)
        if clock is None:
            _log.info(
                "CeleryInstrumentation(%r) has no clock: latencies across hosts are not "
                "corrected and are counted as unresolved",
                name,
            )

    # --- lifecycle -----------------------------------------------------------------

    def install(self) -> CeleryInstrumentation:
        """Connect to Celery's signals (idempotent)."""
        if self._installed:
            return self
        for signal, receiver in self._receivers():
            signal.connect(receiver, weak=False, dispatch_uid=self._uid(signal))
        self._installed = True
        return self

    def uninstall(self) -> None:
        """Disconnect, stop relaying, and stop exporting these series (idempotent)."""
        if not self._installed:
            return
        self._installed = False
        for signal, _ in self._receivers():
            signal.disconnect(dispatch_uid=self._uid(signal))
        self._relay.close()
        if self._broker is not None:
            self._broker.close()
        self.metrics.close()

    def _uid(self, signal: Any) -> str:
        return f"schedobs-{id(self)}-{signal.name}"

    def _receivers(self) -> list[tuple[Any, Callable[..., None]]]:
        from celery import signals

        return [
            (signals.before_task_publish, self._on_publish),
            (signals.task_received, self._on_received),
            (signals.task_prerun, self._on_prerun),
            (signals.task_retry, self._on_retry),
            (signals.task_rejected, self._on_rejected),
            (signals.task_unknown, self._on_unknown),
            (signals.task_revoked, self._on_revoked),
            (signals.worker_init, self._on_worker_init),
            (signals.worker_ready, self._on_worker_ready),
            (signals.worker_process_init, self._on_process_init),
            (signals.worker_shutdown, self._on_worker_shutdown),
        ]

    @staticmethod
    def _broker_queue_names(app: Any, queues: Sequence[str] | str | None) -> tuple[str, ...]:
        if queues is None:
            return ()
        if app is None:
            raise ValueError("broker_queues needs the Celery app (CeleryInstrumentation(app, ...))")
        if queues == "auto":
            names = tuple(app.amqp.queues) or (app.conf.task_default_queue,)
        elif isinstance(queues, str) or not all(isinstance(q, str) and q for q in queues):
            raise TypeError(
                f"broker_queues must be 'auto' or a list of queue names, got {queues!r}"
            )
        else:
            names = tuple(queues)
        return tuple(dict.fromkeys(names))

    # --- producer ------------------------------------------------------------------

    def _on_publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is None:  # task protocol 1 carries no headers: nothing to stamp
            self._complain_once("protocol1", "a task message without headers (task protocol 1) "
                                "cannot carry the publish stamp; use protocol 2")  # fmt: skip
            return
        reading = self._clock.read()
        eta_reading = None
        eta = headers.get("eta")
        if eta:
            eta_raw = _eta_ns(eta)
            if eta_raw is None:
                self._complain_once("eta", "an unreadable ETA %r: the task is measured from "
                                    "its publish", eta)  # fmt: skip
            else:
                eta_reading = self._clock.read(at_ns=eta_raw)
        headers[HEADER] = PublishStamp.at(reading, eta_reading).encode()

    # --- worker: the main process --------------------------------------------------

    def _on_worker_init(self, **_: Any) -> None:
        self._on_worker = True
        self._relay.open()  # before the pool forks: the children inherit it
        self.metrics.register_callback(self._reserved_lengths)
        self._run_last()

    def _on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        # The pool children relay through a pipe that the main process reads in its
        # own event loop (no thread of ours to fight the loop for the GIL).
        hub = getattr(sender, "hub", None)
        if hub is not None and callable(getattr(hub, "add_reader", None)):
            self._relay.attach(hub)
        else:
            self._relay.start_thread()

    def _on_worker_shutdown(self, **_: Any) -> None:
        self._relay.close()  # records already sent by the children are recorded first

    def _on_received(self, request: Any = None, **_: Any) -> None:
        if request is None:
            return
        raw, monotonic = self._now()
        now = self._clock.read(at_ns=raw)  # after the readings: it may wait for the prober
        series = self._series(_queue_of(request.delivery_info))
        stamp = PublishStamp.decode(request.request_dict.get(HEADER))
        if stamp is not None:
            series.broker.observe_signed((now.corrected_ns - stamp.corrected_ns) / 1e6)
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            pending.popitem(last=False)  # the oldest: O(1), however many came and went
            self.evicted += 1
        pending[request.id] = (now, monotonic, stamp)

    def _on_rejected(self, message: Any = None, **_: Any) -> None:
        self._reject("invalid_message", getattr(message, "delivery_info", None))

    def _on_unknown(self, message: Any = None, **_: Any) -> None:
        self._reject("unknown_task", getattr(message, "delivery_info", None))

    def _on_revoked(
        self, request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
    ) -> None:
        task_id = getattr(request, "id", None)
        if task_id is not None:
            self._pending.pop(task_id, None)
        if terminated:
            return  # it had started: a cancellation, not a refusal
        self._reject("expired" if expired else "revoked", getattr(request, "delivery_info", None))

    def _reject(self, reason: str, delivery_info: Mapping[str, Any] | None) -> None:
        queue = self._series(_queue_of(delivery_info)).destination
        counter = self._rejections.get((reason, queue))
        if counter is None:
            counter = self.metrics.counter(REJECTED_TASKS, {"error.type": reason,
                                                            DESTINATION: queue})  # fmt: skip
            self._rejections[(reason, queue)] = counter
        counter.add()

    # --- worker: where the task runs (a pool child, or the main process) -----------------

    def _on_prerun(self, task_id: str | None = None, task: Any = None, **_: Any) -> None:
        start, monotonic = self._now()
        if self._last_checked != self._pid():
            self._run_last()  # from the next task on, if another receiver came after us
        if task_id is None or task is None:
            return
        request = task.request
        headers = getattr(request, "headers", None) or {}
        stamp = headers.get(HEADER) if isinstance(headers, dict) else None
        if stamp is None:
            stamp = getattr(request, HEADER, None)
        trace_id, span_id = _trace_ids(task, task_id)
        record: Record = ("start", task_id, start, monotonic, stamp,
                          _queue_of(request.delivery_info), trace_id, span_id)  # fmt: skip
        self._deliver(record)

    def _on_retry(self, request: Any = None, **_: Any) -> None:
        self._deliver(("retry", _queue_of(getattr(request, "delivery_info", None))))

    def _on_process_init(self, **_: Any) -> None:
        self._relay.after_fork_in_child()
        self._run_last()

    def _run_last(self) -> None:
        """Make our ``task_prerun`` receiver the last one, so that the span which
        OpenTelemetry's Celery instrumentation opens there exists when we look for
        the task's trace, whichever was installed first."""
        from celery import signals

        self._last_checked = self._pid()
        uid = self._uid(signals.task_prerun)
        receivers = getattr(signals.task_prerun, "receivers", None)
        if self._installed and receivers and receivers[-1][0][0] != uid:
            signals.task_prerun.disconnect(dispatch_uid=uid)
            signals.task_prerun.connect(self._on_prerun, weak=False, dispatch_uid=uid)

    @staticmethod
    def _pid() -> int:
        return current_pid()

    def _deliver(self, record: Record) -> None:
        if self._relay.in_child():
            self._relay.send(record)
        else:
            self._record(record)

    # --- recording (the main process) -------------------------------------------------

    def _record(self, record: Record) -> None:
        kind = record[0]
        if kind == "retry":
            self._series(str(record[1])).retried.add()
        elif kind == "start":
            self._started(*record[1:])

    def _started(
        self,
        task_id: str,
        start_ns: int,
        monotonic_ns: int,
        stamp_value: object,
        queue: str,
        trace_id: int,
        span_id: int,
    ) -> None:
        pending = self._pending.pop(task_id, None)
        series = self._series(queue)
        received: tuple[Reading, int] | None = None
        stamp: PublishStamp | None = None
        if pending is not None:
            received, stamp = (pending[0], pending[1]), pending[2]  # decoded on receipt
        if stamp is None:
            stamp = PublishStamp.decode(stamp_value)
        if stamp is None:
            self.unstamped += 1
            self._complain_once("unstamped", "tasks arrive without schedobs' publish stamp: "
                                "install CeleryInstrumentation on the producers too; their "
                                "publish → start latency cannot be measured")  # fmt: skip
            if received is not None:
                series.reserved.observe_signed((monotonic_ns - received[1]) / 1e6)
            return
        timing = measure(task_id, queue, stamp, self._clock.read(at_ns=start_ns), monotonic_ns,
                         received)  # fmt: skip
        series.latency.observe_signed(timing.latency_ms, trace_id=trace_id, span_id=span_id)
        if timing.unresolved is not None:
            series.unresolved[timing.unresolved].add()
        if timing.reserved_ms is not None:
            series.reserved.observe_signed(timing.reserved_ms)
        if self._on_timing is not None:
            try:
                self._on_timing(timing)
            except Exception:
                self._complain_once("on_timing", "the on_timing callback raised",
                                    exc_info=True)  # fmt: skip

    def _now(self) -> tuple[int, int]:
        """The wall clock and the monotonic clock at one instant.

        The wall reading is bracketed by two monotonic ones and paired with their
        middle: a thread preempted between two plain readings would pair them
        with its time slice in between (the reserved wait is monotonic, the
        latency wall-clock; they must describe the same instant).
        """
        before = time.monotonic_ns()
        wall = self._clock_ns()
        return wall, (before + time.monotonic_ns()) // 2

    def _series(self, queue: str) -> _QueueSeries:
        series = self._queues.get(queue)
        if series is None:
            series = _QueueSeries(self.metrics, queue)
            if len(self._queues) < _MAX_CACHED_QUEUES:
                self._queues[queue] = series
        return series

    # --- queue lengths, read at collection ---------------------------------------------

    def _reserved_lengths(self) -> Iterable[Observation]:
        """Tasks this worker holds that have not started (prefetched), per queue."""
        from celery.worker import state

        # list() copies under the GIL: the consumer thread adds and removes meanwhile.
        reserved = list(state.reserved_requests)
        active = set(state.active_requests)
        counts = dict.fromkeys(self._reserved_seen, 0)
        for request in reserved:
            if request in active:
                continue
            name = self._series(_queue_of(request.delivery_info)).destination
            counts[name] = counts.get(name, 0) + 1
        self._reserved_seen.update(counts)
        return [
            (QUEUE_LENGTH, {SCHEDULER_QUEUE: "reserved", DESTINATION: name}, count)
            for name, count in counts.items()
        ]

    def _broker_lengths(self) -> Iterable[Observation]:
        assert self._broker is not None
        lengths = self._broker.read()
        if lengths is None:
            return []
        counts: dict[str, int] = {}
        for queue, count in lengths.items():
            name = self._series(queue).destination
            counts[name] = counts.get(name, 0) + count
        return [
            (QUEUE_LENGTH, {SCHEDULER_QUEUE: "broker", DESTINATION: name}, count)
            for name, count in counts.items()
        ]

    def broker_queue_lengths(self) -> dict[str, int] | None:
        """The broker's queue lengths now (``None`` without ``broker_queues`` or on error)."""
        return None if self._broker is None else self._broker.read()

    def _complain_once(
        self, what: str, message: str, *args: object, exc_info: bool = False
    ) -> None:
        if what not in self._complained:
            self._complained.add(what)
            _log.warning("CeleryInstrumentation: " + message + " (logged once)", *args,
                         exc_info=exc_info)  # fmt: skip

    def __repr__(self) -> str:
        return f"CeleryInstrumentation(name={self.metrics.name!r}, installed={self._installed})"


def _queue_of(delivery_info: Mapping[str, Any] | None) -> str:
    """The routing queue of a message: its routing key, which under Celery's default
    routing is the queue's name."""
    if not delivery_info:
        return OTHER
    key = delivery_info.get("routing_key")
    return key if isinstance(key, str) and key else OTHER


def _eta_ns(value: object) -> int | None:
    """A task's ETA (an ISO 8601 string in the message, or a datetime) in Unix ns."""
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return round(when.timestamp() * 1e9)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _trace_ids(task: Any, task_id: str) -> tuple[int, int]:
    """The sampled span the task runs in: OpenTelemetry's Celery instrumentation keeps
    it on the task; else the current span.  ``(0, 0)`` without one or with
    exemplars off."""
    if exemplars.context_var is None:
        return 0, 0
    span = None
    stored = getattr(task, "__otel_task_span", None)  # opentelemetry-instrumentation-celery
    if isinstance(stored, dict):
        entry = stored.get((task_id, False))
        if entry:
            span = entry[0]
    if span is None:
        span = otel_trace.get_current_span()
    context = span.get_span_context()
    if not context.trace_flags & _SAMPLED or not context.trace_id:
        return 0, 0
    return context.trace_id, context.span_id
