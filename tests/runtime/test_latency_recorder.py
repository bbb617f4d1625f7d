"""An M's latency recorder: both ways in bin every value exactly as the contract's buckets say.

The compiled build bins on the spot (``add``), the interpreted one appends and
folds in batches (``record``); both builds run this file, so each way is
checked compiled and interpreted.  Values come in as seconds, differences of
two float stamps, and count at the nanosecond they round to: on a clock that
ticks in whole nanoseconds and has run for a day, nothing is lost.
"""

from __future__ import annotations

from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedobs.contract import LATENCY_BOUNDARIES_MS
from schedobs.runtime._latency import LatencyRecorder, _bit_length, to_ns

CONTRACT = tuple(round(b * 1_000_000) for b in LATENCY_BOUNDARIES_MS)

# Values on, beside and between the bounds, and far outside them.
_edges = [v + d for v in CONTRACT for d in (-1, 0, 1)]
latencies = st.one_of(
    st.sampled_from(_edges),
    st.integers(0, 20_000_000_000),
    st.integers(-(10**6), 0),  # an injected clock that went back
    st.integers(10**10, 10**12),  # past the last bound (10 s), up to 16 minutes
)
observations = st.lists(st.tuples(st.integers(0, 1), latencies), max_size=400)


def _expected(bounds: tuple[int, ...], values: list[int]) -> list[int]:
    """The row as the definition says: counts per bucket, then sum, min, max.  A
    row's min and max start at 2**62 and 0 (146 years of nanoseconds, and no
    time), so neither goes past those."""
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[bisect_left(bounds, v)] += 1
    if not values:
        return [*counts, 0, 1 << 62, 0]
    return [*counts, sum(values), min(1 << 62, *values), max(0, *values)]


def _stamps(ns: int) -> float:
    """A latency of ``ns`` as the M takes it: the difference of two stamps in seconds,
    read on a clock that has run for a day."""
    ready = 86_400 * 10**9 + 123_456_789
    return (ready + ns) / 1e9 - ready / 1e9


def _feed(recorder: LatencyRecorder, way: str, seen: list[tuple[int, int]]) -> None:
    for i, (source, v) in enumerate(seen):
        if way == "add":
            recorder.add(source, _stamps(v))
        else:
            recorder.record[source](_stamps(v))
        if i % 61 == 60:  # the M folds every 61st round
            recorder.fold()
    recorder.fold()


@settings(max_examples=300, deadline=None)
@given(observations, st.sampled_from(["add", "record"]))
def test_every_value_lands_in_its_bucket_once(seen: list[tuple[int, int]], way: str) -> None:
    recorder = LatencyRecorder(CONTRACT)
    _feed(recorder, way, seen)
    for source in (0, 1):
        values = [v for s, v in seen if s == source]
        assert recorder.rows[source] == _expected(CONTRACT, values)


# Runs of values in one bucket, as tasks that waited in one queue give: a run
# grows across folds, moves between buckets, and the two sources interleave.
runs = st.lists(st.tuples(st.integers(0, 1), latencies, st.integers(1, 150)), max_size=12).map(
    lambda rs: [(source, v) for source, v, n in rs for _ in range(n)]
)


@settings(max_examples=200, deadline=None)
@given(runs, st.sampled_from(["add", "record"]))
def test_runs_of_values_in_one_bucket_count_once_each(
    seen: list[tuple[int, int]], way: str
) -> None:
    recorder = LatencyRecorder(CONTRACT)
    _feed(recorder, way, seen)
    total = len(CONTRACT) + 1
    for source in (0, 1):
        values = [v for s, v in seen if s == source]
        row, expected = recorder.rows[source], _expected(CONTRACT, values)
        assert row[:total] == expected[:total]  # every count exact
        assert row[total + 1 :] == expected[total + 1 :]  # min and max
        # The sum: exact on the spot; a fold of appended values rounds its float
        # sum once, which may differ by a nanosecond per fold (see _latency).
        slack = 0 if way == "add" else len(seen) // 61 + 1
        assert abs(row[total] - expected[total]) <= slack


