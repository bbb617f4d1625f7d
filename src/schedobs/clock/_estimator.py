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
from typing import NamedTuple, Protocol

from schedobs import _forksafe
from schedobs._checks import is_int, is_number

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
# Samples in a row, on one side of the prediction, that make a clock step: two could be one
# queueing spike each way; three on one side at a new level are not noise.
_STEP_SAMPLES = 3
# The wander rates the filter bank spans, × ``wander_ppm``: half-decades from 0.1× to 30×.
_WANDER_BANK = (0.1, 0.316, 1.0, 3.16, 10.0, 31.6)
# Windows up to this size are re-run on every sample: the noise scale (the minimum and median
# delays) still moves with each sample, and re-running 16 samples costs ~0.1 ms.
_COLD_SAMPLES = 16
# Samples' worth of trust in the jitter prior, against the jitter the window shows.
_PRIOR_WEIGHT = 2
# A sample at the window's minimum delay is still off by part of its own queueing: a quarter
# of the path's jitter once the window is full, plus 0.3/n while few samples show the floor.
_RESIDUAL_JITTER = 0.25
_FEW_SAMPLES_JITTER = 0.3
# The priors for what no two-way exchange can see, chosen for networks we do not know
# (docs/clock.md, "What σ cannot cover"): one sigma of route asymmetry is 3 % of the
# round trip over 2 — routes whose two directions each differ from half the round trip by
# up to ±7 % (uniformly) — so that routes up to ±10 % per direction stay within 3σ; and
# 5 µs of host send/receive stack asymmetry (fixed stack delays of 4-22 µs per direction).
DEFAULT_PATH_ASYMMETRY = 0.03
DEFAULT_HOST_ASYMMETRY_NS = 5_000
# A fall of the minimum delay by more than this many noise floors re-runs the window: every
# earlier variance was measured from a floor that was too high, so too optimistic.
_FLOOR_DROP = 2


class _Held(NamedTuple):
    """A sample held aside as a possible clock step."""

    sample: Sample
    innovation: float  # ns: how far it sits from the prediction
    variance: float  # ns²: its own measurement variance


class _Folded(NamedTuple):
    """The last sample folded into the filter, kept in case it was a step's first."""

    sample: Sample
    innovation: float  # ns
    predicted: float  # ns²: the innovation's variance (prediction + measurement)
    variance: float  # ns²: its own measurement variance


