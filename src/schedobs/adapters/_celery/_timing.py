"""Queue time across two hosts' clocks: the publish stamp and the arithmetic on it.

No Celery here: a producer reads its wall clock and its correction
(:class:`CorrectedClock`), writes them into the message as a
:class:`PublishStamp`, and the worker that starts the task measures against
its own corrected clock (:func:`measure`).

Convention, as everywhere in schedobs: ``offset = reference − local``, and a
local time ``t`` is corrected to ``t + offset(t)``.  Each end's correction has
a one-sigma uncertainty; they are independent estimates, so the latency's is
``σ = √(σ_producer² + σ_worker²)``.  A corrected latency is reported with
``uncertainty = 3σ``: with calibrated clock estimates, the truth lies within
it for 99.7 % of tasks.  What the clocks cannot resolve is classified, never
clamped: a latency below zero is ``negative``, one within its uncertainty of
zero is ``within_uncertainty``, and one where an end had no estimate at all is
``uncorrected`` (its error is unknown).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from schedobs.clock import ClockEstimate

__all__ = ["ClockSource", "CorrectedClock", "PublishStamp", "TaskTiming", "measure"]

#: The message header that carries the stamp: short, since every message pays for it.
HEADER = "schedobs"
#: The expansion factor of the reported uncertainty (a 99.7 % interval for a
#: calibrated Gaussian error).
COVERAGE = 3.0
_NS_PER_MS = 1e6


class ClockSource(Protocol):
    """What corrects this host's clock: an :class:`~schedobs.clock.OffsetEstimator`."""

    def estimate(self, at_ns: int | None = None) -> ClockEstimate | None: ...


class Reading(NamedTuple):
    """One reading of this host's wall clock with its correction."""

    raw_ns: int
    offset_ns: int
    #: One sigma of ``offset_ns``, or ``-1``: no estimate (``offset_ns`` is 0).
    sigma_ns: int
    #: How fast the offset changes (the correction's frequency, ppm).
    freq_ppm: float = 0.0

    @property
    def corrected_ns(self) -> int:
        return self.raw_ns + self.offset_ns


