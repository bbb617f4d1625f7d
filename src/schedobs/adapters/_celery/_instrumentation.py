"""``CeleryInstrumentation``: the metric contract for Celery, across producers and workers.

Where each number comes from (Celery's signals; ``P`` producer process, ``W``
the worker's main process, ``C`` where the task runs: a prefork pool child)::

    P  before_task_publish  stamp the message: corrected publish time, its σ,
                            the ETA corrected by the producer's clock
    W  task_received        note when (the monotonic clock) in the task's
                            request, which travels to the child with the task
    C  task_prerun          start; with W's clock line (shared memory) compute
                            latency = start − max(publish, ETA) (two clocks),
                            reserved wait = start − received (one clock),
                            broker wait = received − publish, the receipt placed
                            back from the start (so the two add up)
                            ──relay──► W records them, with the trace ids
    C  task_retry           ──relay──► W counts a retry
    W  task_rejected, task_unknown, task_revoked    rejections, by reason
    W  collection           tasks reserved on this worker; broker queue
                            lengths where asked for (kombu's passive declare)

The worker's main process is its bottleneck (it receives, dispatches and
acknowledges every message), so the arithmetic happens in the children and
the main process only records: measured in a real worker, its share fell
from ~47 µs to ~15 µs of CPU per task.  Every latency keeps its sign: a
negative one, or one within its uncertainty of zero, is recorded as measured
and also counted in ``scheduler.schedule.unresolved`` (see :mod:`._timing`).
With the solo or threads pool everything happens in one process and nothing
is relayed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from opentelemetry import trace as otel_trace

from schedobs._pairing import read_pair
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
from ._clockline import REFRESH_S, SharedClockLine
from ._relay import Record, Relay, current_pid
from ._timing import HEADER, ClockSource, CorrectedClock, PublishStamp, Reading, TaskTiming, measure

__all__ = ["CeleryInstrumentation"]

_log = logging.getLogger("schedobs")

#: The key under which the worker's main process notes, in a task's request, when
#: the message arrived: ``[wall ns, monotonic ns]``.  The request goes to the pool
#: child with the task (where it is ``task.request.schedobs_received``).
RECEIVED = "schedobs_received"
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
                                       clock=app.conf.broker_url)
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
        self._line: SharedClockLine | None = None  # the main process's clock, for its children
        self._queues: dict[str, _QueueSeries] = {}
        self._rejections: dict[tuple[str, str], RejectionCounter] = {}
        self._broker = None if not queues else BrokerQueues(app, queues)
        self._reserved_seen: set[str] = set()
        self._installed = False
        self._on_worker = False
        self._last_checked = 0  # the process that last put our prerun receiver last
        self._complained: set[str] = set()
        #: Tasks started without a schedobs stamp (published by an uninstrumented producer).
        self.unstamped = 0
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
        # Before the pool forks: the children inherit the pipe and the shared line.
        self._relay.open()
        self._line = SharedClockLine()
        self._clock.on_line = self._line.publish
        self._clock.read()  # publishes the first line, if there is an estimate
        self.metrics.register_callback(self._reserved_lengths)
        self._run_last()

    def _on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        # The queues this worker consumes report 0 reserved tasks from the start,
        # rather than no series until a task happens to wait at a collection.
        consumer = getattr(sender, "task_consumer", None)
        for queue in getattr(consumer, "queues", None) or ():
            name = getattr(queue, "name", None)
            if isinstance(name, str) and name:
                self._reserved_seen.add(self._series(name).destination)
        # The pool children relay through a pipe that the main process drains on a
        # timer of its own event loop — no thread of ours to fight the loop for the
        # GIL, no wake-up per task — which also keeps the shared clock line fresh.
        hub = getattr(sender, "hub", None)
        if hub is not None and callable(getattr(hub, "call_repeatedly", None)):
            self._relay.attach(hub)
            hub.call_repeatedly(REFRESH_S, self._refresh_line)
        else:
            self._relay.start_thread(tick=self._refresh_line, every=REFRESH_S)

    def _refresh_line(self) -> None:
        try:
            self._clock.read()  # a new line is published when the estimate changed
        except Exception:  # a timer of the worker's loop must never raise into it
            self._complain_once("line", "the shared clock line could not be refreshed",
                                exc_info=True)  # fmt: skip

    def _on_worker_shutdown(self, **_: Any) -> None:
        self._relay.close()  # records already sent by the children are recorded first

    def _on_received(self, request: Any = None, **_: Any) -> None:
        if request is None:
            return
        # The main process only notes the time (it is the worker's bottleneck); the
        # note travels with the task to where it starts.  The monotonic clock alone:
        # the start's wall reading places it (see measure()), so a thread preempted
        # here cannot tear a wall/monotonic pair apart.
        request.request_dict[RECEIVED] = time.monotonic_ns()

    def _on_rejected(self, message: Any = None, **_: Any) -> None:
        self._reject("invalid_message", getattr(message, "delivery_info", None))

    def _on_unknown(self, message: Any = None, **_: Any) -> None:
        self._reject("unknown_task", getattr(message, "delivery_info", None))

    def _on_revoked(
        self, request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
    ) -> None:
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
        # Once per task, where the task starts (in a busy pool child): few steps.  The
        # latency is wall-clock, the reserved wait and start_monotonic_ns monotonic:
        # one instant, read so that a preemption does not split it.
        start, monotonic, _spread = read_pair(self._clock_ns, time.monotonic_ns)
        if self._last_checked != current_pid():
            self._run_last()  # from the next task on, if another receiver came after us
        if task_id is None or task is None:
            return
        request = task.request
        queue = _queue_of(request.delivery_info)
        stamp = PublishStamp.decode(getattr(request, HEADER, None))
        received = _received(getattr(request, RECEIVED, None))
        if stamp is None:
            reserved = None if received is None else (monotonic - received) / 1e6
            self._deliver(("unstamped", queue, reserved))
            return
        timing = measure(task_id, queue, stamp, self._correct(start), monotonic, received)
        self._deliver(("started", *timing, *_trace_ids(task, task_id)))

    def _correct(self, raw_ns: int) -> Reading:
        """A reading of this host's clock, corrected: in a pool child by the main
        process's current line, else (or without one) by this process's estimator."""
        line = self._line
        if line is not None and self._relay.in_child():
            reading = line.read(raw_ns)
            if reading is not None:
                return reading
        return self._clock.read(at_ns=raw_ns)

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
        if kind == "started":
            self._started(record)
        elif kind == "retry":
            self._series(str(record[1])).retried.add()
        elif kind == "unstamped":
            self.unstamped += 1
            self._complain_once("unstamped", "tasks arrive without schedobs' publish stamp: "
                                "install CeleryInstrumentation on the producers too; their "
                                "publish → start latency cannot be measured")  # fmt: skip
            if record[2] is not None:
                self._series(str(record[1])).reserved.observe_signed(record[2])

    def _started(self, record: Record) -> None:
        """Record one task's timing: ``("started", *TaskTiming fields, trace_id, span_id)``."""
        _, _task_id, queue, latency, _sigma, _bound, _raw, broker, reserved, _eta, unresolved = (
            record[:11]
        )
        series = self._series(queue)
        series.latency.observe_signed(latency, trace_id=record[-2], span_id=record[-1])
        if unresolved is not None:
            series.unresolved[unresolved].add()
        if broker is not None:
            series.broker.observe_signed(broker)
        if reserved is not None:
            series.reserved.observe_signed(reserved)
        if self._on_timing is not None:
            try:
                self._on_timing(TaskTiming(*record[1:-2]))
            except Exception:
                self._complain_once("on_timing", "the on_timing callback raised",
                                    exc_info=True)  # fmt: skip

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
        counts = dict.fromkeys(list(self._reserved_seen), 0)  # list(): a copy under the GIL
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


def _received(value: object) -> int | None:
    """The main process's note of when a message arrived (monotonic ns), if it is one."""
    return value if type(value) is int and value > 0 else None


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
    var = exemplars.context_var
    if var is None:
        return 0, 0
    span = None
    stored = getattr(task, "__otel_task_span", None)  # opentelemetry-instrumentation-celery
    if stored:
        entry = stored.get((task_id, False))
        if entry:
            span = entry[0]
    if span is None:
        if not var.get(None):  # no OpenTelemetry context at all: no span (the cheap case)
            return 0, 0
        span = otel_trace.get_current_span()
    context = span.get_span_context()
    if not context.trace_flags & _SAMPLED or not context.trace_id:
        return 0, 0
    return context.trace_id, context.span_id
