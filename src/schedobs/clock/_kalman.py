"""A two-state Kalman filter for a clock: offset θ (ns) and frequency f (ns/s).

The model is the usual one for a free-running oscillator against a reference:

    θ(t + Δt) = θ(t) + f(t)·Δt + w_θ        (white frequency noise: phase random walk)
    f(t + Δt) = f(t) + w_f                    (frequency random walk: "wander")

with the continuous-time process noise of the two random walks integrated
over Δt (``Q`` below).  A measurement is one sample's offset with its own
variance ``R`` (the estimator derives it from the sample's round-trip delay).

Time is in seconds and offsets in ns so that every quantity stays in the
range where float64 is exact enough; the caller converts from integer ns.
The covariance is kept as three floats (it is symmetric) and updated in the
Joseph-free form, which is stable here because ``H = [1, 0]`` and the filter
is re-run from a fresh prior whenever its inputs change (see ``_estimator``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ClockFilter", "FilterBank"]

_FORGET = 0.99  # per update: a model's likelihood remembers ~100 samples


@dataclass
class ClockFilter:
    """State ``(theta, freq)`` and covariance ``[[pxx, pxf], [pxf, pff]]`` at time ``t`` (s).

    ``q_theta``: spectral density of the phase random walk (ns²/s);
    ``q_freq``: spectral density of the frequency random walk ((ns/s)²/s).
    ``chi2``/``updates`` accumulate the normalised innovations, from which
    :meth:`variance_factor` rescales the covariance when the noise model is off.
    """

    theta: float
    freq: float
    pxx: float
    pxf: float
    pff: float
    t: float
    q_theta: float
    q_freq: float
    chi2: float = 0.0
    updates: int = 0
    loglik: float = 0.0

    def predicted(self, t: float) -> tuple[float, float, float, float]:
        """``(theta, pxx, pxf, pff)`` extrapolated to time ``t`` (either direction)."""
        dt = t - self.t
        adt = abs(dt)
        theta = self.theta + self.freq * dt
        pxx = (
            self.pxx
            + 2.0 * dt * self.pxf
            + dt * dt * self.pff
            + self.q_theta * adt
            + self.q_freq * adt**3 / 3.0
        )
        pxf = self.pxf + dt * self.pff + self.q_freq * dt * adt / 2.0
        pff = self.pff + self.q_freq * adt
        return theta, pxx, pxf, pff

    def innovation(self, t: float, z: float, r: float) -> tuple[float, float]:
        """``(ν, S)``: how far measurement ``z`` (variance ``r``) is from the prediction."""
        theta, pxx, _, _ = self.predicted(t)
        return z - theta, pxx + r

    def update(self, t: float, z: float, r: float) -> None:
        """Advance to ``t`` and fold in the measurement ``z`` with variance ``r``."""
        theta, pxx, pxf, pff = self.predicted(t)
        s = pxx + r
        nu = z - theta
        kx, kf = pxx / s, pxf / s
        self.theta = theta + kx * nu
        self.freq += kf * nu
        self.pff = pff - kf * pxf
        self.pxf = pxf - kx * pxf
        self.pxx = pxx - kx * pxx
        self.t = t
        self.chi2 += nu * nu / s
        self.updates += 1
        self.loglik = _FORGET * self.loglik - 0.5 * (math.log(s) + nu * nu / s)

    def variance_factor(self, prior_weight: float = 2.0) -> float:
        """Mean normalised innovation², shrunk towards 1 by ``prior_weight`` pseudo-updates.

        Near 1 when the delay-derived ``R`` and the wander ``Q`` describe the
        path; above 1 when the path is noisier than modelled (the reported
        uncertainty then grows with it), below 1 when it is quieter.
        """
        return (prior_weight + self.chi2) / (prior_weight + self.updates)


class FilterBank:
    """The same clock under several wander hypotheses, mixed by how well each predicts.

    How fast a crystal wanders depends on its temperature, its age and the
    host's load, so no single ``q_freq`` suits every host: too small and the
    filter lags a wandering clock while claiming precision, too large and it
    follows noise.  Each filter scores its innovations (log-likelihood with
    forgetting); the estimate is the likelihood-weighted mixture, whose
    variance includes the models' disagreement (multiple-model adaptive
    estimation).
    """

    def __init__(self, filters: list[ClockFilter]) -> None:
        self.filters = filters
        # The mixture as a function of dt since the filters' common time, kept
        # until the next update: estimates are read per exported span.
        self._mixture: tuple[float, float, float, float, float, float, float, float] | None = None

    @classmethod
    def start(
        cls,
        *,
        theta: float,
        freq: float,
        pxx: float,
        pff: float,
        t: float,
        q_theta: float,
        q_freqs: tuple[float, ...],
    ) -> FilterBank:
        return cls([ClockFilter(theta, freq, pxx, 0.0, pff, t, q_theta, q) for q in q_freqs])

    @property
    def best(self) -> ClockFilter:
        """The filter that currently predicts the samples best."""
        return max(self.filters, key=lambda f: f.loglik)

    def update(self, t: float, z: float, r: float) -> None:
        for f in self.filters:
            f.update(t, z, r)
        self._mixture = None

    def estimate(self, t: float) -> tuple[float, float, float]:
        """``(theta, variance, freq)`` at ``t``: the likelihood-weighted mixture, each
        filter's variance rescaled by its variance factor.

        Every filter sits at the same time ``t0``, so the mixture is
        ``theta + freq·dt`` with variance ``A + B·dt + C·dt² + D·|dt| + E·|dt|³``
        (dt = t − t0); the coefficients are computed once per update.
        """
        mixture = self._mixture
        if mixture is None:
            mixture = self._mixture = self._mix()
        t0, theta, freq, a, b, c, d, e = mixture
        dt = t - t0
        adt = abs(dt)
        variance = a + dt * (b + c * dt) + adt * (d + e * adt * adt)
        return theta + freq * dt, variance, freq

    def _mix(self) -> tuple[float, float, float, float, float, float, float, float]:
        top = max(f.loglik for f in self.filters)
        weights = [math.exp(f.loglik - top) for f in self.filters]
        total = sum(weights)
        theta = sum(w * f.theta for w, f in zip(weights, self.filters, strict=True)) / total
        freq = sum(w * f.freq for w, f in zip(weights, self.filters, strict=True)) / total
        a = b = c = d = e = 0.0
        for w, f in zip(weights, self.filters, strict=True):
            vf = f.variance_factor()
            dx, df = f.theta - theta, f.freq - freq
            a += w * (vf * f.pxx + dx * dx)
            b += w * (2.0 * (vf * f.pxf + dx * df))
            c += w * (vf * f.pff + df * df)
            d += w * vf * f.q_theta
            e += w * vf * f.q_freq / 3.0
        t0 = self.filters[0].t
        return t0, theta, freq, a / total, b / total, c / total, d / total, e / total