class CorrectedClock:
    """This host's wall clock, corrected by a clock estimator when there is one.

    Between two changes of the estimator (its ``version``: a sample, a reset)
    its estimate is one line in time, so a reading within ``REUSE_NS`` of the
    last computed one extends that line instead of asking again: a worker's
    main process reads the clock twice per task, and an estimate costs a lock
    and ~2 µs.  Over such a span the uncertainty, which grows with the distance
    from the last sample, grows by a fraction of a percent; it is reused as it is.
    """

    #: How far from a computed estimate a reading may extend its line.
    REUSE_NS = 100_000_000

    def __init__(
        self, source: ClockSource | None = None, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.source = source
        self._clock = clock_ns
        self._last: tuple[object, ClockEstimate] | None = None
        #: Called with every new line computed (a worker shares it with its children).
        self.on_line: Callable[[ClockEstimate], None] | None = None

    def read(self, at_ns: int | None = None) -> Reading:
        """The wall clock now (or at ``at_ns``, a reading of the same clock), corrected."""
        raw = self._clock() if at_ns is None else at_ns
        source = self.source
        if source is None:
            return Reading(raw, 0, -1)
        version = getattr(source, "version", None)
        last = self._last
        if last is not None and version is not None and last[0] == version:
            estimate = last[1]
            if abs(raw - estimate.at_ns) <= self.REUSE_NS:
                drift = round(estimate.freq_ppm * (raw - estimate.at_ns) / 1e6)
                return Reading(raw, estimate.offset_ns + drift, estimate.uncertainty_ns,
                               estimate.freq_ppm)  # fmt: skip
        fresh = source.estimate(at_ns=raw)
        if fresh is None:
            return Reading(raw, 0, -1)
        if version is not None:
            self._last = (version, fresh)
        if self.on_line is not None:
            self.on_line(fresh)
        return Reading(raw, fresh.offset_ns, fresh.uncertainty_ns, fresh.freq_ppm)


class PublishStamp(NamedTuple):
    """When a task was published, on the producer's clock and corrected.

    In the message it is a list of three integers (~40 bytes as JSON):
    ``[raw_ns, offset_ns, sigma_ns]``, and two more for a task with an ETA: the
    ETA corrected by the producer's clock (the ETA itself is a producer
    wall-clock time, so the producer is the one who can correct it) and that
    correction's sigma, which is wider than the publish's when the ETA lies
    ahead: the clock's frequency error grows with the distance.
    """

    raw_ns: int
    offset_ns: int
    sigma_ns: int
    eta_ns: int | None = None
    eta_sigma_ns: int = -1

    @property
    def corrected_ns(self) -> int:
        return self.raw_ns + self.offset_ns

    @property
    def runnable(self) -> tuple[int, int]:
        """When the task became runnable, corrected (its publish, or its ETA if later),
        with that correction's sigma."""
        if self.eta_ns is None or self.eta_ns <= self.corrected_ns:
            return self.corrected_ns, self.sigma_ns
        return self.eta_ns, self.eta_sigma_ns

    @classmethod
    def at(cls, reading: Reading, eta: Reading | None = None) -> PublishStamp:
        if eta is None:
            return cls(reading.raw_ns, reading.offset_ns, reading.sigma_ns)
        return cls(reading.raw_ns, reading.offset_ns, reading.sigma_ns, eta.corrected_ns,
                   eta.sigma_ns)  # fmt: skip

    def encode(self) -> list[int]:
        fields = [self.raw_ns, self.offset_ns, self.sigma_ns]
        if self.eta_ns is not None:
            fields += [self.eta_ns, self.eta_sigma_ns]
        return fields

    @classmethod
    def decode(cls, value: object) -> PublishStamp | None:
        """The stamp in a message header, or ``None`` if absent or not one of ours."""
        # Once per task in a worker: plain type checks, no generators.
        if type(value) is not list and type(value) is not tuple:
            return None
        fields: Sequence[object] = value
        size = len(fields)
        if size != 3 and size != 5:
            return None
        raw, offset, sigma = fields[0], fields[1], fields[2]
        if type(raw) is not int or type(offset) is not int or type(sigma) is not int:
            return None
        if raw <= 0 or sigma < -1:
            return None
        if size == 3:
            return cls(raw, offset, sigma)
        eta, eta_sigma = fields[3], fields[4]
        if type(eta) is not int or type(eta_sigma) is not int or eta_sigma < -1:
            return None
        return cls(raw, offset, sigma, eta, eta_sigma)


class TaskTiming(NamedTuple):
    """How long one task waited, publish (or ETA) to start, on corrected clocks.

    Given to ``CeleryInstrumentation(on_timing=...)`` for every task started;
    the same numbers are in the metrics.
    """

    task_id: str
    #: The routing queue (``messaging.destination.name``), as the message says.
    queue: str
    #: Schedule latency: runnable (publish, or its ETA if later) → start, ms, corrected.
    latency_ms: float
    #: One sigma of ``latency_ms`` from the two clock corrections (NaN: unknown).
    sigma_ms: float
    #: ``latency_ms`` is within this of the truth at 99.7 % (3σ; NaN: unknown).
    uncertainty_ms: float
    #: The same latency on the two raw wall clocks, as tools without correction see it.
    uncorrected_ms: float
    #: Publish → received by the worker (ms, corrected), or ``None`` if not seen.
    broker_ms: float | None
    #: Received → start on the worker's own clock (from the ETA if later), or ``None``.
    reserved_ms: float | None
    #: Whether the task had an ETA or countdown.
    eta: bool
    #: Why the clocks cannot resolve this latency, or ``None`` if they can.
    unresolved: str | None
    #: The worker's ``CLOCK_MONOTONIC`` at start (a shared clock on one machine).
    start_monotonic_ns: int


def measure(
    task_id: str,
    queue: str,
    stamp: PublishStamp,
    start: Reading,
    start_monotonic_ns: int,
    received_monotonic_ns: int | None = None,
) -> TaskTiming:
    """The timing of a task published with ``stamp`` and started at ``start``.

    ``received_monotonic_ns``: the worker's monotonic clock when the message
    arrived, for the split into time in the broker and time reserved.  The
    receipt is placed on the corrected timeline from the start, back by the
    monotonic interval along ``start``'s line; so the split adds up to the
    latency (to within the correction's rate, ppm of the reserved time) however
    the worker's readings at receipt were timed, and a wall-clock step between
    receipt and start does not leak into it.

    Once per task where the task starts: written for few bytecodes (no helper
    objects, no properties) — in a busy Celery pool child each one costs.
    """
    raw, offset, start_sigma, freq = start
    start_ns = raw + offset
    pub_raw, pub_offset, pub_sigma, eta, eta_sigma = stamp
    published = pub_raw + pub_offset
    if eta is None or eta <= published:
        runnable, runnable_sigma = published, pub_sigma
    else:
        runnable, runnable_sigma = eta, eta_sigma
    latency = (start_ns - runnable) / _NS_PER_MS
    if runnable_sigma < 0 or start_sigma < 0:
        sigma = uncertainty = math.nan
        unresolved: str | None = "uncorrected"
    else:
        sigma = math.sqrt(runnable_sigma * runnable_sigma + start_sigma * start_sigma) / _NS_PER_MS
        uncertainty = COVERAGE * sigma
        unresolved = (
            "negative" if latency < 0 else "within_uncertainty" if latency < uncertainty else None
        )
    broker = reserved = None
    if received_monotonic_ns is not None:
        held = start_monotonic_ns - received_monotonic_ns
        got = start_ns - held - round(freq * held / 1e6)
        broker = (got - published) / _NS_PER_MS
        # One host, one clock: the monotonic difference is exact; a task held on
        # the worker until its ETA waits from then.
        reserved = (held if eta is None or eta <= got else start_ns - eta) / _NS_PER_MS
    return TaskTiming(
        task_id,
        queue,
        latency,
        sigma,
        uncertainty,
        latency - (offset - pub_offset) / _NS_PER_MS,
        broker,
        reserved,
        eta is not None,
        unresolved,
        start_monotonic_ns,
    )
