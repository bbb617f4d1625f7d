"""A simulated fleet of clocks and paths with ground truth, to judge clock estimators.

``benchmarks/bench_clock.py`` and the estimator's tests run on it; a user can
set its knobs to their own network's figures (round trips, jitter, spike
rate, crystal spread) and see what ``OffsetEstimator`` does there before
trusting it.

Every clock, the reference's included, is a crystal: a phase, a frequency
error drawn uniformly in ``±freq_ppm`` and a frequency random walk of
``wander_ppm`` per √s, stepped on a 1 s grid and integrated exactly between
grid points, so ``clock(t)`` is defined at any true time ``t`` (ns).

Paths to the reference and between hosts: a base round trip (``intra_rtt``
inside a zone, uniform 1-2 ms across zones), split between the directions
with fixed asymmetries that no two-way exchange can see — each direction's
base off half the round trip by a share drawn within ``±zone_asymmetry`` per
ordered pair of zones (the route between two zones) plus one within
``±asymmetry`` per pair of hosts, and every host's own send and receive stack
adding a fixed delay drawn in ``stack_us`` to each datagram it sends or
receives — plus lognormal queueing jitter whose median differs by direction
and by host, plus a spike of 1-2 ms on ``spike_share`` of packets.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["Clock", "Fleet", "FleetModel"]

US = 1_000
MS = 1_000_000
S = 1_000_000_000
GRID = S  # the wander's time step
EPOCH = 1_700_000_000 * S  # clocks read wall-clock-like values; true time starts at 0


@dataclass(frozen=True)
class FleetModel:
    """The knobs of the model.  The defaults are a fleet described from outside this
    project (issue #19): routes within ±4 % per zone pair plus ±5 % per host pair and
    direction, network stacks of 4-22 µs per host and direction, jitter medians that
    differ by direction.  ``FleetModel(asymmetry=0.03, zone_asymmetry=0.0,
    stack_us=(0.0, 0.0))`` is the first model (issue #11)."""

    hosts: int = 36
    zones: int = 3
    freq_ppm: float = 50.0
    wander_ppm: float = 0.005  # per √s
    offset_ms: float = 50.0
    intra_rtt_us: float = 300.0
    asymmetry: float = 0.05  # per host pair and direction, ± share of half the round trip
    zone_asymmetry: float = 0.04  # per ordered zone pair (a route), ± share of half the round trip
    stack_us: tuple[float, float] = (4.0, 22.0)  # a host's fixed send and receive delays, drawn in
    jitter_median_us: tuple[float, float] = (10.0, 40.0)  # per-direction medians drawn in
    jitter_sigma: float = 0.9
    spike_share: float = 0.03
    server_us: float = 20.0


@dataclass
class Clock:
    """A crystal: ``clock(t) = EPOCH + t + phase[i] + freq[i]·(t − i·GRID)``, t in grid cell i."""

    phase: list[float]
    freq: list[float]
    steps: list[tuple[int, int]] = field(default_factory=list)  # (true time, jump ns)

    @classmethod
    def crystal(
        cls,
        rng: random.Random,
        model: FleetModel,
        seconds: int,
        offset: float,
        freq: float | None = None,
    ) -> Clock:
        if freq is None:
            freq = rng.uniform(-model.freq_ppm, model.freq_ppm) * 1e-6
        sigma = model.wander_ppm * 1e-6 * math.sqrt(GRID / S)
        phases, freqs = [offset], [freq]
        for _ in range(seconds + 1):
            phases.append(phases[-1] + freqs[-1] * GRID)
            freqs.append(freqs[-1] + rng.gauss(0.0, sigma))
        return cls(phases, freqs)

    def read(self, t: int) -> int:
        """The clock's reading (ns) at true time ``t`` (ns since the simulation began)."""
        i = t // GRID
        value = EPOCH + t + self.phase[i] + self.freq[i] * (t - i * GRID)
        for when, jump in self.steps:
            if t >= when:
                value += jump
        return round(value)

    def rate(self, t: int) -> float:
        """The clock's frequency error at true time ``t`` (dimensionless)."""
        return self.freq[t // GRID]


@dataclass
class _Path:
    fwd_base: float
    back_base: float
    fwd_median: float
    back_median: float


class Fleet:
    """Host 0 is the reference (zone 0); hosts 1..n-1 probe it and each other.

    ``seconds``: how long the clocks' wander is drawn for.  Deterministic for
    a given ``seed``.
    """

    def __init__(self, model: FleetModel, seed: int, seconds: int) -> None:
        self.model = model
        self.rng = rng = random.Random(seed)
        self.zone = [i % model.zones for i in range(model.hosts)]
        self.clocks = [
            Clock.crystal(rng, model, seconds, rng.uniform(-1, 1) * model.offset_ms * MS)
            for _ in range(model.hosts)
        ]
        self._paths: dict[tuple[int, int], _Path] = {}
        # The terms added since the first model come from a generator of their own, so that
        # a model without them draws the same fleet as before.
        extra = random.Random(seed * 7919 + 17)
        lo, hi = model.stack_us
        self.send_us = [extra.uniform(lo, hi) for _ in range(model.hosts)]
        self.receive_us = [extra.uniform(lo, hi) for _ in range(model.hosts)]
        za = model.zone_asymmetry
        self.route = {
            (x, y): extra.uniform(-za, za) if x != y else 0.0
            for x in range(model.zones)
            for y in range(model.zones)
        }

    def path(self, a: int, b: int) -> _Path:
        key = (a, b)
        if key not in self._paths:
            m, rng = self.model, self.rng
            if self.zone[a] == self.zone[b]:
                rtt = m.intra_rtt_us * US
            else:
                rtt = rng.uniform(1 * MS, 2 * MS)
            lo, hi = m.jitter_median_us
            za, zb = self.zone[a], self.zone[b]
            self._paths[key] = _Path(
                fwd_base=rtt / 2 * (1 + rng.uniform(-m.asymmetry, m.asymmetry) + self.route[za, zb])
                + (self.send_us[a] + self.receive_us[b]) * US,
                back_base=rtt
                / 2
                * (1 + rng.uniform(-m.asymmetry, m.asymmetry) + self.route[zb, za])
                + (self.send_us[b] + self.receive_us[a]) * US,
                fwd_median=rng.uniform(lo, hi) * US,
                back_median=rng.uniform(lo, hi) * US,
            )
        return self._paths[key]

    def one_way(self, a: int, b: int, forward: bool) -> int:
        """One datagram's delay (ns) from ``a`` to ``b`` (``forward``) or back."""
        p = self.path(min(a, b), max(a, b))
        if (a < b) != forward:  # the stored path runs from the lower index
            base, median = p.back_base, p.back_median
        else:
            base, median = p.fwd_base, p.fwd_median
        delay = base + self.rng.lognormvariate(math.log(median), self.model.jitter_sigma)
        if self.rng.random() < self.model.spike_share:
            delay += self.rng.uniform(1 * MS, 2 * MS)
        return round(delay)

    def truth(self, host: int, t: int, reference: int = 0) -> float:
        """``clock_reference − clock_host`` at true time ``t``."""
        return float(self.clocks[reference].read(t) - self.clocks[host].read(t))

    def local(self, host: int, t: int) -> int:
        """``host``'s clock reading at true time ``t``."""
        return self.clocks[host].read(t)

    def exchange(self, a: int, b: int, t: int) -> tuple[int, int, int, int]:
        """``a`` probes ``b`` at true time ``t``: t1/t4 on a's clock, t2/t3 on b's."""
        arrive = t + self.one_way(a, b, True)
        leave = arrive + round(self.model.server_us * US)
        back = leave + self.one_way(a, b, False)
        ca, cb = self.clocks[a], self.clocks[b]
        return ca.read(t), cb.read(arrive), cb.read(leave), ca.read(back)
