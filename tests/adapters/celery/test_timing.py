"""Cross-clock queue time arithmetic, without Celery: stamps, corrections, classification."""

from __future__ import annotations

import math

import pytest

from schedobs.adapters._celery._timing import (
    CorrectedClock,
    PublishStamp,
    Reading,
    measure,
)
from schedobs.clock import ClockEstimate

MS = 1_000_000


class FixedEstimator:
    """A clock estimate that never changes (offset and σ in ns)."""

    def __init__(self, offset_ns: int, sigma_ns: int) -> None:
        self.offset_ns, self.sigma_ns = offset_ns, sigma_ns

    def estimate(self, at_ns: int | None = None) -> ClockEstimate | None:
        return ClockEstimate(self.offset_ns, self.sigma_ns, 0.0, 10, at_ns or 0)


def test_a_stamp_round_trips_and_foreign_headers_are_ignored() -> None:
    stamp = PublishStamp(1_700_000_000 * 10**9, -120 * MS, 40_000, 1_700_000_001 * 10**9, 90_000)
    assert PublishStamp.decode(stamp.encode()) == stamp
    assert len(str(stamp.encode())) < 80  # every message pays for it
    assert PublishStamp.decode([1, 2, 3]) == PublishStamp(1, 2, 3)
    for foreign in (None, "x", [1, 2], [1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [1.5, 2, 3], [0, 0, 0],
                    [1, 2, -2], [1, 2, 3, 4, -5], [True, 2, 3]):  # fmt: skip
        assert PublishStamp.decode(foreign) is None, foreign


def test_both_corrections_cancel_both_skews() -> None:
    # Truth: published at t0, started 5 ms later.  The producer's clock is 35 ms ahead,
    # the worker's 80 ms behind; each knows its offset within 20 µs / 30 µs.
    t0 = 1_700_000_000 * 10**9
    producer = CorrectedClock(FixedEstimator(-35 * MS, 20_000))
    worker = CorrectedClock(FixedEstimator(80 * MS, 30_000))
    stamp = PublishStamp.at(producer.read(at_ns=t0 + 35 * MS))
    start = worker.read(at_ns=t0 + 5 * MS - 80 * MS)
    timing = measure("t", "q", stamp, start, 0)
    assert timing.latency_ms == pytest.approx(5.0)
    assert timing.uncorrected_ms == pytest.approx(5.0 - 115.0)  # what the raw clocks say
    assert timing.sigma_ms == pytest.approx(math.hypot(0.020, 0.030))
    assert timing.uncertainty_ms == pytest.approx(3 * timing.sigma_ms)
    assert timing.unresolved is None and not timing.eta


def test_eta_tasks_count_from_their_eta_and_the_split_follows() -> None:
    t0 = 1_700_000_000 * 10**9
    stamp = PublishStamp(t0, 0, 1_000, eta_ns=t0 + 2_000 * MS, eta_sigma_ns=4_000)
    # Received 1 ms after publish (monotonic 10 ms), started 3 ms after its ETA on
    # the worker's clock (monotonic 10 ms + 2002 ms).
    start = Reading(t0 + 2_003 * MS, 0, 1_000)
    timing = measure("t", "q", stamp, start, 2_012 * MS, 10 * MS)
    assert timing.latency_ms == pytest.approx(3.0)
    assert timing.broker_ms == pytest.approx(1.0)
    assert timing.reserved_ms == pytest.approx(3.0)  # from the ETA, not from receipt
    assert timing.eta
    # The ETA's correction, extrapolated 2 s ahead, is the one that counts.
    assert timing.sigma_ms == pytest.approx(math.hypot(0.004, 0.001))


def test_a_worker_that_fires_an_eta_task_early_reports_a_negative_latency() -> None:
    t0 = 1_700_000_000 * 10**9
    stamp = PublishStamp(t0, 0, 1_000, eta_ns=t0 + 1_000 * MS, eta_sigma_ns=1_000)
    timing = measure("t", "q", stamp, Reading(t0 + 880 * MS, 0, 1_000), 0)
    assert timing.latency_ms == pytest.approx(-120.0)
    assert timing.unresolved == "negative"


def test_reserved_time_comes_from_the_workers_monotonic_clock() -> None:
    t0 = 1_700_000_000 * 10**9
    stamp = PublishStamp(t0, 0, 1_000)
    timing = measure("t", "q", stamp, Reading(t0 + 9 * MS, 0, 1_000), 107 * MS, 100 * MS)
    assert timing.broker_ms == pytest.approx(2.0)
    assert timing.reserved_ms == pytest.approx(7.0)
    assert timing.broker_ms is not None and timing.reserved_ms is not None
    assert timing.broker_ms + timing.reserved_ms == pytest.approx(timing.latency_ms)


@pytest.mark.parametrize(
    ("latency_us", "sigma_ns", "reason"),
    [
        (-1, 1_000, "negative"),  # 3σ = 4.24 µs from two σ of 1 µs
        (-5_000, 1_000, "negative"),
        (0, 1_000, "within_uncertainty"),
        (4, 1_000, "within_uncertainty"),
        (5, 1_000, None),
        (3_000, -1, "uncorrected"),
        (-3_000, -1, "uncorrected"),
    ],
)
def test_classification(latency_us: int, sigma_ns: int, reason: str | None) -> None:
    t0 = 1_700_000_000 * 10**9
    stamp = PublishStamp(t0, 0, sigma_ns)
    timing = measure("t", "q", stamp, Reading(t0 + latency_us * 1_000, 0, 1_000), 0)
    assert timing.unresolved == reason
    if sigma_ns > 0:
        assert timing.uncertainty_ms == pytest.approx(3 * math.hypot(sigma_ns, 1_000) / 1e6)


def test_without_an_estimate_the_latency_is_raw_and_unresolved() -> None:
    t0 = 1_700_000_000 * 10**9
    stamp = PublishStamp.at(CorrectedClock(None).read(at_ns=t0))
    assert stamp.sigma_ns == -1
    timing = measure("t", "q", stamp, CorrectedClock(None).read(at_ns=t0 + 4 * MS), 0)
    assert timing.latency_ms == pytest.approx(4.0) and timing.uncorrected_ms == pytest.approx(4.0)
    assert math.isnan(timing.uncertainty_ms) and timing.unresolved == "uncorrected"


def test_the_corrected_clock_extends_an_estimate_until_the_estimator_changes() -> None:
    from schedobs.clock import OffsetEstimator

    t0 = 1_700_000_000 * 10**9
    estimator = OffsetEstimator()
    for i in range(20):  # the reference runs 40 ppm fast against us, 5 ms ahead
        t = t0 + i * 100 * MS
        offset = 5 * MS + (t - t0) * 40 // 1_000_000
        estimator.add_sample(t, t + offset + 50_000, t + offset + 50_000, t + 100_000)
    clock = CorrectedClock(estimator)
    later = t0 + 2_500 * MS
    for at in (later, later + 50 * MS, later + 90 * MS):
        fresh = estimator.estimate(at_ns=at)
        assert fresh is not None
        reading = clock.read(at_ns=at)
        assert abs(reading.offset_ns - fresh.offset_ns) <= 2  # the same line
        assert reading.sigma_ns == pytest.approx(fresh.uncertainty_ns, rel=0.005)
    calls = []
    original = estimator.estimate
    estimator.estimate = lambda at_ns=None: calls.append(at_ns) or original(at_ns)  # type: ignore[method-assign]
    clock.read(at_ns=later + 60 * MS)
    assert calls == []  # extended, not asked
    estimator.add_sample(later, later + 10 * MS, later + 10 * MS, later + 100_000)
    clock.read(at_ns=later + 60 * MS)
    assert len(calls) == 1  # the estimator changed: asked again
    clock.read(at_ns=later + 500 * MS)
    assert len(calls) == 2  # too far from the last estimate: asked again
    estimator.reset()
    assert clock.read(at_ns=later).sigma_ns == -1  # a reset is a change too


def test_the_receipt_is_corrected_along_the_starts_line() -> None:
    # The worker's correction drifts at 40 ppm; the message arrived 250 ms before the start.
    t0 = 1_700_000_000 * 10**9
    stamp = PublishStamp(t0, 0, 1_000)
    start = Reading(t0 + 260 * MS, -120 * MS, 9_000, freq_ppm=40.0)
    timing = measure("t", "q", stamp, start, 250 * MS, 0)
    # received at raw t0 + 10 ms, corrected along the start's line:
    # raw + offset + 40 ppm × (−250 ms) = raw − 120 ms − 10 µs
    assert timing.broker_ms == pytest.approx(10.0 - 120.0 - 0.010)
    assert timing.reserved_ms == pytest.approx(250.0)  # the monotonic clock: no correction
    # The split adds up to the latency, but for the rate over the reserved time.
    assert timing.broker_ms is not None and timing.reserved_ms is not None
    assert timing.broker_ms + timing.reserved_ms == pytest.approx(
        timing.latency_ms - 0.010, abs=1e-6
    )


def test_a_wall_clock_step_between_receipt_and_start_stays_out_of_the_split() -> None:
    # Published at t0, received 2 ms later; then the worker's wall clock is stepped
    # 50 ms ahead, and its estimator, which saw the step, corrects it back at the start.
    t0 = 1_700_000_000 * 10**9
    stamp = PublishStamp(t0, 0, 1_000)
    start = Reading(t0 + 9 * MS + 50 * MS, -50 * MS, 1_000)
    timing = measure("t", "q", stamp, start, 107 * MS, 100 * MS)
    assert timing.latency_ms == pytest.approx(9.0)
    assert timing.broker_ms == pytest.approx(2.0)
    assert timing.reserved_ms == pytest.approx(7.0)
