"""The network solve: one consistent offset per host from many pairwise measurements.

Edge convention: ``Edge(a, b, offset_ns, uncertainty_ns)`` says host ``a``
measured host ``b`` as its reference: ``offset_ns = clock_b − clock_a`` (the
estimator's ``reference − local`` with ``a`` local and ``b`` the reference),
with a one-sigma ``uncertainty_ns``.

Unknowns: ``x_h = clock_ref − clock_h``, the offset each host must add to read
the reference's time (``x_ref = 0``).  An edge then says ``x_a − x_b =
offset_ns``.  The solve minimises ``Σ ((x_a − x_b − offset) / σ)²`` — weighted
least squares over every edge at once (the "network effect"): a pair measured
badly or asymmetrically is pulled into line by the other paths between the
same hosts, and what cannot be made consistent shows up as residuals.  The sum
of offsets around any loop is zero for true clocks, so a large normalised
residual flags path asymmetry (or a broken host) — the asymmetry alarm.

What averaging cannot remove: least squares treats the edges' errors as
independent, so a host's variance falls with every extra path.  The measured
part of an edge's error is independent; its assumed part — route and stack
asymmetry, what no exchange can see — need not be: the routes of one zone pair
carry the same asymmetry, and a shift that every path of a group of hosts
shares closes around every loop, so it is invisible to the solve and stays in
its offsets in full.  Each host's uncertainty is therefore the variance the
solve propagates from the edges' measured parts, plus the assumed variance of
its cheapest path to the reference (the sum along the path, minimised over
paths: Dijkstra).  Edges that carry no measured part (``measured_ns`` 0) are
independent measurements, and the plain least-squares variance is theirs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schedobs._checks import is_number

from ._estimator import DEFAULT_PATH_ASYMMETRY

if TYPE_CHECKING:
    from ._estimator import ClockEstimate

__all__ = ["AsymmetryFit", "Edge", "NetworkSolution", "learn_path_asymmetry", "solve_network"]

# learn_path_asymmetry: the weighted fit converges in a few rounds from the unweighted
# one (the weights change little once a² is within a factor of two).
_REWEIGHTS = 4
# (path_asymmetry 0.001)²: below any route asymmetry worth a prior.
_LEAST_ASYMMETRY2 = 1e-6


@dataclass(frozen=True)
class Edge:
    """``a`` measured ``b``: ``offset_ns = clock_b − clock_a`` (± ``uncertainty_ns``).

    For :func:`learn_path_asymmetry`, also the path's round trip and the part of the
    uncertainty the samples measure (``ClockEstimate.round_trip_ns`` and
    ``measured_ns``; ``Edge.of`` takes both from an estimate).
    """

    a: Hashable
    b: Hashable
    offset_ns: float
    uncertainty_ns: float
    round_trip_ns: float = 0.0
    measured_ns: float = 0.0

    @classmethod
    def of(cls, a: Hashable, b: Hashable, estimate: ClockEstimate) -> Edge:
        """The edge ``a``'s estimate of ``b`` gives (``b`` was ``a``'s reference)."""
        return cls(
            a, b, estimate.offset_ns, max(estimate.uncertainty_ns, 1),
            estimate.round_trip_ns, estimate.measured_ns,
        )  # fmt: skip


@dataclass(frozen=True)
class NetworkSolution:
    """Per-host offsets to the reference and per-edge residuals."""

    #: ``clock_ref − clock_host`` for every host reachable from the reference.
    offsets_ns: dict[Hashable, float]
    #: One-sigma uncertainty of each host's offset: the least-squares part and the
    #: asymmetry its cheapest path to the reference assumes, which no solve averages.
    uncertainties_ns: dict[Hashable, float]
    #: ``measured − solved`` for each edge, in ns, in input order.
    residuals_ns: tuple[float, ...]
    #: Residuals divided by the edge's uncertainty; |z| > 3 suggests asymmetry.
    normalized_residuals: tuple[float, ...]
    #: Indices of edges whose normalised residual exceeds ``alarm_sigma``.
    alarms: tuple[int, ...]
    #: Hosts with no path to the reference (left out of ``offsets_ns``).
    unreachable: tuple[Hashable, ...]


def solve_network(
    edges: Iterable[Edge], reference: Hashable, *, alarm_sigma: float = 3.0
) -> NetworkSolution:
    """Solve for every host's offset to ``reference`` (see the module docstring).

    Raises ``ValueError`` for an edge with a non-positive or non-finite
    uncertainty, a self-loop, or a reference that appears in no edge.
    """
    edge_list = list(edges)
    for i, e in enumerate(edge_list):
        if e.a == e.b:
            raise ValueError(f"edge {i} connects {e.a!r} to itself")
        if not (math.isfinite(e.uncertainty_ns) and e.uncertainty_ns > 0):
            raise ValueError(f"edge {i} has uncertainty {e.uncertainty_ns!r}; it must be > 0")
        if not math.isfinite(e.offset_ns):
            raise ValueError(f"edge {i} has a non-finite offset {e.offset_ns!r}")
    hosts = {h for e in edge_list for h in (e.a, e.b)}
    if reference not in hosts:
        raise ValueError(f"the reference {reference!r} appears in no edge")
    reachable = _component(edge_list, reference)
    unknowns = sorted((h for h in reachable if h != reference), key=repr)
    index = {h: i for i, h in enumerate(unknowns)}
    n = len(unknowns)
    # Normal equations  L x = r  of the weighted graph Laplacian, with x_ref = 0.
    lap = [[0.0] * n for _ in range(n)]
    rhs = [0.0] * n
    for e in edge_list:
        if e.a not in reachable:
            continue
        w = 1.0 / (e.uncertainty_ns * e.uncertainty_ns)
        ia, ib = index.get(e.a), index.get(e.b)
        # Residual (x_a − x_b − θ): d/dx_a gives +w(…), d/dx_b gives −w(…).
        if ia is not None:
            lap[ia][ia] += w
            rhs[ia] += w * e.offset_ns
        if ib is not None:
            lap[ib][ib] += w
            rhs[ib] -= w * e.offset_ns
        if ia is not None and ib is not None:
            lap[ia][ib] -= w
            lap[ib][ia] -= w
    solution, inverse = _solve_spd(lap, rhs)
    offsets = {reference: 0.0, **{h: solution[index[h]] for h in unknowns}}
    measured = [0.0] * n
    zeros = [0.0] * n  # the reference's row: x_ref is fixed
    for e in edge_list:
        if e.a not in reachable:
            continue
        # x̂ = L⁻¹ Σ w·θ·(u_a − u_b): an edge moves host h by w·(L⁻¹[h][a] − L⁻¹[h][b]) per
        # ns of its error; only its measured part is independent of the other edges'.
        own, _ = _split(e)
        w = 1.0 / (e.uncertainty_ns * e.uncertainty_ns)
        ia, ib = index.get(e.a), index.get(e.b)
        row_a = inverse[ia] if ia is not None else zeros
        row_b = inverse[ib] if ib is not None else zeros
        for h, (ga, gb) in enumerate(zip(row_a, row_b, strict=True)):
            gain = w * (ga - gb)
            measured[h] += gain * gain * own
    shared = _shared_floor(edge_list, reference)
    sigmas = {
        reference: 0.0,
        **{h: math.sqrt(measured[index[h]] + shared[h]) for h in unknowns},
    }
    residuals = []
    normalized = []
    for e in edge_list:
        if e.a in offsets and e.b in offsets:
            r = e.offset_ns - (offsets[e.a] - offsets[e.b])
        else:
            r = math.nan
        residuals.append(r)
        normalized.append(r / e.uncertainty_ns)
    alarms = tuple(i for i, z in enumerate(normalized) if abs(z) > alarm_sigma)
    unreachable = tuple(sorted((h for h in hosts if h not in reachable), key=repr))
    return NetworkSolution(
        offsets, sigmas, tuple(residuals), tuple(normalized), alarms, unreachable
    )


def _split(e: Edge) -> tuple[float, float]:
    """``(measured, assumed)`` variance (ns²) of an edge: its whole variance is measured
    when it gives no measured part (or one as large as its uncertainty)."""
    var = e.uncertainty_ns * e.uncertainty_ns
    if 0 < e.measured_ns < e.uncertainty_ns:
        measured = e.measured_ns * e.measured_ns
        return measured, var - measured
    return var, 0.0


def _shared_floor(edges: Sequence[Edge], reference: Hashable) -> dict[Hashable, float]:
    """Per host, the least assumed variance (ns²) along any path to ``reference``.

    An edge's assumed variance is what its uncertainty holds beyond its measured
    part (none for an edge that gives no measured part); a path's is the sum over
    its edges.  The solve cannot average it away if every path shares it, so each
    host keeps that of its cheapest path.
    """
    neighbours: dict[Hashable, list[tuple[Hashable, float]]] = {}
    for e in edges:
        _, assumed = _split(e)
        neighbours.setdefault(e.a, []).append((e.b, assumed))
        neighbours.setdefault(e.b, []).append((e.a, assumed))
    best: dict[Hashable, float] = {reference: 0.0}
    heap: list[tuple[float, int, Hashable]] = [(0.0, 0, reference)]
    pushed = 1  # a tie-breaker: hosts need not be comparable
    while heap:
        cost, _, host = heapq.heappop(heap)
        if cost > best[host]:
            continue
        for nxt, assumed in neighbours[host]:
            if cost + assumed < best.get(nxt, math.inf):
                best[nxt] = cost + assumed
                heapq.heappush(heap, (cost + assumed, pushed, nxt))
                pushed += 1
    return best


def _component(edges: Sequence[Edge], start: Hashable) -> set[Hashable]:
    neighbours: dict[Hashable, set[Hashable]] = {}
    for e in edges:
        neighbours.setdefault(e.a, set()).add(e.b)
        neighbours.setdefault(e.b, set()).add(e.a)
    seen = {start}
    stack = [start]
    while stack:
        for nxt in neighbours.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _solve_spd(
    matrix: list[list[float]], rhs: list[float]
) -> tuple[list[float], list[list[float]]]:
    """Solve a symmetric positive-definite system by Cholesky; also A⁻¹ (by columns,
    which are its rows: it is symmetric).

    Pure Python, O(n³): on a 2-core machine 100 hosts take 0.06 s, 300 take 1.4 s.
    """
    n = len(rhs)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            acc = matrix[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                if acc <= 0:
                    raise ValueError("the measurement graph is degenerate (singular system)")
                low[i][i] = math.sqrt(acc)
            else:
                low[i][j] = acc / low[j][j]

    def solve(b: list[float]) -> list[float]:
        y = [0.0] * n
        for i in range(n):
            y[i] = (b[i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i]
        x = [0.0] * n
        for i in reversed(range(n)):
            x[i] = (y[i] - sum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
        return x

    x = solve(rhs)
    inverse = []
    for i in range(n):
        unit = [0.0] * n
        unit[i] = 1.0
        inverse.append(solve(unit))
    return x, inverse


@dataclass(frozen=True)
class AsymmetryFit:
    """What the loops of a probe mesh say about its routes' asymmetry."""

    #: The point fit: one sigma of route asymmetry as a fraction of the round trip, in
    #: the unit of ``OffsetEstimator.path_asymmetry`` (set :meth:`for_path`, not this).
    path_asymmetry: float
    #: Triangles of edges it was learnt from.
    loops: int
    #: The fit plus two of its standard errors (in ``path_asymmetry``'s unit): what to
    #: set on the estimators of hosts whose path to the reference stays in one zone
    #: (:meth:`for_path`).  Where the loops are few or the edges' own measured parts
    #: dominate them (a young mesh), the point fit is noisy and often 0; this bound
    #: stays above the routes' asymmetry there, and comes down to the fit as the
    #: mesh's data grow.
    upper: float
    #: The point fit over every triangle, those through three different ``zones``
    #: included (without ``zones``, :attr:`path_asymmetry`).  Their closures also carry
    #: what the zone pairs' routes share, one draw of it per triple of zones: too
    #: little to bound it, enough to show it when it is large.
    every_loop: float = 0.0

    def for_path(self, across_zones: bool, *, shared: float = DEFAULT_PATH_ASYMMETRY) -> float:
        """The ``path_asymmetry`` to set on an estimator whose path to its reference
        stays inside one zone (``across_zones`` false: :attr:`upper`) or crosses
        between zones (the largest of :attr:`upper`, :attr:`every_loop` and ``shared``).

        Loops see asymmetry that differs from path to path.  Asymmetry that all the
        routes of a zone pair share is mostly invisible to them: a shift common to
        every path between two zones looks exactly like those zones' clocks being
        off, and with three zones the loops through all three see one combination
        of the three zone pairs, never each.  So across zones the mesh can show that
        routes are *more* asymmetric than ``shared`` (the prior for networks we do
        not know, the estimator's default), never that they are less.  Set
        ``shared`` lower only for what you know of your zones' routes.
        """
        if not (is_number(shared) and math.isfinite(shared) and shared >= 0):
            raise ValueError(f"shared must be a finite number >= 0, got {shared!r}")
        return max(self.upper, self.every_loop, float(shared)) if across_zones else self.upper


