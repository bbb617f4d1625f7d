"""Series handles: bucket placement, bad values, bad types, thread safety."""

from __future__ import annotations

import logging
import math
import threading
from decimal import Decimal
from fractions import Fraction

import pytest

from schedobs.contract import LATENCY_BOUNDARIES_MS, Registry, SchedulerMetrics


@pytest.fixture
def metrics(registry: Registry) -> SchedulerMetrics:
    return SchedulerMetrics("unit", registry=registry)


def test_boundaries_are_upper_inclusive(metrics: SchedulerMetrics) -> None:
    h = metrics.latency()
    for bound in LATENCY_BOUNDARIES_MS:
        h.observe(bound)  # exactly on the bound: that bucket (le semantics)
    h.observe(0.0)
    h.observe(10_000.5)  # overflow bucket
    p = h.snapshot()
    assert p.bucket_counts == (2,) + (1,) * (len(LATENCY_BOUNDARIES_MS) - 1) + (1,)
    assert p.count == len(LATENCY_BOUNDARIES_MS) + 2 == sum(p.bucket_counts)
    assert p.sum == pytest.approx(sum(LATENCY_BOUNDARIES_MS) + 10_000.5)
    assert (p.min, p.max) == (0.0, 10_000.5)


def test_empty_series_reports_zeros(metrics: SchedulerMetrics) -> None:
    p = metrics.latency(queue="local").snapshot()
    assert (p.count, p.sum, p.min, p.max) == (0, 0.0, 0.0, 0.0)
    assert dict(p.attributes) == {
        "scheduler.name": "unit",
        "scheduler.kind": "custom",
        "scheduler.queue": "local",
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [(math.nan, "nan"), (math.inf, "infinite"), (-math.inf, "infinite"), (-0.001, "negative")],
)
def test_bad_values_are_dropped_and_counted(
    metrics: SchedulerMetrics, value: float, reason: str
) -> None:
    h = metrics.latency()
    h.observe(1.0)
    h.observe(value)
    p = h.snapshot()
    assert (p.count, p.sum, p.max) == (1, 1.0, 1.0)
    assert metrics.dropped_observations() == {reason: 1}
    dropped = [pt for spec, pt in metrics.collect() if spec.name == "schedobs.observations.dropped"]
    assert [(dict(pt.attributes)["reason"], pt.value) for pt in dropped] == [(reason, 1)]  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["1.0", None, b"1", Decimal("1.5"), [1.0]])
def test_wrong_types_raise_at_the_call_site_and_record_nothing(
    metrics: SchedulerMetrics, value: object
) -> None:
    h = metrics.latency()
    with pytest.raises(TypeError, match="latency must be a real number of milliseconds"):
        h.observe(value)  # type: ignore[arg-type]
    p = h.snapshot()
    assert (p.count, p.sum) == (0, 0.0)
    assert metrics.dropped_observations() == {}


def test_ints_bools_and_fractions_are_numbers(metrics: SchedulerMetrics) -> None:
    h = metrics.latency()
    h.observe(3)
    h.observe(Fraction(1, 2))
    p = h.snapshot()
    assert (p.count, p.sum) == (2, 3.5)
    assert isinstance(p.min, float)


def test_concurrent_observations_are_exact(metrics: SchedulerMetrics) -> None:
    h = metrics.latency()
    per_thread = 20_000

    def work(value: float) -> None:
        for _ in range(per_thread):
            h.observe(value)

    threads = [threading.Thread(target=work, args=(0.1 * (i + 1),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p = h.snapshot()
    assert p.count == 6 * per_thread
    assert p.sum == pytest.approx(per_thread * 0.1 * 21)


def test_counter_add(metrics: SchedulerMetrics) -> None:
    c = metrics.rejections("queue_full")
    c.add()
    c.add(4)
    c.add(0)
    assert c.snapshot().value == 5
    with pytest.raises(ValueError, match="count must be >= 0"):
        c.add(-1)
    with pytest.raises(TypeError, match="count must be an int"):
        c.add(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="count must be an int"):
        c.add(True)
    assert c.snapshot().value == 5


def test_gauge_set_and_validation(metrics: SchedulerMetrics) -> None:
    g = metrics.queue_length("global")
    g.set(7)
    assert g.snapshot() is not None
    assert g.snapshot().value == 7  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="queue length must be >= 0"):
        g.set(-1)
    with pytest.raises(TypeError, match="queue length must be an int"):
        g.set(1.5)  # type: ignore[arg-type]
    assert g.snapshot().value == 7  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="callback must be callable"):
        g.set_callback(3)  # type: ignore[arg-type]


def test_gauge_callback_is_read_at_collection(metrics: SchedulerMetrics) -> None:
    items = [1, 2, 3]
    metrics.queue_length_callback(lambda: len(items), queue="ready")
    assert metrics.queue_length("ready").snapshot().value == 3  # type: ignore[union-attr]
    items.append(4)
    assert metrics.queue_length("ready").snapshot().value == 4  # type: ignore[union-attr]


def test_failing_callback_is_logged_once_and_skipped(
    metrics: SchedulerMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> int:
        raise RuntimeError("boom")

    metrics.queue_length_callback(broken, queue="timer")
    metrics.set_queue_length(2, queue="global")
    with caplog.at_level(logging.ERROR, logger="schedobs"):
        for _ in range(3):
            names = [
                (s.name, dict(p.attributes).get("scheduler.queue")) for s, p in metrics.collect()
            ]
            # The broken series is left out; the other one is still there.
            assert names == [("scheduler.queue.length", "global")]
    assert len([r for r in caplog.records if "queue-length callback" in r.message]) == 1


def test_callback_returning_a_bad_value_is_skipped(metrics: SchedulerMetrics) -> None:
    metrics.queue_length_callback(lambda: -3, queue="timer")
    assert metrics.queue_length("timer").snapshot() is None
