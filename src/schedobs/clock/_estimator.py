"""Offset and frequency of the local clock against a reference, from two-way samples.

Convention (docs/clock.md): ``offset = reference − local``; a local time ``t`` is
corrected as ``t + offset(t)``.

Each sample is an NTP four-timestamp exchange: t1 (client send) and t4 (client
receive) on the local clock, t2 (server receive) and t3 (server send) on the
reference.  It gives ``θ = ((t2 − t1) + (t3 − t4)) / 2`` and the round-trip
delay ``δ = (t4 − t1) − (t3 − t2)``.  θ is off by half the difference of the
two one-way delays, so ``|θ − truth| ≤ δ/2`` always, and a sample is only as
good as its delay is close to the path's minimum.

The estimator is a Kalman filter on (offset, frequency) (``_kalman``):

* **Measurement variance from the delay.**  A sample whose delay exceeds the
  window's minimum by ``e`` carries up to ``e/2`` of error: its variance is
  ``c² + (e/2)²/2``.  ``c``, the noise of a sample at the minimum, scales
  with the path's jitter (the median delay's distance above the minimum,
  blended with ``jitter_prior_ns`` while the window is short) and is larger
  while few samples have been seen, since the minimum of a few delays says
  little about the path's floor.  A 1 ms queueing spike weighs ~10³ less
  than a clean sample; nothing is discarded for its delay alone.
* **No ridge: a proper prior on the frequency** (``freq_prior_ppm``, the
  spread of crystals), so a host 80 ppm off is tracked from its second
  sample instead of being pulled towards zero until its samples span minutes.
* **Wander is learnt.**  Six filters assume frequency random walks from 0.1×
  to 30× ``wander_ppm``; each scores how well it predicts, and the estimate
  is their likelihood-weighted mixture (``FilterBank``).  A clock that
  wanders ten times faster than assumed keeps both its accuracy and a
  truthful uncertainty.
* **Re-run on new information.**  The filters are re-run over the window of
  recent samples while it is young (16 samples), whenever the minimum delay
  drops (older samples' variances were too optimistic) and when a sample
  arrives out of order; otherwise it is one update per sample.  A first
  sample that was itself a spike stops counting once a cleaner one arrives.
* **Steps, not drift.**  A sample is held aside only when its innovation
  exceeds ``step_gate`` standard deviations of the prediction (which carries
  the frequency's uncertainty) *and* the prediction lies outside the
  sample's hard bound δ/2: statistics alone are overconfident while few
  samples span little time, and clean samples must never be turned away.
  Three samples in a row on the same side (noisy ones count when they fit
  the new level better than the old) are a clock step: the filters restart
  from them, keeping the frequency (``steps`` counts this).  A steep drift
  is not a step, because the prediction follows the frequency.
* **Calibrated uncertainty.**  ``uncertainty_ns`` is one standard deviation:
  the mixture's variance at the requested time, each filter's rescaled by
  its normalised innovations (``ClockFilter.variance_factor``), plus priors
  for the biases no two-way exchange can see: a fixed path asymmetry
  (``path_asymmetry`` × minimum delay / 2), queueing that is heavier one
  way than the other (``jitter_asymmetry`` × the weighted mean excess / 2)
  and the host's own timestamping (``host_asymmetry_ns``).  A lone sample
  reports ``δ/2``, the hard bound.  ``benchmarks/bench_clock.py`` prints the
  share of errors within 1σ and 3σ on a simulated fleet.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from schedobs import _forksafe
from schedobs._checks import is_int

from ._kalman import FilterBank

__all__ = ["ClockEstimate", "OffsetEstimator", "Sample", "SpanTimes"]


class SpanTimes(Protocol):
    """Anything with ``start_time`` and ``end_time`` in ns (an SDK ``ReadableSpan``)."""

    @property
    def start_time(self) -> int | None: ...

    @property
    def end_time(self) -> int | None: ...


_MAX_OFFSET_NS = 86_400 * 10**9  # a day: anything beyond is not a clock, it is a bug
_MAX_DELAY_NS = 10 * 10**9
_NS_PER_S = 1e9
_PPM = 1e3  # ns/s per ppm
_Q_THETA = 1e4  # ns²/s: phase random walk of a local clock, ~0.1 µs/√s, below any path's noise
_EXCESS_SHARE = 0.5  # the share of (excess/2)² a sample's variance takes (see the docstring)
_STEP_SAMPLES = 3
_WANDER_BANK = (0.1, 0.316, 1.0, 3.16, 10.0, 31.6)
_COLD_SAMPLES = 16  # windows up to this size are re-run on every sample
_PRIOR_WEIGHT = 2  # samples' worth of trust in the jitter prior


@dataclass(frozen=True)
class Sample:
    """One two-way exchange, reduced: local mid-point time, offset and delay (ns)."""

    at_ns: int
    offset_ns: float
    delay_ns: int


@dataclass(frozen=True)
class ClockEstimate:
    """The estimated offset (reference − local) at local time ``at_ns``."""

    offset_ns: int
    uncertainty_ns: int
    freq_ppm: float
    samples: int
    at_ns: int


class OffsetEstimator:
    """Drift-aware offset estimator (see the module docstring).

    >>> est = OffsetEstimator()
    >>> est.add_sample(1_000, 6_000, 6_100, 1_300)   # ns: t1, t2, t3, t4
    Sample(at_ns=1150, offset_ns=4900.0, delay_ns=200)
    >>> est.estimate(at_ns=1_150).offset_ns
    4900

    Parameters (all have defaults that suit a data-centre path):

    ``window``: samples kept for the minimum delay and for re-runs.
    ``jitter_floor_ns``: the least noise of any sample (one sigma).
    ``path_asymmetry``: one sigma of the fixed difference between the two
    one-way delays, as a fraction of the round trip (0.0125: each direction's
    route within about ±3 % of their mean).  Raise it for routes known to
    differ more; it only widens ``uncertainty_ns``.
    ``jitter_asymmetry``: the share of the mean queueing delay that may sit
    on one direction more than the other (one sigma).
    ``jitter_prior_ns``: the path's jitter assumed before the window shows it.
    ``host_asymmetry_ns``: one sigma of the host-side timestamping asymmetry
    (small with the kernel timestamps the prober uses on Linux).
    ``freq_prior_ppm``: one sigma of the frequency before any data (crystals
    are within ±50 ppm each, the difference of two within ±100).
    ``wander_ppm``: the centre of the frequency random walks assumed, ppm/√s.
    ``step_gate``: standard deviations of the prediction beyond which a
    sample is held as a possible step.

    Thread-safe: a prober adds samples while exporters read estimates.
    """

    def __init__(
        self,
        *,
        window: int = 64,
        jitter_floor_ns: int = 2_000,
        path_asymmetry: float = 0.0125,
        jitter_asymmetry: float = 0.1,
        jitter_prior_ns: int = 50_000,
        host_asymmetry_ns: int = 2_000,
        freq_prior_ppm: float = 50.0,
        wander_ppm: float = 0.01,
        step_gate: float = 5.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        for name, value in (
            ("jitter_floor_ns", jitter_floor_ns),
            ("freq_prior_ppm", freq_prior_ppm),
            ("step_gate", step_gate),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        for name, value in (
            ("host_asymmetry_ns", host_asymmetry_ns),
            ("path_asymmetry", path_asymmetry),
            ("jitter_asymmetry", jitter_asymmetry),
            ("wander_ppm", wander_ppm),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self._window = window
        self._floor2 = float(jitter_floor_ns) ** 2
        self._drop = 2 * jitter_floor_ns  # a fall of the minimum delay worth a re-run
        self._asymmetry = path_asymmetry
        self._jitter_asymmetry = jitter_asymmetry
        self._jitter_prior = float(jitter_prior_ns)
        self._host2 = float(host_asymmetry_ns) ** 2
        self._clean2 = self._floor2
        self._freq_var = (freq_prior_ppm * _PPM) ** 2
        # The bank spans 0.1x to 30x ``wander_ppm`` (see FilterBank).
        self._q_freqs = tuple((wander_ppm * k * _PPM) ** 2 for k in _WANDER_BANK)
        self._gate2 = step_gate * step_gate
        self._clock = clock_ns
        self._lock = threading.Lock()
        _forksafe.register(self)  # a prefork child asks for estimates too
        self._samples: deque[Sample] = deque(maxlen=window)
        # Samples held as a possible step: (sample, innovation, variance).
        self._suspect: list[tuple[Sample, float, float]] = []
        # The last sample folded in: (sample, innovation, S, its variance).
        self._last: tuple[Sample, float, float, float] | None = None
        self._filter: FilterBank | None = None
        self._min_delay = 0  # ns, over the window: the path's floor as far as it shows
        self._bias2 = 0.0  # ns²: the prior for jitter that queues more one way than the other
        self._origin = 0  # ns; the filter's time is seconds since this
        self._seed = (0.0, self._freq_var)  # frequency mean and variance a run starts from
        #: Samples refused as invalid (negative delay, reversed times, absurd values).
        self.rejected = 0
        #: Times the filter was restarted after a clock step.
        self.steps = 0
        #: Samples accepted in total.
        self.accepted = 0
        #: Changes whenever the estimate may have (a sample, a reset): between two
        #: changes, ``estimate(t)`` is the same line in ``t``, which callers may cache.
        self.version = 0

    # --- input -----------------------------------------------------------------------

    def add_sample(self, t1: int, t2: int, t3: int, t4: int) -> Sample:
        """Add one exchange (integer ns).  Raises ``ValueError`` (and counts it) if invalid."""
        try:
            sample = self._reduce(t1, t2, t3, t4)
        except (TypeError, ValueError):
            with self._lock:
                self.rejected += 1
            raise
        with self._lock:
            self._admit(sample)
            self.accepted += 1
            self.version += 1
        return sample

    def add_span_pair(self, client: SpanTimes, server: SpanTimes) -> Sample:
        """Add the exchange an instrumented RPC gives for free: a client span recorded
        on this host (start = t1, end = t4) and its server child recorded on the
        reference host (start = t2, end = t3).  Same validation as :meth:`add_sample`."""
        times = (client.start_time, server.start_time, server.end_time, client.end_time)
        if any(t is None for t in times):
            with self._lock:
                self.rejected += 1
            raise ValueError("both spans must have ended (start and end times set)")
        return self.add_sample(*times)  # type: ignore[arg-type]

    @staticmethod
    def _reduce(t1: int, t2: int, t3: int, t4: int) -> Sample:
        for name, value in (("t1", t1), ("t2", t2), ("t3", t3), ("t4", t4)):
            if not is_int(value):
                raise TypeError(f"{name} must be an int of nanoseconds, got {value!r}")
        if t4 < t1:
            raise ValueError(f"t4 ({t4}) is before t1 ({t1}): the reply came before the request")
        if t3 < t2:
            raise ValueError(f"t3 ({t3}) is before t2 ({t2}): the server replied before receiving")
        delay = (t4 - t1) - (t3 - t2)
        if delay < 0:
            raise ValueError(
                f"negative round-trip delay ({delay} ns): the server's processing time exceeds "
                "the round trip, so one of the clocks is not monotonic"
            )
        if delay > _MAX_DELAY_NS:
            raise ValueError(f"round-trip delay of {delay / 1e9:.1f} s is not a clock sample")
        offset = ((t2 - t1) + (t3 - t4)) / 2
        if abs(offset) > _MAX_OFFSET_NS:
            raise ValueError(f"offset of {offset / 1e9:.0f} s is beyond a day: refusing it")
        return Sample(at_ns=(t1 + t4) // 2, offset_ns=offset, delay_ns=delay)

    def _admit(self, sample: Sample) -> None:
        filt = self._filter
        samples = self._samples
        if filt is None:
            self._origin = sample.at_ns
            samples.append(sample)
            self._rerun()
            return
        if sample.at_ns < samples[-1].at_ns:
            # Out of order (span pairs end in any order): place it and re-run.
            ordered = sorted([*samples, sample], key=lambda s: s.at_ns)
            samples.clear()
            samples.extend(ordered[-self._window :])
            self._suspect = []
            self._last = None
            self._rerun()
            return
        t = self._seconds(sample.at_ns)
        r = self._variance(sample.delay_ns, min(self._min_delay, sample.delay_ns))
        best = filt.best
        nu, s = best.innovation(t, sample.offset_ns, r)
        # Held aside only if the prediction is implausible by the statistics *and*
        # outside the sample's hard bound (|error| <= δ/2): the statistics alone
        # are overconfident while few samples span little time, and clean
        # samples must never be turned away (the failure of the 0.x estimator).
        beyond = nu * nu > self._gate2 * s * max(best.variance_factor(), 1.0) and abs(nu) > (
            sample.delay_ns / 2.0 + math.sqrt(self._gate2 * s)
        )
        # A noisy sample (a queueing spike) may sit within the gate after a step;
        # it still counts towards the step if it fits the new level better.
        if beyond or (
            self._suspect
            and self._fits(sample, r, nu, s, self._suspect[-1][0], self._suspect[-1][2])
        ):
            self._hold(sample, nu, r)
            return
        self._suspect = []
        self._last = (sample, nu, s, r)
        samples.append(sample)
        floor = self._min_delay
        self._refresh()
        if self._min_delay + self._drop < floor or len(samples) <= _COLD_SAMPLES:
            # The path's floor fell (earlier samples were noisier than they
            # looked), or the window is young and its noise scale still moving.
            self._rerun()
            return
        filt.update(t, sample.offset_ns, self._variance(sample.delay_ns, self._min_delay))

    def _fits(
        self, sample: Sample, r: float, nu: float, s: float, anchor: Sample, r_anchor: float
    ) -> bool:
        """Whether ``sample`` (innovation ``nu``, variance ``s`` against the filter) is
        nearer the level ``anchor`` sits at, carried along the current frequency."""
        assert self._filter is not None
        dt = (sample.at_ns - anchor.at_ns) / _NS_PER_S
        alt = sample.offset_ns - (anchor.offset_ns + self._filter.best.freq * dt)
        return alt * alt / (r + r_anchor) < nu * nu / s

    def _hold(self, sample: Sample, nu: float, r: float) -> None:
        """A sample off the prediction: a fluke, or part of a clock step."""
        suspect = self._suspect
        if suspect and (suspect[-1][1] > 0) != (nu > 0):
            suspect.clear()  # the other side: not one step
        if not suspect and self._last is not None:
            # The sample just before may have been the step's first, let in as
            # noise because its own delay was high.
            last, last_nu, last_s, last_r = self._last
            if (last_nu > 0) == (nu > 0) and self._fits(last, last_r, last_nu, last_s, sample, r):
                suspect.append((last, last_nu, last_r))
        suspect.append((sample, nu, r))
        if len(suspect) < _STEP_SAMPLES:
            return
        # A step: the offset moved, the oscillator did not.  Restart from the
        # suspects with the frequency learnt so far (and a fresh variance).
        filt = self._filter
        assert filt is not None
        self._seed = (filt.best.freq, self._freq_var)
        self._samples.clear()
        self._samples.extend(s for s, _, _ in suspect)
        self._suspect = []
        self._last = None
        self.steps += 1
        self._rerun()

    def _seconds(self, at_ns: int) -> float:
        return (at_ns - self._origin) / _NS_PER_S

    def _variance(self, delay: int, base: float) -> float:
        excess = (delay - base) / 2.0
        return self._clean2 + _EXCESS_SHARE * excess * excess

    def _refresh(self) -> None:
        """Re-derive the path's floor, the noise of a clean sample and the bias prior.

        A sample at the window's minimum delay is still off by part of its own
        queueing, which the minimum of a few samples does not reveal.  Its
        scale is the path's jitter: the median delay's distance above the
        minimum, blended with ``jitter_prior_ns`` while the window is short.
        """
        samples = self._samples
        delays = sorted(s.delay_ns for s in samples)
        n = len(delays)
        self._min_delay = lo = delays[0]
        spread = delays[n // 2] - lo
        jitter = (_PRIOR_WEIGHT * self._jitter_prior + n * spread) / (_PRIOR_WEIGHT + n)
        self._clean2 = self._floor2 + (jitter * (0.25 + 0.3 / n)) ** 2
        if n == 1:
            self._bias2 = 0.0
            return
        weight = mean = 0.0
        for s in samples:
            v = self._variance(s.delay_ns, lo)
            weight += 1.0 / v
            mean += (s.delay_ns - lo) / 2.0 / v
        bias = self._jitter_asymmetry * mean / weight
        self._bias2 = bias * bias

    def _rerun(self) -> None:
        """Run the filter over the window from the prior (cheap: one pass, 64 samples)."""
        samples = self._samples
        first = samples[0]
        self._refresh()
        base = self._min_delay
        freq, freq_var = self._seed
        # A lone sample is only known to within its hard bound, δ/2.
        pxx = (
            (first.delay_ns / 2.0) ** 2
            if len(samples) == 1
            else self._variance(first.delay_ns, base)
        )
        filt = FilterBank.start(
            theta=first.offset_ns,
            freq=freq,
            pxx=pxx,
            pff=freq_var,
            t=self._seconds(first.at_ns),
            q_theta=_Q_THETA,
            q_freqs=self._q_freqs,
        )
        for s in list(samples)[1:]:
            filt.update(self._seconds(s.at_ns), s.offset_ns, self._variance(s.delay_ns, base))
        self._filter = filt

    def reset(self) -> None:
        """Forget every sample (after a known clock step, say)."""
        with self._lock:
            self._samples.clear()
            self._suspect = []
            self._last = None
            self._filter = None
            self._seed = (0.0, self._freq_var)
            self.version += 1

    # --- output -----------------------------------------------------------------------------

    def estimate(self, at_ns: int | None = None) -> ClockEstimate | None:
        """The offset at local time ``at_ns`` (default: now), or ``None`` before any sample."""
        at = self._clock() if at_ns is None else at_ns
        with self._lock:
            filt = self._filter
            if filt is None:
                return None
            theta, variance, freq = filt.estimate(self._seconds(at))
            n = len(self._samples)
            if n > 1:  # a lone sample's hard bound (δ/2) already covers asymmetry
                asymmetry = self._asymmetry * self._min_delay / 2.0
                variance += asymmetry * asymmetry + self._bias2 + self._host2
        return ClockEstimate(
            offset_ns=round(theta),
            uncertainty_ns=max(round(math.sqrt(variance)), 1),
            freq_ppm=freq / _PPM,
            samples=n,
            at_ns=at,
        )

    def __len__(self) -> int:
        return len(self._samples)
