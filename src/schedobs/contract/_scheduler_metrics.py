"""SchedulerMetrics: the contract's recording API for one scheduler instance."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

from schedobs._checks import is_number

from ._exemplars import Exemplar
from ._instruments import LatencyHistogram, QueueLengthGauge, RejectionCounter
from ._points import CounterPoint, GaugePoint, HistogramPoint, Point
from ._registry import REGISTRY, Registry
from ._spec import CONTRACT as _CONTRACT
from ._spec import (
    DESTINATION,
    DROPPED_OBSERVATIONS,
    ERROR_TYPE,
    KINDS,
    OTHER,
    QUEUE_LENGTH,
    QUEUES,
    REASONS,
    REJECTED_TASKS,
    SCHEDULE_LATENCY,
    SCHEDULER_KIND,
    SCHEDULER_NAME,
    SCHEDULER_QUEUE,
    SCHEDULER_TENANT,
    InstrumentKind,
    MetricSpec,
)

__all__ = [
    "DEFAULT_DESTINATION_CAP",
    "DEFAULT_TENANT_CAP",
    "MAX_LABEL_LENGTH",
    "SchedulerMetrics",
]

#: Distinct tenants a scheduler reports before folding the rest into ``_OTHER``.
DEFAULT_TENANT_CAP = 64
#: Distinct queue names (``messaging.destination.name``) a scheduler reports
#: before folding the rest into ``_OTHER``: queues are fewer than tenants, and
#: each one multiplies the histogram series of every other attribute.
DEFAULT_DESTINATION_CAP = 32
#: Longest scheduler or tenant name accepted.
MAX_LABEL_LENGTH = 128

_log = logging.getLogger("schedobs")
# Makes shared()'s look-up-or-create one step (the registry's own lock is not reentrant).
_SHARED_LOCK = threading.Lock()
_Key = tuple[str | None, str | None]
#: A series of any contract metric: its name and its sorted attribute items.
_SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
_Handle = LatencyHistogram | RejectionCounter | QueueLengthGauge
#: A pre-aggregated histogram value: bucket counts (one per contract boundary,
#: plus the overflow bucket), sum, min and max, all cumulative, in the metric's unit.
HistogramValue = (
    tuple[Sequence[int], float, float, float]
    | tuple[Sequence[int], float, float, float, tuple[Exemplar | None, ...]]
)
#: What a pull callback reports: a contract metric, the attributes beyond
#: ``scheduler.name``/``scheduler.kind``, and the current value (an int for
#: gauges and counters, a :data:`HistogramValue` for histograms).
Observation = tuple[MetricSpec, Mapping[str, str], "int | HistogramValue"]
_H = TypeVar("_H", LatencyHistogram, RejectionCounter, QueueLengthGauge)


class SchedulerMetrics:
    """The contract metrics of one scheduler instance.

    >>> from schedobs.contract import Registry, SchedulerMetrics
    >>> metrics = SchedulerMetrics("ingest", kind="custom", registry=Registry())
    >>> latency = metrics.latency(queue="work")      # resolve the series once ...
    >>> latency.observe(0.42)                         # ... record on the hot path
    >>> metrics.reject("queue_full", tenant="acme")
    >>> metrics.set_queue_length(3, queue="work")

    Every recording call is thread-safe.  Attribute values are validated when a
    series is first used: an unknown queue, kind or reason is a ``ValueError``
    naming the allowed values; a value of the wrong type is a ``TypeError``.
    Tenants beyond ``tenant_cap`` distinct values, and queue names
    (``messaging.destination.name``) beyond ``destination_cap``, are reported as
    ``_OTHER``.
    """

    def __init__(
        self,
        name: str,
        kind: str = "custom",
        *,
        registry: Registry | None = None,
        tenant_cap: int = DEFAULT_TENANT_CAP,
        destination_cap: int = DEFAULT_DESTINATION_CAP,
    ) -> None:
        _check_label("name", name)
        _check_choice("kind", kind, KINDS)
        for what, cap in (("tenant_cap", tenant_cap), ("destination_cap", destination_cap)):
            if type(cap) is not int or cap < 0:
                raise ValueError(f"{what} must be an int >= 0, got {cap!r}")
        self._name = name
        self._kind = kind
        self._base = {SCHEDULER_NAME: name, SCHEDULER_KIND: kind}
        self._lock = threading.Lock()
        # The user-given attributes whose distinct values are capped, with the
        # values admitted so far.
        self._caps = {SCHEDULER_TENANT: tenant_cap, DESTINATION: destination_cap}
        self._admitted: dict[str, set[str]] = {SCHEDULER_TENANT: set(), DESTINATION: set()}
        # Series maps are read without the lock (dict.get is atomic) and only
        # written under it; keys are what callers pass, values the handles.
        self._latency: dict[_Key, LatencyHistogram] = {}
        self._rejections: dict[_Key, RejectionCounter] = {}
        self._queues: dict[_Key, QueueLengthGauge] = {}
        # Series made through series(): any contract metric, any allowed attributes.
        self._any: dict[_SeriesKey, tuple[MetricSpec, _Handle]] = {}
        self._dropped: dict[str, int] = {}
        self._dropped_start = 0
        self._callbacks: list[_Callback] = []
        self._shared = False
        self._registry = REGISTRY if registry is None else registry
        self._registry.register(self)

    @classmethod
    def shared(
        cls, name: str, kind: str = "custom", *, registry: Registry | None = None
    ) -> SchedulerMetrics:
        """The metrics of scheduler ``name``, made on first use and shared after.

        For schedulers that come and go under one name — a thread pool made per
        request, an event loop per ``asyncio.run()`` — and would otherwise each
        need a unique one: every instance records into the same series (their
        counts add up; queue lengths given with :meth:`add_queue_length_source`
        are summed), and the series outlive the instances, so counters never
        restart while the process runs.  ``ValueError`` if ``name`` is taken by
        a scheduler of another kind or by one that was not made shared.
        """
        target = REGISTRY if registry is None else registry
        with _SHARED_LOCK:
            existing = target.member(name)
            if existing is None:
                made = cls(name, kind, registry=target)
                made._shared = True
                return made
        if not isinstance(existing, SchedulerMetrics) or not existing._shared:
            raise ValueError(
                f"a scheduler named {name!r} is already registered and is not shared; "
                "give this one another name"
            )
        if existing.kind != kind:
            raise ValueError(
                f"a scheduler named {name!r} of kind {existing.kind!r} is already registered; "
                f"one of kind {kind!r} needs another name"
            )
        return existing

    @property
    def name(self) -> str:
        """The ``scheduler.name`` attribute of every series."""
        return self._name

    @property
    def kind(self) -> str:
        """The ``scheduler.kind`` attribute of every series."""
        return self._kind

    # --- schedule latency ----------------------------------------------------

    def latency(self, *, queue: str | None = None, tenant: str | None = None) -> LatencyHistogram:
        """The latency series for ``queue`` and ``tenant`` (both optional)."""
        handle = self._latency.get((queue, tenant))
        if handle is not None:
            return handle
        if queue is not None:
            _check_choice("queue", queue, QUEUES)
        return self._series(self._latency, queue, tenant, self._new_latency)

    def observe_latency(
        self, ms: float, *, queue: str | None = None, tenant: str | None = None
    ) -> None:
        """Record one schedule latency in milliseconds (see :meth:`LatencyHistogram.observe`)."""
        handle = self._latency.get((queue, tenant))
        if handle is None:
            handle = self.latency(queue=queue, tenant=tenant)
        handle.observe(ms)

    # --- rejections ------------------------------------------------------------

    def rejections(self, reason: str, *, tenant: str | None = None) -> RejectionCounter:
        """The rejection series for ``reason`` (an ``error.type`` value) and ``tenant``."""
        handle = self._rejections.get((reason, tenant))
        if handle is not None:
            return handle
        _check_choice("reason", reason, REASONS)
        return self._series(self._rejections, reason, tenant, self._new_rejection)

    def reject(self, reason: str, *, tenant: str | None = None, count: int = 1) -> None:
        """Count ``count`` tasks refused for ``reason``."""
        handle = self._rejections.get((reason, tenant))
        if handle is None:
            handle = self.rejections(reason, tenant=tenant)
        handle.add(count)

    # --- queue length ------------------------------------------------------------

    def queue_length(self, queue: str, *, tenant: str | None = None) -> QueueLengthGauge:
        """The queue-length series for ``queue`` and ``tenant``."""
        handle = self._queues.get((queue, tenant))
        if handle is not None:
            return handle
        _check_choice("queue", queue, QUEUES)
        return self._series(self._queues, queue, tenant, self._new_gauge)

    def set_queue_length(self, value: int, *, queue: str, tenant: str | None = None) -> None:
        """Set the number of runnable tasks waiting in ``queue``."""
        self.queue_length(queue, tenant=tenant).set(value)

    def queue_length_callback(
        self, callback: Callable[[], int], *, queue: str, tenant: str | None = None
    ) -> None:
        """Read the length of ``queue`` from ``callback()`` at each collection."""
        self.queue_length(queue, tenant=tenant).set_callback(callback)

    def add_queue_length_source(
        self, source: Callable[[], int], *, queue: str, tenant: str | None = None
    ) -> Callable[[], None]:
        """Add ``source()`` to the length of ``queue`` read at each collection, beside
        the sources of other instances sharing this scheduler (see :meth:`shared`);
        returns the call that removes it (when that instance shuts down)."""
        return self.queue_length(queue, tenant=tenant).add_source(source)

    # --- any contract metric ---------------------------------------------------------------

    def histogram(
        self, spec: MetricSpec, attributes: Mapping[str, str] | None = None
    ) -> LatencyHistogram:
        """The series of histogram ``spec`` with ``attributes`` (beyond name and kind).

        >>> from schedobs.contract import QUEUE_WAIT, Registry, SchedulerMetrics
        >>> metrics = SchedulerMetrics("jobs", kind="celery", registry=Registry())
        >>> wait = metrics.histogram(QUEUE_WAIT, {"scheduler.queue": "broker",
        ...                                       "messaging.destination.name": "emails"})
        >>> wait.observe(3.5)
        """
        handle = self.series(spec, attributes)
        if not isinstance(handle, LatencyHistogram):
            raise TypeError(f"{spec.name} is a {spec.instrument.value}, not a histogram")
        return handle

    def counter(
        self, spec: MetricSpec, attributes: Mapping[str, str] | None = None
    ) -> RejectionCounter:
        """The series of counter ``spec`` with ``attributes`` (beyond name and kind)."""
        handle = self.series(spec, attributes)
        if not isinstance(handle, RejectionCounter):
            raise TypeError(f"{spec.name} is a {spec.instrument.value}, not a counter")
        return handle

    def gauge(
        self, spec: MetricSpec, attributes: Mapping[str, str] | None = None
    ) -> QueueLengthGauge:
        """The series of gauge ``spec`` with ``attributes`` (beyond name and kind)."""
        handle = self.series(spec, attributes)
        if not isinstance(handle, QueueLengthGauge):
            raise TypeError(f"{spec.name} is a {spec.instrument.value}, not a gauge")
        return handle

    def series(self, spec: MetricSpec, attributes: Mapping[str, str] | None = None) -> _Handle:
        """The handle of one series of any contract metric recorded by this scheduler.

        ``attributes`` are checked against ``spec``: allowed keys, required keys
        present, closed values; tenants and queue names are capped.  The same
        spec and attributes always give the same handle, also through
        :meth:`latency`, :meth:`rejections` and :meth:`queue_length`.
        """
        items = tuple(sorted((attributes or {}).items()))
        found = self._any.get((getattr(spec, "name", ""), items))
        if found is not None:
            return found[1]
        extra = dict(items)
        _check_series(spec, extra)
        if DESTINATION not in extra:  # the classic series have their own fast maps
            tenant = extra.get(SCHEDULER_TENANT)
            if spec is SCHEDULE_LATENCY:
                return self.latency(queue=extra.get(SCHEDULER_QUEUE), tenant=tenant)
            if spec is REJECTED_TASKS:
                return self.rejections(extra[ERROR_TYPE], tenant=tenant)
            if spec is QUEUE_LENGTH:
                return self.queue_length(extra[SCHEDULER_QUEUE], tenant=tenant)
        with self._lock:
            folded = {key: self._fold(key, value) for key, value in extra.items()}
            key = (spec.name, tuple(sorted(folded.items())))
            entry = self._any.get(key)
            if entry is None:
                attrs = MappingProxyType({**self._base, **folded})
                handle: _Handle
                if spec.instrument is InstrumentKind.HISTOGRAM:
                    handle = LatencyHistogram(attrs, self._drop)
                elif spec.instrument is InstrumentKind.COUNTER:
                    handle = RejectionCounter(attrs)
                else:
                    handle = QueueLengthGauge(attrs)
                entry = (spec, handle)
                self._any[key] = entry
            # Stored under the folded values only: a flood of distinct names beyond
            # the cap must not grow this map (each such call takes the slow path).
            return entry[1]

    # --- pull-based values ---------------------------------------------------------------

    def register_callback(self, callback: Callable[[], Iterable[Observation]]) -> None:
        """Report values read at each collection: gauges, and counters and histograms
        that the scheduler aggregates itself.

        ``callback()`` returns ``(spec, attributes, value)`` triples for contract
        metrics (``attributes`` beyond name and kind).  Counter and histogram values
        are cumulative; a histogram value is ``(bucket_counts, sum, min, max)`` with
        the contract's boundaries.  A triple that breaks the contract, or a callback
        that raises, is logged once and left out of the collection.  Do not also
        record the same series through a handle: it would be exported twice.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._callbacks.append(_Callback(callback, time.time_ns()))

    def _collect_callbacks(self) -> Iterator[tuple[MetricSpec, Point]]:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                observations = list(cb.fn())
            except Exception:
                cb.complain("raised")
                continue
            for spec, extra, value in observations:
                problem = _observation_problem(spec, extra, value)
                if problem:
                    cb.complain(problem)
                    continue
                attributes = MappingProxyType({**self._base, **extra})
                if isinstance(value, int):
                    if spec.instrument is InstrumentKind.GAUGE:
                        yield spec, GaugePoint(attributes, value)
                    else:
                        yield spec, CounterPoint(attributes, cb.start_ns, value)
                    continue
                counts, total, low, high = value[:4]
                kept = value[4] if len(value) > 4 else ()
                count = sum(counts)
                yield (
                    spec,
                    HistogramPoint(
                        attributes=attributes,
                        start_ns=cb.start_ns,
                        count=count,
                        sum=float(total),
                        bucket_counts=tuple(counts),
                        min=float(low) if count else 0.0,
                        max=float(high) if count else 0.0,
                        exemplars=tuple(kept),
                    ),
                )

    # --- lifecycle and collection --------------------------------------------------

    def close(self) -> None:
        """Stop exporting this scheduler's series (its name becomes free again)."""
        self._registry.unregister(self)

    def collect(self) -> Iterator[tuple[MetricSpec, Point]]:
        """Snapshot every series of this scheduler (called by the registry)."""
        for gauge in list(self._queues.values()):
            point = gauge.snapshot()
            if point is not None:
                yield QUEUE_LENGTH, point
        for histogram in list(self._latency.values()):
            yield SCHEDULE_LATENCY, histogram.snapshot()
        for counter in list(self._rejections.values()):
            yield REJECTED_TASKS, counter.snapshot()
        for spec, handle in list(self._any.values()):
            snapshot = handle.snapshot()
            if snapshot is not None:
                yield spec, snapshot
        yield from self._collect_callbacks()
        with self._lock:
            dropped = sorted(self._dropped.items())
        for reason, count in dropped:
            attributes = MappingProxyType({**self._base, "reason": reason})
            yield DROPPED_OBSERVATIONS, CounterPoint(attributes, self._dropped_start, count)

    def dropped_observations(self) -> dict[str, int]:
        """Observations left out of the latency histogram, by reason."""
        with self._lock:
            return dict(self._dropped)

    # --- internals -----------------------------------------------------------------

    def _series(
        self,
        series: dict[_Key, _H],
        first: str | None,
        tenant: str | None,
        make: Callable[[dict[str, str]], _H],
    ) -> _H:
        """Create (or find) the handle for ``(first, tenant)``; the slow path."""
        with self._lock:
            folded = None if tenant is None else self._fold(SCHEDULER_TENANT, tenant)
            handle = series.get((first, folded))
            if handle is None:
                attributes = dict(self._base)
                if first is not None:
                    key = ERROR_TYPE if series is self._rejections else SCHEDULER_QUEUE
                    attributes[key] = first
                if folded is not None:
                    attributes[SCHEDULER_TENANT] = folded
                handle = make(attributes)
                series[(first, folded)] = handle
            # Overflowing tenants are not cached under their own name: a flood of
            # distinct tenant names must not grow this map.
            return handle

    def _fold(self, key: str, value: str) -> str:
        """``value`` of a capped attribute, or ``_OTHER`` beyond the cap (under the lock)."""
        admitted = self._admitted.get(key)
        if admitted is None or value in admitted:
            return value
        _check_label(key, value)
        if value == OTHER:
            return OTHER
        if len(admitted) < self._caps[key]:
            admitted.add(value)
            return value
        return OTHER

    def _new_latency(self, attributes: dict[str, str]) -> LatencyHistogram:
        return LatencyHistogram(MappingProxyType(attributes), self._drop)

    @staticmethod
    def _new_rejection(attributes: dict[str, str]) -> RejectionCounter:
        return RejectionCounter(MappingProxyType(attributes))

    @staticmethod
    def _new_gauge(attributes: dict[str, str]) -> QueueLengthGauge:
        return QueueLengthGauge(MappingProxyType(attributes))

    def _drop(self, ms: float) -> None:
        reason = "nan" if math.isnan(ms) else "infinite" if math.isinf(ms) else "negative"
        with self._lock:
            if not self._dropped:
                self._dropped_start = time.time_ns()
            self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def __repr__(self) -> str:
        return f"SchedulerMetrics(name={self._name!r}, kind={self._kind!r})"