def learn_path_asymmetry(
    edges: Iterable[Edge],
    *,
    min_loops: int = 8,
    zones: Mapping[Hashable, Hashable] | None = None,
) -> AsymmetryFit | None:
    """The scale of route asymmetry that the loops of ``edges`` show, or ``None`` when
    there are fewer than ``min_loops`` triangles to learn it from.

    Around a loop of hosts the true offsets sum to zero, so a loop's measured sum
    (its closure) is the sum of its edges' errors: each edge's measured part
    (``measured_ns``) and its route asymmetry, modelled as ``path_asymmetry ×
    round_trip / 2``.  So a triangle's ``closure²`` has the mean ``m + a²·s`` (``m``:
    its edges' measured variances, ``s``: their ``(round_trip/2)²``, ``a``:
    ``path_asymmetry``) and, for Gaussian errors, the variance ``2(m + a²·s)²``.
    ``a²`` is fitted by weighted least squares over every triangle, each weighted by
    the inverse of that variance (re-weighted a few times from the unweighted fit;
    0 when the closures are no larger than the measured parts explain).  The
    weights matter in a young mesh: a triangle with one noisy edge (a window of two
    samples, one a queueing spike) says almost nothing about the routes, and
    counted like the others it made the fit's error several times larger.
    Asymmetry that is the same on every path of a host — its network stack — adds
    up to zero around a loop, like a clock offset, so no mesh can learn it:
    ``host_asymmetry_ns`` stays a prior.  Edges need ``round_trip_ns``
    (``Edge.of(a, b, estimate)`` takes it); one edge per pair of hosts is used (the
    first given).

    ``upper`` adds two standard errors of the fit: that of the weighted fit, scaled
    by how many times the triangles outnumber the mesh's independent loops (its
    cycle rank), since triangles share edges.

    ``zones`` (host → zone, every host of ``edges``): the fit is then of the
    asymmetry that differs from path to path alone.  Triangles through three
    different zones are left out: their closures also carry what the zone pairs'
    routes share, one draw of it per triple of zones, which would pass for
    per-path asymmetry (see :meth:`AsymmetryFit.for_path` for what to set across
    zones; a large one still shows in :attr:`AsymmetryFit.every_loop`).
    """
    pairs: dict[frozenset[Hashable], Edge] = {}
    neighbours: dict[Hashable, set[Hashable]] = {}
    for e in edges:
        if e.a == e.b or not e.round_trip_ns > 0:
            continue
        if zones is not None:
            for host in (e.a, e.b):
                if host not in zones:
                    raise ValueError(f"zones names no zone for host {host!r}")
        key = frozenset((e.a, e.b))
        if key in pairs:
            continue
        pairs[key] = e
        neighbours.setdefault(e.a, set()).add(e.b)
        neighbours.setdefault(e.b, set()).add(e.a)
    order = {h: i for i, h in enumerate(neighbours)}
    terms: list[tuple[float, float, float]] = []  # per triangle: (closure², m, s)
    across: list[tuple[float, float, float]] = []  # the same, through three zones
    used: dict[frozenset[Hashable], Edge] = {}  # the edges of the triangles in terms
    for e in pairs.values():
        u, v = e.a, e.b
        for w in neighbours[u] & neighbours[v]:
            if order[w] <= max(order[u], order[v]):
                continue  # each triangle once: from its edge of the two lowest hosts
            # A triangle through three zones closes over what the zone pairs share.
            three = zones is not None and len({zones[u], zones[v], zones[w]}) == 3
            closure = measured2 = spread2 = 0.0
            for x, y in ((u, v), (v, w), (w, u)):
                edge = pairs[frozenset((x, y))]
                if not three:
                    used[frozenset((x, y))] = edge
                # Along the loop x → y: offset = clock_y − clock_x as measured.
                closure += edge.offset_ns if edge.a == x else -edge.offset_ns
                measured2 += edge.measured_ns * edge.measured_ns
                spread2 += (edge.round_trip_ns / 2.0) ** 2
            (across if three else terms).append((closure * closure, measured2, spread2))
    loops = len(terms)
    if not terms or loops < min_loops:  # every s > 0: edges without a round trip are skipped
        return None
    a2, information = _fit(terms)
    # Triangles share edges: only the cycle rank of their edges' graph are independent.
    var = 2.0 / information * max(1.0, loops / _cycle_rank(used))
    upper = math.sqrt(a2 + 2.0 * math.sqrt(var))
    every = math.sqrt(_fit(terms + across)[0]) if across else math.sqrt(a2)
    return AsymmetryFit(math.sqrt(a2), loops, upper, every)


