"""Clock-offset accuracy on a simulated fleet with ground truth.

Run: ``make bench`` (or ``python benchmarks/bench_clock.py [--quick]``).

The model (issue #4): 30 hosts in 3 zones; the reference clock is host 0 in
zone 0.  True offsets uniform in ±50 ms, drift in ±50 ppm.  Base round trip
0.3 ms inside a zone, 1-2 ms across zones (fixed per pair, split evenly between
the directions: no fixed path asymmetry).  Each direction adds lognormal
jitter with a different median forward and back (asymmetric jitter), and 3 %
of packets a queueing spike of 1-2 ms.  Every host probes the reference (and,
for the network solve, three peers) every 5 s for 20 simulated minutes.

Methods compared, on the same exchanges:
  one NTP sample         the latest exchange's θ
  NTP min-delay of 8     θ of the lowest-delay exchange of the last eight
  span-pair adjuster     Zipkin/Jaeger style: one client/server pair, no drift,
                         shift the child to the centre of its parent when it
                         falls outside (else no correction)
  schedobs estimator     OffsetEstimator on the probes to the reference
  estimator + network    per-edge estimators, solve_network over all edges

Reported: median and p99 absolute offset error against the reference (µs),
steady state (after the first minute) and in the first 60 s; cross-zone pair
errors; the share of RPC span pairs whose corrected child leaves its parent.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from dataclasses import dataclass, field

from schedobs.clock import Edge, OffsetEstimator, solve_network

NS = 1
US = 1_000
MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S  # simulated epoch (reference clock)

FWD_JITTER_MEDIAN = 15 * US
BACK_JITTER_MEDIAN = 30 * US
JITTER_SIGMA = 0.9
SPIKE_SHARE = 0.03


@dataclass
class Host:
    name: int
    zone: int
    offset: float  # x = ref − local at T0 (ns)
    drift: float  # d(x)/dt

    def x(self, ref: int) -> float:
        """ref − local at reference time ``ref``."""
        return self.offset + self.drift * (ref - T0)

    def local(self, ref: int) -> int:
        return ref - round(self.x(ref))


@dataclass
class Fleet:
    hosts: list[Host]
    base_rtt: dict[tuple[int, int], int]
    rng: random.Random

    def one_way(self, a: int, b: int, forward: bool) -> int:
        rtt = self.base_rtt[(min(a, b), max(a, b))]
        median = FWD_JITTER_MEDIAN if forward else BACK_JITTER_MEDIAN
        delay = rtt / 2 + self.rng.lognormvariate(math.log(median), JITTER_SIGMA)
        if self.rng.random() < SPIKE_SHARE:
            delay += self.rng.uniform(1 * MS, 2 * MS)
        return round(delay)

    def exchange(self, a: Host, b: Host, ref_send: int) -> tuple[int, int, int, int]:
        """``a`` probes ``b``: four timestamps, t1/t4 on a's clock, t2/t3 on b's."""
        fwd = self.one_way(a.name, b.name, True)
        back = self.one_way(a.name, b.name, False)
        arrive = ref_send + fwd
        leave = arrive + 20 * US
        return a.local(ref_send), b.local(arrive), b.local(leave), a.local(leave + back)


def make_fleet(seed: int, n: int = 30, zones: int = 3) -> Fleet:
    rng = random.Random(seed)
    hosts = []
    for i in range(n):
        zone = i % zones
        if i == 0:
            hosts.append(Host(0, 0, 0.0, 0.0))
        else:
            hosts.append(Host(i, zone, rng.uniform(-50 * MS, 50 * MS), rng.uniform(-50e-6, 50e-6)))
    base = {}
    for a in range(n):
        for b in range(a + 1, n):
            same = hosts[a].zone == hosts[b].zone
            base[(a, b)] = 300 * US if same else round(rng.uniform(1 * MS, 2 * MS))
    return Fleet(hosts, base, rng)


def q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


@dataclass
class Result:
    steady: list[float] = field(default_factory=list)
    early: list[float] = field(default_factory=list)
    pairs: list[float] = field(default_factory=list)
    violations: int = 0
    rpcs: int = 0


def simulate(seed: int, minutes: int) -> dict[str, Result]:
    fleet = make_fleet(seed)
    hosts = fleet.hosts
    ref = hosts[0]
    rng = random.Random(seed + 1)
    peers = {
        h.name: rng.sample([p for p in hosts if p.name not in (h.name, 0)], 3)
        for h in hosts
        if h.name
    }
    # Make sure every host has a peer in its own zone (cheap, precise edges).
    for h in hosts[1:]:
        same = [p for p in hosts if p.zone == h.zone and p.name not in (h.name, 0)]
        if same and not any(p.zone == h.zone for p in peers[h.name]):
            peers[h.name][0] = rng.choice(same)
    est = {h.name: OffsetEstimator() for h in hosts[1:]}
    edge_est = {(h.name, p.name): OffsetEstimator() for h in hosts[1:] for p in peers[h.name]}
    history: dict[int, list[tuple[int, float, int]]] = {h.name: [] for h in hosts[1:]}
    methods = ["one NTP sample", "NTP min-delay of 8", "span-pair adjuster", "schedobs estimator",
               "estimator + network"]  # fmt: skip
    results = {m: Result() for m in methods}
    interval = 5 * S
    steps = minutes * 60 * S // interval
    for k in range(steps):
        now = T0 + k * interval
        early = k * interval < 60 * S
        for h in hosts[1:]:
            t1, t2, t3, t4 = fleet.exchange(h, ref, now + h.name * 1_000 * US // 10)
            est[h.name].add_sample(t1, t2, t3, t4)
            theta = ((t2 - t1) + (t3 - t4)) / 2
            history[h.name].append((t4, theta, (t4 - t1) - (t3 - t2)))
            for p in peers[h.name]:
                s = fleet.exchange(h, p, now + 2 * MS + p.name * 10 * US)
                edge_est[(h.name, p.name)].add_sample(*s)
        # Evaluate every host at a common reference instant.
        at_ref = now + 3 * MS
        single: dict[int, float] = {}
        minimum: dict[int, float] = {}
        ours: dict[int, float] = {}
        for h in hosts[1:]:
            truth = h.x(at_ref)
            local = h.local(at_ref)
            hist = history[h.name]
            single[h.name] = hist[-1][1]
            minimum[h.name] = min(hist[-8:], key=lambda s: s[2])[1]
            e = est[h.name].estimate(at_ns=local)
            assert e is not None
            ours[h.name] = e.offset_ns
            bucket = "early" if early else "steady"
            for name, value in (("one NTP sample", single[h.name]),
                                ("NTP min-delay of 8", minimum[h.name]),
                                ("schedobs estimator", ours[h.name])):  # fmt: skip
                getattr(results[name], bucket).append(abs(value - truth) / US)
        # The network solve over the probe edges (h measured p: clock_p − clock_h).
        edges = [Edge(h.name, 0, est[h.name].estimate(at_ns=h.local(at_ref)).offset_ns,  # type: ignore[union-attr]
                      max(est[h.name].estimate(at_ns=h.local(at_ref)).uncertainty_ns, 1))  # type: ignore[union-attr]
                 for h in hosts[1:]]  # fmt: skip
        for (ia, ib), e_ab in edge_est.items():
            e = e_ab.estimate(at_ns=hosts[ia].local(at_ref))
            assert e is not None
            edges.append(Edge(ia, ib, e.offset_ns, max(e.uncertainty_ns, 1)))
        solution = solve_network(edges, reference=0)
        net = {h.name: solution.offsets_ns[h.name] for h in hosts[1:]}
        for h in hosts[1:]:
            bucket = "early" if early else "steady"
            getattr(results["estimator + network"], bucket).append(
                abs(net[h.name] - h.x(at_ref)) / US
            )
        # Cross-zone pairs and RPC causality, steady state only.
        tables: dict[str, dict[int, float]] = {
            "one NTP sample": single,
            "NTP min-delay of 8": minimum,
            "schedobs estimator": ours,
            "estimator + network": net,
        }
        if not early:
            pairs = [(a, b) for a in hosts for b in hosts if a.zone < b.zone]
            for a, b in rng.sample(pairs, 20):
                truth = a.x(at_ref) - b.x(at_ref)
                for name, table in tables.items():
                    xa = 0.0 if a.name == 0 else table[a.name]
                    xb = 0.0 if b.name == 0 else table[b.name]
                    results[name].pairs.append(abs((xa - xb) - truth) / US)
            for _ in range(30):
                a, b = rng.sample(hosts, 2)
                send = at_ref + rng.randrange(0, S)
                fwd = fleet.one_way(a.name, b.name, True)
                back = fleet.one_way(a.name, b.name, False)
                work = rng.randrange(100 * US, 1 * MS)
                c_start, s_start = a.local(send), b.local(send + fwd)
                s_end, c_end = b.local(send + fwd + work), a.local(send + fwd + work + back)
                for name, table in tables.items():
                    ca, cb = table.get(a.name, 0.0), table.get(b.name, 0.0)
                    inside = c_start + ca <= s_start + cb and s_end + cb <= c_end + ca
                    results[name].rpcs += 1
                    results[name].violations += not inside
                # The span-pair adjuster: centre the child only when it is outside.
                r = results["span-pair adjuster"]
                r.rpcs += 1
                shift = 0.0
                if not (c_start <= s_start and s_end <= c_end):
                    shift = ((c_start + c_end) - (s_start + s_end)) / 2
                truth = b.x(send) - a.x(send)  # what b's times need, relative to a
                r.steady.append(abs(shift - truth) / US)
                # Centring always lands the child inside: no violation by construction,
                # at the price of the error above.
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="clock-offset accuracy benchmark")
    parser.add_argument("--quick", action="store_true", help="3 simulated minutes")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    minutes = 3 if args.quick else 20
    results = simulate(args.seed, minutes)
    floor = abs(FWD_JITTER_MEDIAN - BACK_JITTER_MEDIAN) / 2 / US
    print(f"simulated fleet: 30 hosts, 3 zones, {minutes} min, probes every 5 s, seed {args.seed}")
    print(
        "floor implied by the model: fixed path asymmetry 0 µs (base delays symmetric); "
        f"jitter medians differ by direction, so a single exchange carries up to ~{floor:.1f} µs "
        "of bias, which the lowest-delay samples shed\n"
    )
    header = f"{'method':<22} {'steady med':>10} {'steady p99':>10} {'60s p99':>9} " \
             f"{'xzone med':>9} {'xzone p99':>9} {'causality':>10}"  # fmt: skip
    print(header + "   (µs; causality = share of child spans outside their parent)")
    for name, r in results.items():
        early = f"{q(r.early, 0.99):9.1f}" if r.early else f"{'-':>9}"
        pairs = (f"{statistics.median(r.pairs):9.1f} {q(r.pairs, 0.99):9.1f}"
                 if r.pairs else f"{'-':>9} {'-':>9}")  # fmt: skip
        viol = f"{100 * r.violations / r.rpcs:9.2f}%" if r.rpcs else f"{'-':>10}"
        print(f"{name:<22} {statistics.median(r.steady):10.1f} {q(r.steady, 0.99):10.1f} "
              f"{early} {pairs} {viol}")  # fmt: skip
    ours, net, single = (results[k] for k in ("schedobs estimator", "estimator + network",
                                              "one NTP sample"))  # fmt: skip
    checks = [
        ("host vs reference, median <= 15 µs", statistics.median(ours.steady) <= 15),
        ("host vs reference, p99 <= 90 µs", q(ours.steady, 0.99) <= 90),
        ("cross-zone pairs + network, median <= 15 µs", statistics.median(net.pairs) <= 15),
        ("cross-zone pairs + network, p99 <= 60 µs", q(net.pairs, 0.99) <= 60),
        ("no causality violations (estimator + network)", net.violations == 0),
        ("first 60 s, p99 <= 400 µs", q(ours.early, 0.99) <= 400),
        ("p99 at least 10x better than one NTP sample",
         q(single.steady, 0.99) >= 10 * q(ours.steady, 0.99)),
    ]  # fmt: skip
    print("\ngoals")
    for label, ok in checks:
        print(f"  {label:<48} {'meets' if ok else 'MISSES'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
