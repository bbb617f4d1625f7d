"""Latencies binned in batches: the same figures as one observe() per value, exact at
every collection, safe against a collector flushing from another thread."""

from __future__ import annotations

import gc
import math
import random
import sys
import threading

import pytest

from schedobs.contract import LATENCY_BOUNDARIES_MS, Registry, SchedulerMetrics


@pytest.fixture
def metrics(registry: Registry) -> SchedulerMetrics:
    return SchedulerMetrics("batched", registry=registry)


def _figures(point: object) -> tuple[object, ...]:
    return (point.count, point.bucket_counts, point.min, point.max)  # type: ignore[attr-defined]


def test_a_batch_bins_exactly_as_observe_does(metrics: SchedulerMetrics) -> None:
    """Values in seconds on every bound, one ulp either side of it (where ``v * 1000``
    may round onto the bound or past it), between bounds, zero and past the last."""
    rng = random.Random(7)
    seconds = [0.0, 20.0, *(rng.uniform(0, 3) for _ in range(5000))]
    for bound in LATENCY_BOUNDARIES_MS:
        s = bound / 1000.0
        seconds += [s, math.nextafter(s, 0.0), math.nextafter(s, math.inf)]
    one_by_one = metrics.latency(queue="global")
    batched = metrics.latency(queue="local")
    for value in seconds:
        one_by_one.observe(value * 1000.0)
    batch = batched.batch(size=97)
    for value in seconds:
        batch.add(value)
    expected, got = one_by_one.snapshot(), batched.snapshot()
    assert _figures(got) == _figures(expected)
    assert got.sum == pytest.approx(expected.sum, rel=1e-12)


def test_values_still_pending_are_in_the_next_collection(metrics: SchedulerMetrics) -> None:
    batch = metrics.latency().batch(size=1000)
    for _ in range(10):
        batch.append(0.002)
    assert metrics.latency().snapshot().count == 10  # fewer than a batch: flushed by the read
    assert batch.pending == []


def test_bad_values_in_a_batch_are_dropped_and_counted_as_observe_does(
    metrics: SchedulerMetrics,
) -> None:
    batch = metrics.latency().batch()
    for value in (0.001, -0.5, math.nan, math.inf, 0.002):
        batch.append(value)
    p = metrics.latency().snapshot()
    assert (p.count, p.min, p.max) == (2, 1.0, 2.0)
    assert metrics.dropped_observations() == {"negative": 1, "nan": 1, "infinite": 1}


def test_a_collector_flushing_meanwhile_neither_loses_nor_doubles_a_value(
    metrics: SchedulerMetrics,
) -> None:
    """The producer appends and flushes every 64 values while another thread snapshots
    as fast as it can: every value is binned once (distinct values in turn, so that a
    value counted twice and another lost would show in the buckets)."""
    histogram = metrics.latency()
    batch = histogram.batch(size=64)
    done = threading.Event()
    seen: list[int] = []

    def collect() -> None:
        while not done.is_set():
            seen.append(histogram.snapshot().count)

    collector = threading.Thread(target=collect)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as it will go: many interleavings
    collector.start()
    n = 200_000
    values = [bound / 1000.0 for bound in LATENCY_BOUNDARIES_MS[:7]]
    try:
        for i in range(n):
            batch.add(values[i % 7])
    finally:
        done.set()
        collector.join()
        sys.setswitchinterval(interval)
    buckets = histogram.snapshot().bucket_counts
    assert buckets[:7] == tuple(n // 7 + (i < n % 7) for i in range(7))
    assert sum(buckets) == n
    assert seen == sorted(seen)  # counts never go back
    assert len(seen) > 10  # the collector did run meanwhile


def test_the_batch_of_an_owner_that_is_gone_is_flushed_then_forgotten(
    metrics: SchedulerMetrics,
) -> None:
    class Loop:
        pass

    histogram = metrics.latency()
    owner = Loop()
    batch = histogram.batch(owner=owner)
    batch.append(0.003)
    del owner
    gc.collect()
    assert histogram.snapshot().count == 1
    batch.append(0.003)  # a forgotten batch is no longer read
    assert histogram.snapshot().count == 1
    batch.flush()
    assert histogram.snapshot().count == 2


def test_close_flushes_and_detaches(metrics: SchedulerMetrics) -> None:
    histogram = metrics.latency()
    batch = histogram.batch()
    batch.append(0.001)
    batch.close()
    batch.append(0.001)
    assert histogram.snapshot().count == 1


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "8"])
def test_a_batch_size_must_be_a_positive_int(metrics: SchedulerMetrics, size: object) -> None:
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        metrics.latency().batch(size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("direction", [0.0, math.inf])
def test_the_split_is_moved_where_seconds_and_milliseconds_disagree(
    metrics: SchedulerMetrics, monkeypatch: pytest.MonkeyPatch, direction: float
) -> None:
    """The split is looked up in seconds and then checked against ``v * 1000``; with the
    seconds bounds deliberately a few ulps off, the buckets still match observe()."""
    from schedobs.contract import _instruments

    def off(s: float) -> float:
        for _ in range(3):
            s = math.nextafter(s, direction)
        return s

    shifted = tuple((ms, off(ms / 1000.0)) for ms, _ in _instruments._BOUND_PAIRS)
    monkeypatch.setattr(_instruments, "_BOUND_PAIRS", shifted)
    seconds = []
    for bound in LATENCY_BOUNDARIES_MS:
        s = bound / 1000.0
        for _ in range(4):
            s = math.nextafter(s, 0.0)
        for _ in range(9):
            seconds.append(s)
            s = math.nextafter(s, math.inf)
    one_by_one, batched = metrics.latency(queue="global"), metrics.latency(queue="local")
    for value in seconds:
        one_by_one.observe(value * 1000.0)
    batched.observe_many_seconds(seconds)
    assert _figures(batched.snapshot()) == _figures(one_by_one.snapshot())