#: Why the window was re-run (the keys of ``OffsetEstimator.reruns``).
RERUN_REASONS = ("first", "young", "floor", "order", "step", "shift")


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
    #: The window's least round trip (ns): the path's floor as far as it shows.
    round_trip_ns: int = 0
    #: The part of ``uncertainty_ns`` the samples measure (the fit and the queueing bias),
    #: without the priors for route and host asymmetry that no exchange can see (ns).
    measured_ns: int = 0


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
    one-way delays, as a fraction of the round trip (0.03: each direction's
    route within about ±7 % of their mean, ±10 % within 3σ).  It only widens
    ``uncertainty_ns``: set it from what your routes are known or measured to do
    (:attr:`path_asymmetry` can be changed while the estimator runs).
    ``jitter_asymmetry``: the share of the mean queueing delay that may sit
    on one direction more than the other (one sigma).
    ``jitter_prior_ns``: the path's jitter assumed before the window shows it.
    ``host_asymmetry_ns``: one sigma of the host-side asymmetry: the fixed
    send and receive delays of the two hosts' network stacks (5 µs: stacks of
    4-22 µs per direction), which kernel timestamps do not remove.
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
        path_asymmetry: float = DEFAULT_PATH_ASYMMETRY,
        jitter_asymmetry: float = 0.1,
        jitter_prior_ns: int = 50_000,
        host_asymmetry_ns: int = DEFAULT_HOST_ASYMMETRY_NS,
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
        self._drop = _FLOOR_DROP * jitter_floor_ns
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
        # Samples held as a possible step, in order.
        self._suspect: list[_Held] = []
        # The last sample folded in (``None`` after a re-run).
        self._last: _Folded | None = None
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
        #: Re-runs of the window, by reason (see :meth:`_rerun_reason`).
        self.reruns: dict[str, int] = dict.fromkeys(RERUN_REASONS, 0)
        #: Changes whenever the estimate may have (a sample, a reset): between two
        #: changes, ``estimate(t)`` is the same line in ``t``, which callers may cache.
        self.version = 0

    @property
    def path_asymmetry(self) -> float:
        """One sigma of the route asymmetry, as a fraction of the round trip (a prior)."""
        return self._asymmetry

    @path_asymmetry.setter
    def path_asymmetry(self, value: float) -> None:
        if not (is_number(value) and value >= 0):
            raise ValueError(f"path_asymmetry must be a number >= 0, got {value!r}")
        with self._lock:
            self._asymmetry = float(value)
            self.version += 1

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
            self._rerun("first")
            return
        if sample.at_ns < samples[-1].at_ns:
            # Out of order (span pairs end in any order): place it and re-run.
            ordered = sorted([*samples, sample], key=lambda s: s.at_ns)
            samples.clear()
            samples.extend(ordered[-self._window :])
            self._suspect = []
            self._last = None
            self._rerun("order")
            return
        t = self._seconds(sample.at_ns)
        r = self._variance(sample.delay_ns, min(self._min_delay, sample.delay_ns))
        # The gate asks the filter that predicts best now, not the mixture: the mixture's
        # variance is widened by the filters that assume fast wander, and through that
        # width a step would pass as drift.  Estimates use the mixture (the wander is not
        # known, and averaging over it is what keeps the uncertainty honest).
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
        suspect = self._suspect
        if beyond or (suspect and self._fits(sample, r, nu, s, suspect[-1])):
            self._hold(_Held(sample, nu, r))
            return
        self._suspect = []
        self._last = _Folded(sample, nu, s, r)
        samples.append(sample)
        floor = self._min_delay
        self._refresh()
        reason = self._rerun_reason(floor)
        if reason is not None:
            self._rerun(reason)
            return
        filt.update(t, sample.offset_ns, self._variance(sample.delay_ns, self._min_delay))

    def _rerun_reason(self, floor_before: int) -> str | None:
        """Why the window must be re-run after a sample was appended, or ``None`` (one
        update suffices).  With the re-runs :meth:`_admit`, :meth:`_hold` and
        :meth:`shift` make themselves, this is every one (``reruns`` counts them):

        - ``first``: the first sample (or the first after :meth:`reset`);
        - ``young``: the window holds at most 16 samples, so its noise scale (the
          minimum and median delays) still moves with each sample;
        - ``floor``: the minimum delay fell by more than two noise floors, so every
          earlier variance, measured from the old floor, was too optimistic;
        - ``order``: a sample older than the newest arrived (span pairs end in any order);
        - ``step``: a clock step was recognised, the filter restarts from its samples;
        - ``shift``: the local clock stepped by a known amount (:meth:`shift`).
        """
        if len(self._samples) <= _COLD_SAMPLES:
            return "young"
        if self._min_delay + self._drop < floor_before:
            return "floor"
        return None

    def _fits(self, sample: Sample, r: float, nu: float, s: float, anchor: _Held) -> bool:
        """Whether ``sample`` (innovation ``nu``, variance ``s`` against the filter) is
        nearer the level ``anchor`` sits at, carried along the current frequency."""
        assert self._filter is not None
        dt = (sample.at_ns - anchor.sample.at_ns) / _NS_PER_S
        alt = sample.offset_ns - (anchor.sample.offset_ns + self._filter.best.freq * dt)
        return alt * alt / (r + anchor.variance) < nu * nu / s

    def _hold(self, held: _Held) -> None:
        """A sample off the prediction: a fluke, or part of a clock step."""
        suspect = self._suspect
        if suspect and (suspect[-1].innovation > 0) != (held.innovation > 0):
            suspect.clear()  # the other side: not one step
        last = self._last
        # The sample just before may have been the step's first, let in as noise
        # because its own delay was high.
        if (
            not suspect
            and last is not None
            and (last.innovation > 0) == (held.innovation > 0)
            and self._fits(last.sample, last.variance, last.innovation, last.predicted, held)
        ):
            suspect.append(_Held(last.sample, last.innovation, last.variance))
        suspect.append(held)
        if len(suspect) < _STEP_SAMPLES:
            return
        # A step: the offset moved, the oscillator did not.  Restart from the
        # suspects with the frequency learnt so far (and a fresh variance).
        filt = self._filter
        assert filt is not None
        self._seed = (filt.best.freq, self._freq_var)
        self._samples.clear()
        self._samples.extend(h.sample for h in suspect)
        self._suspect = []
        self._last = None
        self.steps += 1
        self._rerun("step")

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
        self._clean2 = self._floor2 + (jitter * (_RESIDUAL_JITTER + _FEW_SAMPLES_JITTER / n)) ** 2
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

    def _rerun(self, reason: str) -> None:
        """Run the filter over the window from the prior (cheap: one pass, 64 samples)."""
        self.reruns[reason] += 1
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

    def shift(self, step_ns: int) -> None:
        """The local clock stepped forward by ``step_ns`` (backward if negative), as
        measured against a clock that did not step (the prober reads it against
        ``CLOCK_MONOTONIC``).

        Every sample in the window is moved to the new time scale — taken ``step_ns``
        later, its offset ``step_ns`` smaller — and the window is re-run with the
        frequency learnt so far, as chrony moves its samples on a slew or step of the
        clock it disciplines.  What was learnt is kept; the step measurement's own error
        (the spread of the readings around it, microseconds) is left for the next
        samples to correct.
        """
        if not is_int(step_ns):
            raise TypeError(f"step_ns must be an int of nanoseconds, got {step_ns!r}")
        with self._lock:
            if self._filter is None or not step_ns:
                return
            moved = [
                Sample(s.at_ns + step_ns, s.offset_ns - step_ns, s.delay_ns) for s in self._samples
            ]
            self._seed = (self._filter.best.freq, self._freq_var)
            self._origin += step_ns
            self._samples.clear()
            self._samples.extend(moved)
            self._suspect = []
            self._last = None
            self._rerun("shift")
            self.version += 1

    def reset(self) -> None:
        """Forget every sample (a local step whose size is not known, say)."""
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
            measured = variance
            if n > 1:  # a lone sample's hard bound (δ/2) already covers asymmetry
                asymmetry = self._asymmetry * self._min_delay / 2.0
                measured += self._bias2
                variance = measured + asymmetry * asymmetry + self._host2
            round_trip = self._min_delay
        return ClockEstimate(
            offset_ns=round(theta),
            uncertainty_ns=max(round(math.sqrt(variance)), 1),
            freq_ppm=freq / _PPM,
            samples=n,
            at_ns=at,
            round_trip_ns=round_trip,
            measured_ns=max(round(math.sqrt(measured)), 1),
        )

    def __len__(self) -> int:
        return len(self._samples)