def _fit(terms: list[tuple[float, float, float]]) -> tuple[float, float]:
    """``a²`` fitted to the triangles' ``(closure², m, s)`` and its information: the
    unweighted fit (method of moments), then re-weighted (:func:`_weighted_fit`)."""
    a2 = max(sum(c2 - m2 for c2, m2, _ in terms), 0.0) / sum(s2 for _, _, s2 in terms)
    information = 0.0
    for _ in range(_REWEIGHTS):
        a2, information = _weighted_fit(terms, a2)
    return a2, information


def _weighted_fit(terms: list[tuple[float, float, float]], a2: float) -> tuple[float, float]:
    """One weighted least-squares fit of ``a²`` to ``closure² ≈ m + a²·s`` over the
    triangles' ``(closure², m, s)``, weighted by ``1 / (m + a²·s)²`` at the given
    ``a2``; returns the fit (clamped at 0) and its information ``Σ w·s²`` (the fit's
    variance is ``2 / information``)."""
    num = information = 0.0
    for closure2, m2, s2 in terms:
        # A floor on the weight's variance: loops whose edges give no measured part
        # and no asymmetry yet would otherwise weigh infinitely.
        w = 1.0 / max(m2 + a2 * s2, _LEAST_ASYMMETRY2 * s2) ** 2
        num += w * s2 * (closure2 - m2)
        information += w * s2 * s2
    return max(num / information, 0.0), information


def _cycle_rank(pairs: dict[frozenset[Hashable], Edge]) -> int:
    """Independent loops of the graph of ``pairs``: edges − hosts + components."""
    parent: dict[Hashable, Hashable] = {}

    def root(h: Hashable) -> Hashable:
        while parent.setdefault(h, h) != h:
            parent[h] = parent[parent[h]]
            h = parent[h]
        return h

    merged = 0
    for e in pairs.values():
        ra, rb = root(e.a), root(e.b)
        if ra != rb:
            parent[ra] = rb
            merged += 1
    # hosts − components = the merges a spanning forest made.
    return max(1, len(pairs) - merged)
