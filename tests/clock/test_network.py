"""The network solve: exact on consistent data, alarms on asymmetric loops, clear errors."""

from __future__ import annotations

import random

import pytest

from schedobs.clock import Edge, solve_network


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