class _Callback:
    __slots__ = ("complained", "fn", "start_ns")

    def __init__(self, fn: Callable[[], Iterable[Observation]], start_ns: int) -> None:
        self.fn = fn
        self.start_ns = start_ns
        self.complained = False

    def complain(self, problem: str) -> None:
        if not self.complained:
            self.complained = True
            _log.error(
                "metrics callback %r %s; its values are left out (logged once)", self.fn, problem
            )


def _observation_problem(spec: object, extra: object, value: object) -> str | None:
    if not isinstance(spec, MetricSpec) or spec not in _CONTRACT.metrics:
        return f"reported {spec!r}, which is not a contract metric"
    if not isinstance(extra, Mapping):
        return f"gave attributes {extra!r} that are not a mapping"
    for key, val in extra.items():
        if key not in spec.attributes or key in (SCHEDULER_NAME, SCHEDULER_KIND):
            return f"gave attribute {key!r}, which {spec.name} does not allow here"
        allowed = _CONTRACT.attributes[key].values
        if allowed is not None and val not in allowed:
            return f"gave {key}={val!r}, not one of {', '.join(allowed)}"
    missing = set(spec.required_attributes) - set(extra) - {SCHEDULER_NAME, SCHEDULER_KIND}
    if missing:
        return f"left out required attributes {sorted(missing)} of {spec.name}"
    if spec.instrument is InstrumentKind.HISTOGRAM:
        return _histogram_problem(spec, value)
    if type(value) is not int or value < 0:
        return f"gave the value {value!r} for {spec.name}; it must be an int >= 0"
    return None


