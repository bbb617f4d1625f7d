"""The network solve: exact on consistent data, alarms on asymmetric loops, clear errors."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from schedobs.clock import (
    AsymmetryFit,
    Edge,
    OffsetEstimator,
    learn_path_asymmetry,
    solve_network,
)


def _edge(a: int, b: int, x: dict[int, float], noise: float = 0.0, sigma: float = 10_000) -> Edge:
    # x_h = clock_ref − clock_h  ⇒  clock_b − clock_a = x_a − x_b
    return Edge(a, b, x[a] - x[b] + noise, sigma)


def test_consistent_measurements_are_recovered_exactly() -> None:
    rng = random.Random(2)
    x = {h: (0.0 if h == 0 else rng.uniform(-5e7, 5e7)) for h in range(12)}
    edges = [_edge(a, b, x) for a in range(12) for b in range(12) if a != b and (a + b) % 3 == 0]
    edges += [_edge(h, 0, x) for h in range(1, 12)]
    solution = solve_network(edges, reference=0)
    for h in range(12):
        assert solution.offsets_ns[h] == pytest.approx(x[h], abs=1e-3)
    assert not solution.alarms
    assert solution.unreachable == ()


def test_the_network_averages_out_noisy_pairs() -> None:
    rng = random.Random(3)
    x = {h: (0.0 if h == 0 else rng.uniform(-5e7, 5e7)) for h in range(20)}
    edges = [
        _edge(a, b, x, noise=rng.gauss(0, 10_000))
        for a in range(20)
        for b in range(20)
        if a != b and rng.random() < 0.4
    ]
    edges += [_edge(h, 0, x, noise=rng.gauss(0, 10_000)) for h in range(1, 20)]
    solution = solve_network(edges, reference=0)
    errors = sorted(abs(solution.offsets_ns[h] - x[h]) for h in range(1, 20))
    assert errors[len(errors) // 2] < 5_000  # well under one edge's 10 µs noise
    assert all(0 < solution.uncertainties_ns[h] < 10_000 for h in range(1, 20))


def test_an_asymmetric_path_raises_the_alarm() -> None:
    x = {0: 0.0, 1: 3e6, 2: -2e6, 3: 1e6}
    edges = [
        _edge(a, b, x, sigma=5_000) for a, b in [(1, 0), (2, 0), (3, 0), (1, 2), (2, 3), (3, 1)]
    ]
    # One path carries 200 µs of asymmetry: loops through it no longer close.
    edges.append(Edge(1, 3, x[1] - x[3] + 200_000, 5_000))
    solution = solve_network(edges, reference=0)
    assert len(edges) - 1 in solution.alarms


def test_unreachable_hosts_and_bad_input() -> None:
    x = {0: 0.0, 1: 1e6, 5: 0.0, 6: 2e6}
    solution = solve_network([_edge(1, 0, x), _edge(5, 6, x)], reference=0)
    assert set(solution.offsets_ns) == {0, 1}
    assert solution.unreachable == (5, 6)
    with pytest.raises(ValueError, match="uncertainty"):
        solve_network([Edge(1, 0, 5.0, 0.0)], reference=0)
    with pytest.raises(ValueError, match="itself"):
        solve_network([Edge(1, 1, 5.0, 1.0)], reference=1)
    with pytest.raises(ValueError, match="appears in no edge"):
        solve_network([Edge(1, 2, 5.0, 1.0)], reference=0)


def _mesh(p: float, seed: int, reverse: bool = False) -> list[Edge]:
    """Twelve hosts, every pair measured once, each edge off by route asymmetry of one
    sigma ``p × round_trip / 2`` (round trips of 1-2 ms), nothing else."""
    rng = random.Random(seed)
    hosts = range(12)
    x = {h: rng.uniform(-5e6, 5e6) for h in hosts}
    edges = []
    for a in hosts:
        for b in hosts:
            if a < b:
                rtt = rng.uniform(1e6, 2e6)
                offset = x[a] - x[b] + rng.gauss(0.0, p * rtt / 2)
                if reverse and (a + b) % 2:
                    edges.append(Edge(b, a, -offset, 1_000, round_trip_ns=rtt))
                else:
                    edges.append(Edge(a, b, offset, 1_000, round_trip_ns=rtt))
    return edges


@pytest.mark.parametrize("reverse", [False, True], ids=["one way", "either way"])
def test_the_loops_of_a_mesh_give_its_route_asymmetry(reverse: bool) -> None:
    fits = [learn_path_asymmetry(_mesh(0.03, seed, reverse)) for seed in range(5)]
    assert all(f is not None and f.loops == 220 for f in fits)  # C(12, 3) triangles
    learnt = sorted(f.path_asymmetry for f in fits if f is not None)
    assert 0.025 < learnt[2] < 0.035  # the median of five meshes, within ±17 %


def test_symmetric_routes_learn_nothing_and_few_loops_learn_nothing() -> None:
    fit = learn_path_asymmetry(_mesh(0.0, 1))
    assert fit is not None and fit.path_asymmetry < 1e-9  # rounding only
    # Errors the estimators measured themselves are not route asymmetry.
    measured = [Edge(e.a, e.b, e.offset_ns, 1_000, e.round_trip_ns, 20_000) for e in _mesh(0.0, 2)]
    fit = learn_path_asymmetry(measured)
    assert fit is not None and fit.path_asymmetry == 0.0
    triangle = [Edge("a", "b", 10.0, 1.0, 1e6), Edge("b", "c", 5.0, 1.0, 1e6),
                Edge("c", "a", -15.0, 1.0, 1e6)]  # fmt: skip
    assert learn_path_asymmetry(triangle) is None  # one loop, fewer than min_loops
    fit = learn_path_asymmetry(triangle, min_loops=1)
    assert fit is not None and fit.path_asymmetry == 0.0 and fit.loops == 1  # it closes


def _noisy_mesh(
    p: float, seed: int, noise: float, *, loud: float = 0.0, loud_share: float = 0.0
) -> list[Edge]:
    """36 hosts, a third of their pairs measured, each edge off by route asymmetry
    (one sigma ``p × round_trip / 2``) and by noise its estimator measured itself
    (``loud`` instead of ``noise`` on a ``loud_share`` of the edges)."""
    rng = random.Random(seed)
    x = {h: rng.uniform(-5e6, 5e6) for h in range(36)}
    edges = []
    for a in range(36):
        for b in range(a + 1, 36):
            if rng.random() < 0.3:
                rtt = rng.uniform(1e6, 2e6)
                own = loud if rng.random() < loud_share else noise
                offset = x[a] - x[b] + rng.gauss(0.0, p * rtt / 2) + rng.gauss(0.0, own)
                edges.append(Edge(a, b, offset, own, round_trip_ns=rtt, measured_ns=own))
    return edges


def test_the_upper_bound_holds_the_routes_asymmetry_where_the_fit_cannot_see_it() -> None:
    # A young mesh: each edge's own noise (80 µs) is several times the routes'
    # asymmetry (0.03 × 750 µs ≈ 22 µs), so the fit is often 0, and 0 set on the
    # estimators would leave the asymmetry out of their σ.
    fits = [learn_path_asymmetry(_noisy_mesh(0.03, seed, 80_000)) for seed in range(60)]
    young = [f for f in fits if f is not None]
    assert len(young) == 60
    assert sum(f.path_asymmetry < 0.03 / 2 for f in young) >= 10
    assert sum(f.upper >= 0.03 for f in young) >= 0.9 * len(young)
    # With quiet edges it comes down to the fit, which is then close to the truth.
    fits = [learn_path_asymmetry(_noisy_mesh(0.03, seed, 1_000)) for seed in range(60)]
    settled = [f for f in fits if f is not None]
    assert sum(f.upper >= 0.03 for f in settled) >= 0.85 * len(settled)
    assert all(f.path_asymmetry <= f.upper <= 1.5 * max(f.path_asymmetry, 0.02) for f in settled)
    assert statistics.median(f.upper for f in settled) < 0.04


def test_a_few_noisy_edges_do_not_hide_the_routes_asymmetry() -> None:
    # A young mesh: most edges have settled (5 µs of noise), one in ten has a window
    # of a sample or two, one of them a queueing spike (400 µs).  Those edges' loops
    # say almost nothing about the routes; counted like the others they swamped the
    # fit (0 in every mesh) and its bound (0.11 for routes of 0.02 or of 0).
    def fits(p: float) -> list[AsymmetryFit]:
        made = [
            learn_path_asymmetry(_noisy_mesh(p, seed, 5_000, loud=400_000, loud_share=0.1))
            for seed in range(40)
        ]
        return [f for f in made if f is not None]

    routes = fits(0.02)
    assert len(routes) == 40
    assert 0.015 < statistics.median(f.path_asymmetry for f in routes) < 0.025
    assert statistics.median(f.upper for f in routes) < 0.03
    assert sum(f.upper >= 0.02 for f in routes) >= 0.85 * len(routes)
    assert statistics.median(f.upper for f in fits(0.0)) < 0.01


def _zone_mesh(seed: int, zone_share: float) -> tuple[dict[int, int], list[Edge], dict[int, float]]:
    """30 hosts in 3 zones, host 0 the reference; every route between two zones off by
    a share within ``±zone_share`` per direction that all its host pairs share.
    Returns the zones, the edges (every host measured the reference, and 40 % of the
    other pairs) and, per host, its path to the reference's error in σ of the
    default prior (``DEFAULT_PATH_ASYMMETRY × round_trip / 2``)."""
    rng = random.Random(seed)
    zone = {h: h % 3 for h in range(30)}
    route = {(x, y): rng.uniform(-zone_share, zone_share) for x in range(3) for y in range(3)}
    x = {h: rng.uniform(-5e6, 5e6) for h in range(30)}
    edges, off = [], {}
    for a in range(30):
        for b in range(a + 1, 30):
            if a and rng.random() > 0.4:
                continue
            if zone[a] == zone[b]:
                rtt, error = 0.3e6, 0.0
            else:
                rtt = rng.uniform(1e6, 2e6)
                error = rtt / 4 * (route[zone[a], zone[b]] - route[zone[b], zone[a]])
            offset = x[a] - x[b] + error + rng.gauss(0.0, 1_000)
            edges.append(Edge(a, b, offset, 1_000, round_trip_ns=rtt, measured_ns=1_000))
            if a == 0:
                off[b] = error / (rtt / 2)
    return zone, edges, off


def test_asymmetry_that_zone_pairs_share_keeps_its_prior_across_zones() -> None:
    # Routes whose asymmetry every path between two zones shares (±10 % per zone pair
    # and direction, nothing per path): a shift common to a zone pair closes around
    # every loop but those through three zones, which see one combination of the
    # three pairs.  In a third of the meshes that combination is small, the fit with
    # it, and the fit's bound set on every host left a quarter of the cross-zone
    # hosts' route errors beyond 3σ.  Across zones the default prior (0.03) stays.
    within = across = cross_zone = 0
    for seed in range(60):
        zone, edges, off = _zone_mesh(seed, 0.10)
        blind = learn_path_asymmetry(edges)
        fit = learn_path_asymmetry(edges, zones=zone)
        assert blind is not None and fit is not None
        assert fit.loops < blind.loops  # the triangles through three zones are left out
        assert fit.for_path(False) == fit.upper
        for h, share in off.items():
            if zone[h] != zone[0]:
                cross_zone += 1
                within += abs(share) <= 3 * blind.upper
                across += abs(share) <= 3 * fit.for_path(True)
    assert within < 0.85 * cross_zone
    assert across >= 0.97 * cross_zone
    # Far beyond the prior (±30 % per zone pair), the loops through three zones still
    # show it: across zones the bound rises with them (no bound can hold such routes
    # in every mesh: one draw per triple of zones is all there is).
    raised = floor = cross_zone = 0
    for seed in range(60):
        zone, edges, off = _zone_mesh(seed, 0.30)
        fit = learn_path_asymmetry(edges, zones=zone)
        assert fit is not None
        for h, share in off.items():
            if zone[h] != zone[0]:
                cross_zone += 1
                raised += abs(share) <= 3 * fit.for_path(True)
                floor += abs(share) <= 3 * max(fit.upper, 0.03)
    assert floor < 0.7 * cross_zone < 0.75 * cross_zone < raised
    # The prior is the floor across zones, never the ceiling: routes the loops show to
    # be more asymmetric than the prior get the loops' bound.
    fit = learn_path_asymmetry(_noisy_mesh(0.06, 1, 1_000))
    assert fit is not None and fit.for_path(True) == fit.upper > OffsetEstimator().path_asymmetry
    assert fit.for_path(True, shared=0.0) == fit.upper


def test_zones_and_the_shared_prior_are_checked() -> None:
    zone, edges, _ = _zone_mesh(1, 0.0)
    del zone[7]
    with pytest.raises(ValueError, match="no zone for host 7"):
        learn_path_asymmetry(edges, zones=zone)
    fit = learn_path_asymmetry(edges)
    assert fit is not None
    for bad in (-0.01, float("nan"), float("inf"), "0.03", True):
        with pytest.raises(ValueError, match="shared must be a finite number >= 0"):
            fit.for_path(True, shared=bad)  # type: ignore[arg-type]


def test_an_edge_of_an_estimate_carries_what_learning_needs() -> None:
    est = OffsetEstimator()
    for k in range(20):
        est.add_sample(k * 10**9, k * 10**9 + 700_000, k * 10**9 + 720_000, k * 10**9 + 1_420_000)
    e = est.estimate(at_ns=20 * 10**9)
    assert e is not None
    edge = Edge.of("host", "ref", e)
    assert edge.round_trip_ns == 1_400_000 and 0 < edge.measured_ns < edge.uncertainty_ns


def _zoned_mesh(seed: int, shared: float) -> tuple[list[Edge], dict[int, float]]:
    """Hosts 1-11 in zone B, the reference 0 and hosts 12-23 in zone A; every edge
    measured well (2 µs) and carrying an assumed asymmetry budget of 20 µs.  Each
    route between the zones adds ``shared`` ns of asymmetry: the same on all of them,
    so no loop of the mesh shows it."""
    rng = random.Random(seed)
    zone = {h: "A" if h == 0 or h >= 12 else "B" for h in range(24)}
    x = {h: (0.0 if h == 0 else rng.uniform(-5e6, 5e6)) for h in range(24)}
    edges = []
    for a in range(1, 24):
        for b in [0, *rng.sample([p for p in range(1, 24) if p != a], 4)]:
            cross = zone[a] != zone[b]
            # For a measuring b across the zones, asymmetry moves clock_b − clock_a
            # one way when a is in B and the other way when a is in A.
            bias = (shared if zone[a] == "B" else -shared) if cross else 0.0
            offset = x[a] - x[b] + bias + rng.gauss(0.0, 2_000)
            edges.append(Edge(a, b, offset, math.hypot(2_000, 20_000), 1.5e6, 2_000))
    return edges, x


def test_asymmetry_every_path_shares_is_not_averaged_away() -> None:
    # 30 µs on every cross-zone route, within the edges' 20 µs budget at 1.5σ: the
    # solve cannot see it (it is a shift of zone B as a whole), so its σ must keep it.
    misses = 0
    for seed in range(5):
        edges, x = _zoned_mesh(seed, 30_000)
        solution = solve_network(edges, reference=0)
        for h in range(1, 12):
            error = abs(solution.offsets_ns[h] - x[h])
            assert 25_000 < error < 35_000  # the shared part stays in the solution
            misses += error > 3 * solution.uncertainties_ns[h]
    assert misses == 0


def test_the_floor_is_the_best_paths_budget_and_plain_edges_have_none() -> None:
    # Host 2 reaches the reference directly over a long route (budget 40 µs) or
    # through host 1 over two short ones (10 µs each): its floor is the cheaper path's.
    x = {0: 0.0, 1: 1e6, 2: 2e6}
    edges = [
        Edge(1, 0, x[1], math.hypot(1_000, 10_000), 0.4e6, 1_000),
        Edge(2, 1, x[2] - x[1], math.hypot(1_000, 10_000), 0.4e6, 1_000),
        Edge(2, 0, x[2], math.hypot(1_000, 40_000), 1.6e6, 1_000),
    ]
    solution = solve_network(edges, reference=0)
    assert 10_000 < solution.uncertainties_ns[1] < 11_000
    assert math.hypot(10_000, 10_000) < solution.uncertainties_ns[2] < 15_500
    # Edges with no measured part given are independent measurements, as before.
    plain = [Edge(e.a, e.b, e.offset_ns, e.uncertainty_ns) for e in edges]
    assert solve_network(plain, reference=0).uncertainties_ns[1] < 10_000
