"""OffsetEstimator: exact on clean data, robust to spikes, tracks drift, refuses bad samples."""

from __future__ import annotations

import math
import random

import pytest

from schedobs.clock import OffsetEstimator

REF0 = 1_700_000_000_000_000_000


def exchange(
    offset: float, drift: float, t_ref: int, fwd: float, back: float, server: int = 20_000
) -> tuple[int, int, int, int]:
    """Four timestamps for a host whose clock is ``ref − (offset + drift·(ref − REF0))``."""

    def local(ref: int) -> int:  # integer ns throughout: floats lose ns at 1.7e18
        return ref - round(offset + drift * (ref - REF0))

    t1 = local(t_ref)
    t2 = t_ref + round(fwd)
    t3 = t2 + server
    t4 = local(t3 + round(back))
    return t1, t2, t3, t4


def truth(offset: float, drift: float, ref: int) -> float:
    return offset + drift * (ref - REF0)


def test_single_clean_sample_is_exact() -> None:
    est = OffsetEstimator()
    assert est.estimate() is None
    t1, t2, t3, t4 = exchange(12_345_678, 0.0, REF0, 50_000, 50_000)
    sample = est.add_sample(t1, t2, t3, t4)
    assert sample.delay_ns == 100_000
    e = est.estimate(at_ns=t4)
    assert e is not None
    assert e.offset_ns == 12_345_678
    assert e.uncertainty_ns == 50_000  # half the delay: all one knows from one sample
    assert e.samples == 1


def test_tracks_offset_and_drift_through_jitter_and_spikes() -> None:
    rng = random.Random(7)
    offset, drift = -31e6, 37e-6
    est = OffsetEstimator()
    errors = []
    for k in range(240):  # 20 minutes, a probe every 5 s
        ref = REF0 + k * 5_000_000_000
        fwd = 150_000 + rng.lognormvariate(math.log(20_000), 0.8)
        back = 150_000 + rng.lognormvariate(math.log(30_000), 0.8)
        if rng.random() < 0.04:
            fwd += rng.uniform(1e6, 2e6)  # a queueing spike
        est.add_sample(*exchange(offset, drift, ref, fwd, back))
        if k >= 24:
            e = est.estimate(at_ns=exchange(offset, drift, ref, fwd, back)[3])
            assert e is not None
            errors.append(
                abs(e.offset_ns - truth(offset, drift, ref + round(fwd) + 20_000 + round(back)))
            )
    errors.sort()
    assert errors[len(errors) // 2] < 15_000  # median under 15 µs
    assert errors[int(len(errors) * 0.99)] < 90_000
    final = est.estimate()
    assert final is not None
    assert abs(final.freq_ppm - 37.0) < 1.0


def test_a_spike_does_not_move_a_converged_estimate() -> None:
    est = OffsetEstimator()
    for k in range(30):
        est.add_sample(*exchange(5e6, 0.0, REF0 + k * 5_000_000_000, 100_000, 100_000))
    before = est.estimate(at_ns=REF0)
    est.add_sample(*exchange(5e6, 0.0, REF0 + 31 * 5_000_000_000, 100_000 + 2e6, 100_000))
    after = est.estimate(at_ns=REF0)
    assert before is not None and after is not None
    assert abs(after.offset_ns - before.offset_ns) < 2_000  # a 2 ms spike moved it < 2 µs


@pytest.mark.parametrize(
    ("sample", "error", "match"),
    [
        ((100, 50, 60, 90), ValueError, "t4 .* is before t1"),
        ((0, 60, 50, 100), ValueError, "t3 .* is before t2"),
        ((0, 10, 200, 100), ValueError, "negative round-trip delay"),
        ((0, 1, 2, 3.5), TypeError, "t4 must be an int"),
        ((0, 10**18, 10**18 + 1, 10), ValueError, "beyond a day"),
        ((0, 1, 2, 20 * 10**9), ValueError, "not a clock sample"),
    ],
)
def test_invalid_samples_are_refused_and_counted(
    sample: tuple[int, int, int, int], error: type[Exception], match: str
) -> None:
    est = OffsetEstimator()
    est.add_sample(0, 1_000, 1_100, 2_000)
    with pytest.raises(error, match=match):
        est.add_sample(*sample)
    assert est.rejected == 1
    assert len(est) == 1  # nothing folded in
    e = est.estimate(at_ns=1_000)
    assert e is not None
    assert e.offset_ns == 50


def test_a_clock_step_restarts_the_window() -> None:
    est = OffsetEstimator()
    for k in range(20):
        est.add_sample(*exchange(1e6, 0.0, REF0 + k * 5_000_000_000, 80_000, 80_000))
    # The local clock steps by 50 ms: three clean samples far from the fit.
    for k in range(20, 24):
        est.add_sample(*exchange(1e6 + 50e6, 0.0, REF0 + k * 5_000_000_000, 80_000, 80_000))
    assert est.steps == 1
    e = est.estimate(at_ns=REF0 + 24 * 5_000_000_000)
    assert e is not None
    assert abs(e.offset_ns - 51e6) < 1_000


def test_uncertainty_shrinks_with_samples() -> None:
    rng = random.Random(1)
    est = OffsetEstimator()
    seen = []
    for k in range(40):
        est.add_sample(
            *exchange(0, 0.0, REF0 + k * 5_000_000_000, 100_000 + rng.uniform(0, 30_000), 100_000)
        )
        e = est.estimate(at_ns=REF0 + k * 5_000_000_000)
        assert e is not None
        seen.append(e.uncertainty_ns)
    assert seen[-1] < seen[0]


def test_rpc_span_pairs_feed_the_estimator() -> None:
    from types import SimpleNamespace

    est = OffsetEstimator()
    client = SimpleNamespace(start_time=1_000_000, end_time=1_900_000)  # this host
    server = SimpleNamespace(start_time=6_400_000, end_time=6_500_000)  # the reference
    sample = est.add_span_pair(client, server)
    assert sample.delay_ns == 800_000
    assert sample.offset_ns == 5_000_000
    with pytest.raises(ValueError, match="must have ended"):
        est.add_span_pair(SimpleNamespace(start_time=1, end_time=None), server)
    assert est.rejected == 1