def _histogram_problem(spec: MetricSpec, value: object) -> str | None:
    expected = len(spec.boundaries or ()) + 1
    if not isinstance(value, tuple) or len(value) not in (4, 5):
        return (
            f"gave {value!r} for {spec.name}; a histogram value is (counts, sum, min, max) "
            "or (counts, sum, min, max, exemplars)"
        )
    counts, total, low, high = value[:4]
    if len(value) == 5:
        kept = value[4]
        if (
            not isinstance(kept, tuple)
            or len(kept) not in (0, expected)
            or any(e is not None and not isinstance(e, Exemplar) for e in kept)
        ):
            return (
                f"gave exemplars {kept!r} for {spec.name}; they are a tuple of {expected} "
                "Exemplar or None, one per bucket"
            )
    if (
        not isinstance(counts, (tuple, list))
        or len(counts) != expected
        or any(type(c) is not int or c < 0 for c in counts)
    ):
        return f"gave bucket counts {counts!r} for {spec.name}; it needs {expected} ints >= 0"
    for what, number in (("sum", total), ("min", low), ("max", high)):
        if not is_number(number):
            return f"gave a {what} of {number!r} for {spec.name}"
        if not math.isfinite(number) or number < 0:
            return f"gave a {what} of {number!r} for {spec.name}; it must be finite and >= 0"
    return None


