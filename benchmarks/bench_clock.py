"""Clock-offset accuracy and calibration on a simulated fleet with ground truth.

Run: ``make bench`` (or ``python benchmarks/bench_clock.py [--quick] [--seeds N]
[--level-fleets N]``).

The model (``schedobs.testing.FleetModel``): 36 hosts in 3 zones; every clock, the
reference's too, a crystal within ±50 ppm with random-walk wander; cross-zone
round trips 1-2 ms with fixed asymmetries no exchange can see — routes within
±4 % per zone pair plus ±5 % per host pair and direction, network stacks of
4-22 µs per host and direction — lognormal jitter whose median differs by
direction and host, 3 % of packets 1-2 ms late.  Each host sends **one** probe
to the reference every 5 s (and one to each of three peers, for the network
solve).  Every method is judged
at one random instant between probes, so extrapolation counts.

Methods, on the same exchanges:
  one NTP sample         the latest exchange's θ
  NTP min-delay of 8     θ of the lowest-delay exchange of the last eight
  least squares (0.x)    the previous estimator (benchmarks/_wls_baseline.py)
  schedobs estimator     OffsetEstimator (Kalman on offset and frequency)
  estimator + network    per-edge estimators, solve_network over all edges
  span-pair adjuster     Zipkin/Jaeger style: centre a child outside its parent

Reported: |error| against the truth (µs) in the first 60 s from each host's
second sample ("cold") and after ("steady"); cross-zone pair errors; the
share of RPC child spans that leave their parent; the calibration of the
reported uncertainty σ (share of points with |error| <= 1σ and <= 3σ), on the
model and then per level of route asymmetry (0 to ±10 % per direction, half per
zone pair and half per host pair, and ±10 % per host pair or per zone pair alone),
none of which the estimator is told, for the estimator (default priors, and the
route prior learnt from the mesh as docs/clock.md sets it), and for the network
solve, on ``--level-fleets`` fleets per level (a zone pair's asymmetry is one draw
per fleet); and step detection (2 ms, 50 ms, 1 s, on either clock) against steep
drift.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _wls_baseline import LeastSquaresEstimator
from schedobs.clock import Edge, OffsetEstimator, learn_path_asymmetry, solve_network
from schedobs.testing import Clock, Fleet, FleetModel

US, MS, S = 1_000, 1_000_000, 1_000_000_000

COLD_S = 60


def q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


@dataclass
class Result:
    steady: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    pairs: list[float] = field(default_factory=list)
    # (|error|, σ) for methods that report an uncertainty, per "<kind>_<bucket> <path>":
    # kind "sigma" as the method reports it (default priors), "mesh" with the route
    # prior learnt from the mesh's loops as docs/clock.md sets it (per path within the
    # reference's zone, never below the default across zones), "blind" with one bound
    # from every triangle, zones ignored, set on every host; bucket "cold" or "steady";
    # path "within" the reference's zone or "across" zones.  Read with sigma().
    points: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    # the route prior's per-path fit, its bound, and what was set across zones
    learnt: list[float] = field(default_factory=list)
    learnt_upper: list[float] = field(default_factory=list)
    learnt_across: list[float] = field(default_factory=list)
    violations: int = 0
    rpcs: int = 0

    def sigma(self, kind: str, bucket: str, path: str | None = None) -> list[tuple[float, float]]:
        """The (|error|, σ) points of ``kind`` in ``bucket``, on one path or both."""
        if path is not None:
            return self.points[f"{kind}_{bucket} {path}"]
        return self.points[f"{kind}_{bucket} within"] + self.points[f"{kind}_{bucket} across"]


def simulate(model: FleetModel, seed: int, minutes: int, interval_s: float) -> dict[str, Result]:
    seconds = minutes * 60 + 10
    fleet = Fleet(model, seed, seconds)
    hosts = range(1, model.hosts)
    rng = random.Random(seed + 1)
    zone = fleet.zone
    path = {h: "across" if zone[h] != zone[0] else "within" for h in hosts}
    peers: dict[int, list[int]] = {}
    for h in hosts:
        others = [p for p in hosts if p != h]
        chosen = rng.sample(others, 3)
        same = [p for p in others if zone[p] == zone[h]]
        if same and not any(zone[p] == zone[h] for p in chosen):
            chosen[0] = rng.choice(same)  # one cheap, precise edge per host
        peers[h] = chosen
    ours = {h: OffsetEstimator() for h in hosts}
    wls = {h: LeastSquaresEstimator() for h in hosts}
    edge_est = {(h, p): OffsetEstimator() for h in hosts for p in peers[h]}
    history: dict[int, list[tuple[float, int]]] = {h: [] for h in hosts}
    results = {
        m: Result()
        for m in ("one NTP sample", "NTP min-delay of 8", "least squares (0.x)",
                  "schedobs estimator", "estimator + network", "span-pair adjuster")
    }  # fmt: skip
    interval = round(interval_s * S)
    phase = {h: rng.randrange(interval // 2) for h in hosts}  # hosts are not in lockstep
    for k in range(int(minutes * 60 / interval_s)):
        now = k * interval
        for h in hosts:
            t1, t2, t3, t4 = fleet.exchange(h, 0, now + phase[h])
            ours[h].add_sample(t1, t2, t3, t4)
            wls[h].add_sample(t1, t2, t3, t4)
            history[h].append((((t2 - t1) + (t3 - t4)) / 2, (t4 - t1) - (t3 - t2)))
            for p in peers[h]:
                edge_est[(h, p)].add_sample(*fleet.exchange(h, p, now + phase[h] + 2 * MS))
        if k == 0:
            continue  # judged from each host's second sample on
        # One instant between this round's probes and the next round's.
        at = now + interval // 2 + rng.randrange(interval // 2)
        cold = at < COLD_S * S
        bucket = "cold" if cold else "steady"
        tables: dict[str, dict[int, float]] = {name: {0: 0.0} for name in results}
        for h in hosts:
            truth = fleet.truth(h, at)
            local = fleet.local(h, at)
            tables["one NTP sample"][h] = history[h][-1][0]
            tables["NTP min-delay of 8"][h] = min(history[h][-8:], key=lambda s: s[1])[0]
            for name, est in (("least squares (0.x)", wls[h]), ("schedobs estimator", ours[h])):
                e = est.estimate(at_ns=local)
                assert e is not None
                tables[name][h] = e.offset_ns
                err = abs(e.offset_ns - truth)
                point = (err, float(e.uncertainty_ns))
                results[name].points[f"sigma_{bucket} {path[h]}"].append(point)
        # The network solve over the probe edges (h measured p: clock_p − clock_h).
        edges = []
        for h in hosts:
            e = ours[h].estimate(at_ns=fleet.local(h, at))
            assert e is not None
            edges.append(Edge.of(h, 0, e))
        for (a, b), est in edge_est.items():
            e = est.estimate(at_ns=fleet.local(a, at))
            assert e is not None
            edges.append(Edge.of(a, b, e))
        solution = solve_network(edges, reference=0)
        # The route prior learnt from the mesh's loops, as a fleet would set it on its
        # hosts' estimators: their σ with it (the estimate itself does not change).
        fit = learn_path_asymmetry(edges, zones=dict(enumerate(zone)))
        blind = learn_path_asymmetry(edges)
        if fit is not None and blind is not None:
            r = results["schedobs estimator"]
            r.learnt.append(fit.path_asymmetry)
            r.learnt_upper.append(fit.upper)
            r.learnt_across.append(fit.for_path(True))
            for h in hosts:
                est = ours[h]
                default = est.path_asymmetry
                # From the first round on (docs/clock.md).
                for prior, kind in ((fit.for_path(zone[h] != zone[0]), "mesh"),
                                    (blind.upper, "blind")):  # fmt: skip
                    est.path_asymmetry = prior
                    e = est.estimate(at_ns=fleet.local(h, at))
                    assert e is not None
                    point = (abs(e.offset_ns - fleet.truth(h, at)), float(e.uncertainty_ns))
                    r.points[f"{kind}_{bucket} {path[h]}"].append(point)
                est.path_asymmetry = default
        for h in hosts:
            tables["estimator + network"][h] = solution.offsets_ns[h]
            point = (abs(solution.offsets_ns[h] - fleet.truth(h, at)),
                     solution.uncertainties_ns[h])  # fmt: skip
            results["estimator + network"].points[f"sigma_{bucket} {path[h]}"].append(point)
        for name, table in tables.items():
            if name == "span-pair adjuster":
                continue
            for h in hosts:
                getattr(results[name], bucket).append(abs(table[h] - fleet.truth(h, at)) / US)
        if cold:
            continue
        # Cross-zone pairs and RPC causality, steady state only.
        pairs = [(a, b) for a in range(model.hosts) for b in hosts if zone[a] < zone[b]]
        for a, b in rng.sample(pairs, 20):
            truth = fleet.truth(a, at) - fleet.truth(b, at)
            for name, table in tables.items():
                if name != "span-pair adjuster":
                    results[name].pairs.append(abs((table[a] - table[b]) - truth) / US)
        for _ in range(30):
            a, b = rng.sample(range(model.hosts), 2)
            send = at + rng.randrange(0, interval // 4)
            arrive = send + fleet.one_way(a, b, True)
            leave = arrive + rng.randrange(100 * US, 1 * MS)
            c_start, s_start = fleet.local(a, send), fleet.local(b, arrive)
            s_end = fleet.local(b, leave)
            c_end = fleet.local(a, leave + fleet.one_way(a, b, False))
            for name, table in tables.items():
                if name == "span-pair adjuster":
                    continue
                ca, cb = table[a], table[b]
                inside = c_start + ca <= s_start + cb and s_end + cb <= c_end + ca
                results[name].rpcs += 1
                results[name].violations += not inside
            r = results["span-pair adjuster"]
            r.rpcs += 1
            shift = 0.0
            if not (c_start <= s_start and s_end <= c_end):
                shift = ((c_start + c_end) - (s_start + s_end)) / 2
            r.steady.append(abs(shift - (fleet.truth(b, send) - fleet.truth(a, send))) / US)
    return results


def merge(runs: list[dict[str, Result]]) -> dict[str, Result]:
    out = {name: Result() for name in runs[0]}
    for run in runs:
        for name, r in run.items():
            o = out[name]
            for attr in ("steady", "cold", "pairs", "learnt", "learnt_upper", "learnt_across"):
                getattr(o, attr).extend(getattr(r, attr))
            for key, points in r.points.items():
                o.points[key].extend(points)
            o.violations += r.violations
            o.rpcs += r.rpcs
    return out


def _shares(points: list[tuple[float, float]], width: int = 7) -> str:
    """The shares within 1σ and within 3σ, for a table row."""
    return f"{100 * coverage(points, 1):{width}.1f}% {100 * coverage(points, 3):7.1f}%"


def _within(r: Result, kind: str, k: float, path: str | None = None) -> tuple[float, float]:
    """The shares of ``kind``'s points within ``k``σ, cold and steady."""
    return coverage(r.sigma(kind, "cold", path), k), coverage(r.sigma(kind, "steady", path), k)