def test_a_run_reaches_the_rows_at_every_fold_and_goes_on_after() -> None:
    recorder = LatencyRecorder(CONTRACT)
    for _ in range(5):
        recorder.add(0, 30e-6)
    recorder.fold()
    assert recorder.rows[0][bisect_left(CONTRACT, 30_000)] == 5
    recorder.add(0, 31e-6)  # the same bucket: the run goes on from the fold
    recorder.add(0, 7e-9)  # another: the run so far is counted, a new one starts
    recorder.add(0, 30e-6)
    recorder.fold()
    row = recorder.rows[0]
    assert row[bisect_left(CONTRACT, 30_000)] == 7 and row[0] == 1
    assert sum(row[: len(CONTRACT) + 1]) == 8


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 10**9), min_size=1, max_size=12, unique=True).map(
        lambda b: tuple(sorted(b))
    ),
    observations,
)
def test_bounds_closer_than_twofold_bin_the_same(
    bounds: tuple[int, ...], seen: list[tuple[int, int]]
) -> None:
    # Custom hooks may give any bounds; the on-the-spot path's one-step shortcut
    # holds only for bounds at least 2x apart, so it must walk on for the rest.
    ways = {}
    for way in ("add", "record"):
        recorder = LatencyRecorder(bounds)
        _feed(recorder, way, seen)
        ways[way] = recorder.rows
    assert ways["add"] == ways["record"]
    assert ways["add"][0] == _expected(bounds, [v for s, v in seen if s == 0])


def test_both_ways_between_two_folds_add_up() -> None:
    recorder = LatencyRecorder(CONTRACT)
    recorder.add(0, 30e-6)
    recorder.record[0](30e-6)
    recorder.record[0](7e-9)
    recorder.fold()
    row = recorder.rows[0]
    assert row[bisect_left(CONTRACT, 30_000)] == 2 and row[0] == 1
    assert row[len(CONTRACT) + 1 :] == [60_007, 7, 30_000]


@pytest.mark.parametrize("way", ["add", "record"])
def test_nothing_reaches_the_rows_before_a_fold(way: str) -> None:
    recorder = LatencyRecorder(CONTRACT)
    _feed(recorder, way, [])
    if way == "add":
        recorder.add(1, 5e-9)
    else:
        recorder.record[1](5e-9)
    assert sum(recorder.rows[1][: len(CONTRACT) + 1]) == 0
    recorder.fold()
    assert sum(recorder.rows[1][: len(CONTRACT) + 1]) == 1


def test_a_stopped_test_clock_reads_zero_latency() -> None:
    # Runtime(clock=lambda: 42): both stamps the same reading.
    from schedobs.runtime._latency import seconds_clock

    stamp = seconds_clock(lambda: 42)
    recorder = LatencyRecorder(CONTRACT)
    for _ in range(3):
        recorder.add(0, stamp() - stamp())
        recorder.record[1](stamp() - stamp())
    recorder.fold()
    for row in recorder.rows:
        assert row[0] == 3 and row[len(CONTRACT) + 1 :] == [0, 0, 0]


def test_the_default_clock_is_read_as_seconds_without_an_int() -> None:
    import time

    from schedobs.runtime._latency import seconds_clock

    assert seconds_clock(time.perf_counter_ns) is time.perf_counter
    now = [1_500]
    stamp = seconds_clock(lambda: now[0])
    ready = stamp()
    now[0] = 11_500  # exactly the first bound later
    recorder = LatencyRecorder(CONTRACT)
    recorder.add(0, stamp() - ready)
    now[0] = 11_501
    recorder.add(0, stamp() - ready)
    recorder.fold()
    assert recorder.rows[0][:2] == [1, 1]  # 10 µs is within the first bucket, 10.001 past it
    assert recorder.rows[0][len(CONTRACT) + 1 :] == [20_001, 10_000, 10_001]


@given(st.integers(1, 2**63 - 1))
def test_the_native_bit_length_is_the_int_method(value: int) -> None:
    # add() picks its first bucket by the value's bit length, counted without a call.
    assert _bit_length(value) == value.bit_length()


def test_a_value_beyond_any_wait_counts_in_the_overflow_bucket_at_the_largest_magnitude() -> None:
    # A 64-bit integer holds every value: one from a clock gone wild is clamped, not an error.
    assert to_ns(1e12) == to_ns(float("inf")) == (1 << 62) - 1
    assert to_ns(-1e12) == -((1 << 62) - 1)
    with pytest.raises(ValueError, match="NaN"):
        to_ns(float("nan"))
    recorder = LatencyRecorder(CONTRACT)
    recorder.add(0, 1e12)
    recorder.fold()
    assert recorder.rows[0][len(CONTRACT)] == 1