def _check_series(spec: object, extra: Mapping[str, object]) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``extra`` are valid attributes of ``spec``."""
    if not isinstance(spec, MetricSpec) or spec not in _CONTRACT.metrics:
        raise ValueError(f"{spec!r} is not a metric of the contract")
    for key, value in extra.items():
        if key in (SCHEDULER_NAME, SCHEDULER_KIND):
            raise ValueError(f"{key} is the scheduler's own; do not pass it per series")
        if key not in spec.attributes:
            allowed = ", ".join(a for a in spec.attributes if a not in _BASE_KEYS) or "none"
            raise ValueError(f"{spec.name} has no attribute {key!r} (allowed: {allowed})")
        allowed_values = _CONTRACT.attributes[key].values
        if allowed_values is None:
            _check_label(key, value)
        else:
            _check_choice(key, value, allowed_values)
    missing = [k for k in spec.required_attributes if k not in extra and k not in _BASE_KEYS]
    if missing:
        raise ValueError(f"{spec.name} needs the attributes {', '.join(missing)}")


_BASE_KEYS = (SCHEDULER_NAME, SCHEDULER_KIND)


def _check_label(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    if not value or len(value) > MAX_LABEL_LENGTH or not value.isprintable():
        raise ValueError(
            f"{what} must be 1 to {MAX_LABEL_LENGTH} printable characters, got {value!r}"
        )


def _check_choice(what: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; the contract allows {', '.join(allowed)}")