def _cold_steady(r: Result, kind: str) -> str:
    """The shares within 1σ and 3σ of ``kind``'s points, cold then steady."""
    return f"{_shares(r.sigma(kind, 'cold'))} {_shares(r.sigma(kind, 'steady'), 9)}"


def coverage(points: list[tuple[float, float]], k: float) -> float:
    return sum(err <= k * sigma for err, sigma in points) / len(points) if points else 0.0


#: Route asymmetry per direction: (label, ± share per host pair, ± share per zone pair).
LEVELS = [
    *((f"±{100 * level:g} % routes", level / 2, level / 2)
      for level in (0.0, 0.025, 0.05, 0.075, 0.10)),
    ("±10 % per host pair", 0.10, 0.0),
    ("±10 % per zone pair", 0.0, 0.10),
]  # fmt: skip


def calibration_by_level(seeds: int, minutes: int) -> list[tuple[str, Result, Result]]:
    """The estimator's σ on fleets whose routes are more or less asymmetric (stacks of
    4-22 µs throughout): nothing about the asymmetry is given to the estimator.  Each
    row also carries the network solve's accuracy on the same exchanges."""
    rows = []
    for label, host, zone in LEVELS:
        model = FleetModel(asymmetry=host, zone_asymmetry=zone)
        merged = merge([simulate(model, seed, minutes, 5.0) for seed in range(1, seeds + 1)])
        rows.append((label, merged["schedobs estimator"], merged["estimator + network"]))
    return rows


