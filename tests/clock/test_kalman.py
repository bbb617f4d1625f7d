"""The clock filter and the bank of wander hypotheses."""

from __future__ import annotations

import math
import random

import pytest

from schedobs.clock._kalman import ClockFilter, FilterBank


def _bank(seed: int) -> FilterBank:
    rng = random.Random(seed)
    bank = FilterBank.start(
        theta=1e6, freq=0.0, pxx=1e8, pff=(50e3) ** 2, t=0.0, q_theta=1e4,
        q_freqs=tuple((10.0 * k) ** 2 for k in (0.1, 1.0, 10.0, 100.0)),
    )  # fmt: skip
    for k in range(1, 40):
        t = 5.0 * k
        # 30 ppm (30,000 ns/s) with a little wander and 20 µs of noise.
        bank.update(t, 1e6 + 30e3 * t + 5 * t * t + rng.gauss(0, 20e3), (20e3) ** 2)
    return bank


def test_a_filter_recovers_offset_and_frequency_from_clean_samples() -> None:
    f = ClockFilter(0.0, 0.0, 1e8, 0.0, (50e3) ** 2, 0.0, 1e4, 100.0)
    for k in range(1, 30):
        f.update(5.0 * k, 2e6 - 12e3 * 5.0 * k, 1e4)  # -12 ppm
    theta, _, _, _ = f.predicted(150.0)
    assert abs(theta - (2e6 - 12e3 * 150.0)) < 50
    assert abs(f.freq + 12e3) < 5
    assert 0 < f.pxx < 1e4  # below the samples' own variance: they were averaged


@pytest.mark.parametrize("dt", [0.0, 0.7, 5.0, -3.0, 600.0])
def test_the_mixture_in_closed_form_matches_the_filters_one_by_one(dt: float) -> None:
    bank = _bank(1)
    t = bank.filters[0].t + dt
    top = max(f.loglik for f in bank.filters)
    parts = []
    for f in bank.filters:
        theta, pxx, _, _ = f.predicted(t)
        parts.append((math.exp(f.loglik - top), theta, f.variance_factor() * pxx, f.freq))
    total = sum(w for w, *_ in parts)
    theta = sum(w * x for w, x, _, _ in parts) / total
    variance = sum(w * (v + (x - theta) ** 2) for w, x, v, _ in parts) / total
    freq = sum(w * y for w, _, _, y in parts) / total
    got = bank.estimate(t)
    assert got[0] == pytest.approx(theta, rel=1e-12, abs=1e-6)
    assert got[1] == pytest.approx(variance, rel=1e-9)
    assert got[2] == pytest.approx(freq, rel=1e-12)


def test_the_bank_prefers_the_wander_the_data_shows() -> None:
    bank = _bank(2)  # the frequency moves by 10 ns/s per second: a fast-wandering clock
    assert bank.best is not bank.filters[0]  # not the slowest hypothesis
