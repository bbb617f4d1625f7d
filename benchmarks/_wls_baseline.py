"""The weighted-least-squares estimator of schedobs 0.x, kept as a benchmark baseline.

It was replaced by the Kalman filter in ``schedobs.clock._estimator`` (issue #11);
``bench_clock.py`` runs both on the same exchanges.  The fit is unchanged; the input
checks (identical to the current estimator's) are left out.

Offset and frequency of the local clock against a reference, from two-way samples.

Convention (docs/clock.md): ``offset = reference − local``; a local time ``t`` is
corrected as ``t + offset(t)``.

Each sample is an NTP four-timestamp exchange: t1 (client send) and t4 (client
receive) on the local clock, t2 (server receive) and t3 (server send) on the
reference.  It gives ``θ = ((t2 − t1) + (t3 − t4)) / 2`` and the round-trip
delay ``δ = (t4 − t1) − (t3 − t2)``; half of any asymmetry of the trip goes
into θ, so a sample is only as good as its delay is close to the path's
minimum.

The estimator fits ``θ(t) = a + b·(t − t̄)`` (offset *and* frequency) by
weighted least squares over a window of recent samples, weighting each by how
close its delay is to the window's minimum: a queueing spike of 1 ms gets a
weight ~10⁴ times smaller than a clean sample.  That is chrony's idea (a
regression over the best samples) rather than NTP's clock filter (the single
lowest-delay sample of the last eight, no drift), and it is what reaches the
jitter floor: with drift, the min-delay sample is already stale by the time it
is used.

Cold start: one sample gives its own θ (uncertainty δ/2); two or more give a
fit whose frequency is pulled towards zero until the samples span enough time
to estimate it (a ridge term), so early estimates do not swing.

A wall-clock step shows up as several consecutive clean samples far from the
prediction: the window is then restarted from them (``steps`` counts this).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from schedobs.clock import ClockEstimate, Sample

__all__ = ["LeastSquaresEstimator"]


_MAX_FREQ = 500e-6  # 500 ppm: beyond any crystal


class LeastSquaresEstimator:
    """Drift-aware offset estimator (see the module docstring).

    Thread-safe: a prober adds samples while exporters read estimates.
    """

    def __init__(
        self,
        *,
        window: int = 64,
        jitter_floor_ns: int = 2_000,
        freq_prior_ns: float = 5e9,
        step_threshold_ns: int = 1_000_000,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self._window = window
        self._floor = float(jitter_floor_ns)
        # Ridge on the frequency: as if the fit had seen a zero slope over this
        # many ns of (weighted) time spread; it fades as real spread accrues.
        self._freq_prior = freq_prior_ns
        self._step_threshold = step_threshold_ns
        self._clock = clock_ns
        self._lock = threading.Lock()
        self._samples: deque[Sample] = deque(maxlen=window)
        self._suspect: list[Sample] = []
        self._fit: tuple[float, float, float, float, float, int] | None = None
        #: Samples refused as invalid (negative delay, reversed times, absurd values).
        self.rejected = 0
        #: Times the window was restarted after a clock step.
        self.steps = 0
        #: Samples accepted in total.
        self.accepted = 0

    # --- input -----------------------------------------------------------------------

    def add_sample(self, t1: int, t2: int, t3: int, t4: int) -> Sample:
        """Add one exchange (integer ns).  The benchmark feeds valid ones only, so the
        input checks of the original are left out here."""
        delay = (t4 - t1) - (t3 - t2)
        sample = Sample(at_ns=(t1 + t4) // 2, offset_ns=((t2 - t1) + (t3 - t4)) / 2, delay_ns=delay)
        with self._lock:
            self._admit(sample)
            self.accepted += 1
        return sample

    def _admit(self, sample: Sample) -> None:
        fit = self._fit
        if fit is not None and len(self._samples) >= 4:
            predicted = fit[0] + fit[1] * (sample.at_ns - fit[2])
            min_delay = min(s.delay_ns for s in self._samples)
            clean = sample.delay_ns <= min_delay + max(4 * self._floor, 0.1 * min_delay)
            if clean and abs(sample.offset_ns - predicted) > self._step_threshold:
                # Far from the prediction with a clean path: a step, or a fluke.
                self._suspect.append(sample)
                if len(self._suspect) < 3:
                    return
                self._samples.clear()
                self._samples.extend(self._suspect)
                self._suspect = []
                self.steps += 1
                self._refit()
                return
            if clean:
                self._suspect = []
        self._samples.append(sample)
        self._refit()

    def reset(self) -> None:
        """Forget every sample (after a known clock step, say)."""
        with self._lock:
            self._samples.clear()
            self._suspect = []
            self._fit = None

    # --- the fit -------------------------------------------------------------------------

    def _refit(self) -> None:
        samples = list(self._samples)
        min_delay = min(s.delay_ns for s in samples)
        floor = self._floor
        weights = []
        for s in samples:
            excess = (s.delay_ns - min_delay) / 2.0  # worst-case offset error it adds
            weights.append(1.0 / (floor * floor + excess * excess))
        total = sum(weights)
        t_mean = sum(w * s.at_ns for w, s in zip(weights, samples, strict=True)) / total
        o_mean = sum(w * s.offset_ns for w, s in zip(weights, samples, strict=True)) / total
        stt = sum(w * (s.at_ns - t_mean) ** 2 for w, s in zip(weights, samples, strict=True))
        sto = sum(
            w * (s.at_ns - t_mean) * (s.offset_ns - o_mean)
            for w, s in zip(weights, samples, strict=True)
        )
        # The ridge term, in the same weighted units as stt.
        ridge = total * self._freq_prior**2 / max(len(samples), 1)
        slope = sto / (stt + ridge) if len(samples) > 1 else 0.0
        slope = max(-_MAX_FREQ, min(_MAX_FREQ, slope))
        # Uncertainty: weighted residual scale (at least the jitter floor), over
        # the effective number of samples; plus the slope's share when extrapolating.
        n_eff = total * total / sum(w * w for w in weights)
        resid = (
            sum(
                w * (s.offset_ns - o_mean - slope * (s.at_ns - t_mean)) ** 2
                for w, s in zip(weights, samples, strict=True)
            )
            / total
        )
        if len(samples) == 1:
            scale = max(samples[0].delay_ns / 2.0, floor)
        else:
            scale = max(math.sqrt(resid * n_eff / max(n_eff - 1.0, 1.0)), floor)
        var_a = scale * scale / n_eff
        var_b = scale * scale / (stt / total * n_eff + ridge / total * n_eff)
        self._fit = (o_mean, slope, t_mean, var_a, var_b, len(samples))

    # --- output -----------------------------------------------------------------------------

    def estimate(self, at_ns: int | None = None) -> ClockEstimate | None:
        """The offset at local time ``at_ns`` (default: now), or ``None`` before any sample."""
        with self._lock:
            fit = self._fit
        if fit is None:
            return None
        a, b, t_mean, var_a, var_b, n = fit
        at = self._clock() if at_ns is None else at_ns
        dt = at - t_mean
        offset = a + b * dt
        uncertainty = math.sqrt(var_a + dt * dt * var_b)
        return ClockEstimate(
            offset_ns=round(offset),
            uncertainty_ns=max(round(uncertainty), 1),
            freq_ppm=b * 1e6,
            samples=n,
            at_ns=at,
        )

    def __len__(self) -> int:
        return len(self._samples)