def step_trials(seeds: int) -> tuple[int, int, int]:
    """Worst samples-to-detect over steps of 2 ms, 50 ms and 1 s on either clock, and
    the false steps over an hour of ±100 ppm drift with 10 % spikes; trials run."""
    worst, false_steps, trials = 0, 0, 0
    model = FleetModel(hosts=2, zones=2)
    for seed in range(seeds):
        for size in (2 * MS, 50 * MS, 1 * S):
            for clock in (0, 1):
                fleet = Fleet(model, seed, 20 * 60)
                est = OffsetEstimator()
                step_at = 5 * 60 * S
                fleet.clocks[clock].steps.append((step_at, size if seed % 2 else -size))
                detected = None
                for k in range(int(10 * 60 / 5)):
                    t = k * 5 * S + 1234
                    est.add_sample(*fleet.exchange(1, 0, t))
                    if t >= step_at and detected is None and est.steps:
                        detected = (t - step_at) // (5 * S) + 1
                trials += 1
                worst = max(worst, detected if detected is not None else 10**6)
        # Steep drift, many spikes: the two crystals at opposite ends of ±50 ppm.
        fleet = Fleet(replace(model, spike_share=0.10, wander_ppm=0.05), seed, 3600 + 10)
        sign = 1 if seed % 2 else -1
        fleet.clocks[0] = Clock.crystal(fleet.rng, fleet.model, 3610, 0.0, freq=50e-6 * sign)
        fleet.clocks[1] = Clock.crystal(fleet.rng, fleet.model, 3610, 1e6, freq=-50e-6 * sign)
        est = OffsetEstimator()
        for k in range(int(3600 / 5)):
            est.add_sample(*fleet.exchange(1, 0, k * 5 * S + 777))
        false_steps += est.steps
    return worst, false_steps, trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="clock-offset accuracy benchmark")
    parser.add_argument("--quick", action="store_true", help="5 simulated minutes, 2 seeds")
    parser.add_argument("--seeds", type=int, default=3, help="fleets simulated (default 3)")
    # A zone pair's asymmetry is one draw per fleet: its rows need many fleets to mean much.
    parser.add_argument(
        "--level-fleets", type=int, default=8, help="fleets per level of route asymmetry"
    )
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between probes")
    parser.add_argument("--wander", type=float, default=FleetModel.wander_ppm, help="ppm/√s")
    parser.add_argument("--freq", type=float, default=FleetModel.freq_ppm, help="±ppm per crystal")
    parser.add_argument("--spikes", type=float, default=FleetModel.spike_share)
    parser.add_argument("--asymmetry", type=float, default=FleetModel.asymmetry,
                        help="± share per host pair and direction")  # fmt: skip
    parser.add_argument("--zone-asymmetry", type=float, default=FleetModel.zone_asymmetry,
                        help="± share per zone pair and direction")  # fmt: skip
    args = parser.parse_args(argv)
    seeds, minutes = (2, 5) if args.quick else (args.seeds, args.minutes)
    model = FleetModel(wander_ppm=args.wander, freq_ppm=args.freq, spike_share=args.spikes,
                       asymmetry=args.asymmetry, zone_asymmetry=args.zone_asymmetry)  # fmt: skip
    results = merge([simulate(model, seed, minutes, args.interval) for seed in range(1, seeds + 1)])
    print(
        f"simulated fleets: {seeds} × {model.hosts} hosts in {model.zones} zones, {minutes} min, "
        f"one probe every {args.interval:g} s; crystals ±{model.freq_ppm:g} ppm (reference too), "
        f"wander {model.wander_ppm:g} ppm/√s; fixed asymmetries the estimator is not told: routes "
        f"±{100 * model.zone_asymmetry:g} % per zone pair + ±{100 * model.asymmetry:g} % per host "
        f"pair and direction, stacks {model.stack_us[0]:g}-{model.stack_us[1]:g} µs per host and "
        f"direction; {100 * model.spike_share:g} % spikes of 1-2 ms\n"
    )
    header = (f"{'method':<22} {'cold p99':>9} {'steady p50':>10} {'steady p99':>10} "
              f"{'xzone p50':>9} {'xzone p99':>9} {'causality':>10}")  # fmt: skip
    print(header + "   (µs; cold = first 60 s from the 2nd sample; causality = child spans "
          "outside their parent)")  # fmt: skip
    for name, r in results.items():
        cold = f"{q(r.cold, 0.99):9.1f}" if r.cold else f"{'-':>9}"
        pairs = (f"{statistics.median(r.pairs):9.1f} {q(r.pairs, 0.99):9.1f}"
                 if r.pairs else f"{'-':>9} {'-':>9}")  # fmt: skip
        viol = f"{100 * r.violations / r.rpcs:9.2f}%" if r.rpcs else f"{'-':>10}"
        print(f"{name:<22} {cold} {statistics.median(r.steady):10.1f} {q(r.steady, 0.99):10.1f} "
              f"{pairs} {viol}")  # fmt: skip
    print(f"\n{'calibration of σ':<22} {'cold ≤1σ':>9} {'cold ≤3σ':>9} {'steady ≤1σ':>10} "
          f"{'steady ≤3σ':>10}   (goal: 55-80 % within 1σ, >= 99 % within 3σ)")  # fmt: skip
    for name in ("least squares (0.x)", "schedobs estimator", "estimator + network"):
        first, later = results[name].sigma("sigma", "cold"), results[name].sigma("sigma", "steady")
        print(f"{name:<22} {100 * coverage(first, 1):8.1f}% {100 * coverage(first, 3):8.1f}% "
              f"{100 * coverage(later, 1):9.1f}% {100 * coverage(later, 3):9.1f}%")  # fmt: skip
    level_fleets, level_minutes = (1, 5) if args.quick else (args.level_fleets, 10)
    levels = calibration_by_level(level_fleets, level_minutes)
    print(f"\n{'σ by route asymmetry':<22} {'accuracy (µs)':>24}   {'default priors':>37}"
          f"   ({level_fleets} fleets × {level_minutes} min per level)")  # fmt: skip
    print(f"{'':<22} {'p50':>7} {'p99':>7} {'cold p99':>8}   {'cold ≤1σ':>8} {'≤3σ':>8} "
          f"{'steady ≤1σ':>10} {'≤3σ':>8}")  # fmt: skip
    for label, r, _ in levels:
        print(f"{label:<22} {statistics.median(r.steady):7.1f} {q(r.steady, 0.99):7.1f} "
              f"{q(r.cold, 0.99):8.1f}   "
              f"{_cold_steady(r, 'sigma')}")  # fmt: skip
    print(f"\n{'route prior from mesh':<22} {'per-path fit, bound':>15} {'across':>7}   "
          f"{'set per path within the zone, >= default across':>37}   "
          f"{'one bound on every host':>23}")  # fmt: skip
    print(f"{'':<22} {'fit':>7} {'within':>7} {'across':>7}   {'cold ≤1σ':>8} {'≤3σ':>8} "
          f"{'steady ≤1σ':>10} {'≤3σ':>8}   {'cold ≤3σ':>8} {'steady ≤3σ':>10}")  # fmt: skip
    for label, r, _ in levels:
        fit, within, across = (statistics.median(v) if v else float("nan")
                               for v in (r.learnt, r.learnt_upper, r.learnt_across))  # fmt: skip
        first, later = r.sigma("blind", "cold"), r.sigma("blind", "steady")
        blind = f"{100 * coverage(first, 3):7.1f}% {100 * coverage(later, 3):9.1f}%"
        print(f"{label:<22} {fit:7.4f} {within:7.4f} {across:7.4f}   "
              f"{_cold_steady(r, 'mesh')}   {blind}")  # fmt: skip
    print(f"\n{'σ by path to reference':<22} {'default priors':>35}   "
          f"{'route prior from mesh':>35}   (within: the host is in the reference's zone; "
          "≤1σ cold/steady, ≤3σ the lower of the two)")  # fmt: skip
    print(f"{'':<22} {'within ≤1σ':>12} {'≤3σ':>4} {'across ≤1σ':>12} {'≤3σ':>4}   "
          f"{'within ≤1σ':>12} {'≤3σ':>4} {'across ≤1σ':>12} {'≤3σ':>4}")  # fmt: skip
    for label, r, _ in levels:
        cells = []
        for kind in ("sigma", "mesh"):
            for where in ("within", "across"):
                cold1, steady1 = _within(r, kind, 1, where)
                low = min(_within(r, kind, 3, where))
                cells.append(f"{100 * cold1:5.1f}/{100 * steady1:4.1f}% {100 * low:4.1f}%")
        print(f"{label:<22} {cells[0]} {cells[1]}   {cells[2]} {cells[3]}")
    print(f"\n{'network solve by level':<22} {'accuracy (µs)':>24}   "
          f"{'its σ (default priors on the edges)':>37}")  # fmt: skip
    print(f"{'':<22} {'p50':>7} {'p99':>7} {'cold p99':>8}   {'cold ≤1σ':>8} {'≤3σ':>8} "
          f"{'steady ≤1σ':>10} {'≤3σ':>8}")  # fmt: skip
    for label, _, n in levels:
        print(
            f"{label:<22} {statistics.median(n.steady):7.1f} {q(n.steady, 0.99):7.1f} "
            f"{q(n.cold, 0.99):8.1f}   {_cold_steady(n, 'sigma')}"
        )
    worst, false_steps, trials = step_trials(2 if args.quick else 6)
    print(f"\nsteps of 2 ms, 50 ms, 1 s on either clock ({trials} trials): detected within "
          f"{worst} samples at worst; an hour of 100 ppm drift with 10 % spikes: "
          f"{false_steps} false steps")  # fmt: skip
    ours, net, single = (results[k] for k in ("schedobs estimator", "estimator + network",
                                              "one NTP sample"))  # fmt: skip
    both = ours.sigma("sigma", "cold") + ours.sigma("sigma", "steady")
    checks = [
        ("cold start (first 60 s), p99 <= 400 µs", q(ours.cold, 0.99) <= 400),
        ("steady host vs reference, p50 <= 15 µs", statistics.median(ours.steady) <= 15),
        ("steady host vs reference, p99 <= 90 µs", q(ours.steady, 0.99) <= 90),
        ("cross-zone pairs + network, p50 <= 15 µs", statistics.median(net.pairs) <= 15),
        ("cross-zone pairs + network, p99 <= 60 µs", q(net.pairs, 0.99) <= 60),
        ("no causality violations (estimator + network)", net.violations == 0),
        ("steady p99 at least 10x better than one NTP sample",
         q(single.steady, 0.99) >= 10 * q(ours.steady, 0.99)),
        ("σ: >= 99 % within 3σ, cold and steady", min(_within(ours, "sigma", 3)) >= 0.99),
        ("σ: 55-80 % within 1σ, cold and steady",
         all(0.55 <= share <= 0.80 for share in _within(ours, "sigma", 1))),
        ("σ: 55-80 % within 1σ, all points", 0.55 <= coverage(both, 1) <= 0.80),
        ("σ by level, default priors: >= 99 % within 3σ, cold and steady",
         all(min(_within(r, "sigma", 3)) >= 0.99 for _, r, _ in levels)),
        ("σ by level, default priors: >= 55 % within 1σ",
         all(min(_within(r, "sigma", 1)) >= 0.55 for _, r, _ in levels)),
        ("σ by level, default priors: <= 80 % within 1σ (conservative: docs/clock.md)",
         all(max(_within(r, "sigma", 1)) <= 0.80 for _, r, _ in levels)),
        ("σ by level, route prior from the mesh: >= 99 % within 3σ, cold and steady",
         all(min(_within(r, "mesh", 3)) >= 0.99 for _, r, _ in levels)),
        ("σ by level, mesh prior, hosts in the reference's zone: 55-80 % within 1σ",
         all(0.55 <= share <= 0.80 for _, r, _ in levels
             for share in _within(r, "mesh", 1, "within"))),
        ("σ by level, mesh prior, hosts across zones: 55-80 % within 1σ (docs/clock.md)",
         all(0.55 <= share <= 0.80 for _, r, _ in levels
             for share in _within(r, "mesh", 1, "across"))),
        ("by level: steady p50/p99 <= 15/90 µs, cold p99 <= 400 µs",
         all(statistics.median(r.steady) <= 15 and q(r.steady, 0.99) <= 90
             and q(r.cold, 0.99) <= 400 for _, r, _ in levels)),
        ("by level, estimator + network: steady p50/p99 <= 15/90 µs",
         all(statistics.median(n.steady) <= 15 and q(n.steady, 0.99) <= 90
             for _, _, n in levels)),
        ("σ by level, network solve: >= 99 % within 3σ, cold and steady",
         all(min(_within(n, "sigma", 3)) >= 0.99 for _, _, n in levels)),
        ("steps detected within 3 samples", worst <= 3),
        ("100 ppm drift is never a step", false_steps == 0),
    ]  # fmt: skip
    print("\ngoals")
    for label, ok in checks:
        print(f"  {label:<66} {'meets' if ok else 'MISSES'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
