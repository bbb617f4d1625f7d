"""The fallback for traces already collected: clock offsets from client/server span pairs.

Where both ends of an RPC are traced, a client span on host A (start t1, end
t4 on A's clock) and its server child on host B (start t2, end t3 on B's
clock) are one NTP exchange between A and B.  Many traces give many exchanges
per host pair; each pair gets a drift-aware :class:`OffsetEstimator` (which
favours the exchanges with the lowest network delay), the pairs become edges
of :func:`solve_network`, and every host's spans are shifted by its solved
offset to the reference host — evaluated at each span's time, so drift is
followed.

Unlike the Zipkin and Jaeger skew adjusters, nothing is ever moved to the
middle of its parent: a child that starts early because the server really was
fast stays early; only measured clock differences are removed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from ._correction import shift_span
from ._estimator import OffsetEstimator
from ._network import Edge, NetworkSolution, solve_network

__all__ = ["SpanPairAdjuster", "host_of_span"]


def host_of_span(span: ReadableSpan) -> str:
    """The host a span was recorded on: ``host.name``, else ``service.instance.id``,
    else ``service.name`` of its resource."""
    attrs: Any = span.resource.attributes if span.resource is not None else {}
    for key in ("host.name", "service.instance.id", "service.name"):
        value = attrs.get(key)
        if value:
            return str(value)
    return "unknown"


class SpanPairAdjuster:
    """Collect spans from many traces, then correct them against ``reference_host``.

    >>> adjuster = SpanPairAdjuster(reference_host="gateway-1")   # doctest: +SKIP
    >>> adjuster.add_spans(spans)                                 # doctest: +SKIP
    >>> corrected = adjuster.adjust(spans)                        # doctest: +SKIP
    """

    def __init__(
        self,
        reference_host: Hashable,
        *,
        host_of: Callable[[ReadableSpan], Hashable] = host_of_span,
        max_pending: int = 100_000,
    ) -> None:
        self.reference_host = reference_host
        self._host_of = host_of
        self._max_pending = max_pending
        self._pairs: dict[tuple[Hashable, Hashable], OffsetEstimator] = {}
        self._clients: dict[int, ReadableSpan] = {}  # CLIENT spans by span id
        self._orphans: dict[int, list[ReadableSpan]] = {}  # SERVER spans by parent id
        self._times: list[int] = []
        #: Span pairs that could not be a clock sample (negative delay and such).
        self.rejected_pairs = 0
        #: Span pairs used.
        self.pairs_used = 0

    def add_spans(self, spans: Iterable[ReadableSpan]) -> None:
        """Index spans; every client/server pair across two hosts becomes a sample."""
        for span in spans:
            ctx = span.context
            if ctx is None or span.start_time is None or span.end_time is None:
                continue
            self._times.append(span.start_time)
            if span.kind is SpanKind.CLIENT:
                self._remember(self._clients, ctx.span_id, span)
                for child in self._orphans.pop(ctx.span_id, []):
                    self._pair(span, child)
            elif span.kind is SpanKind.SERVER and span.parent is not None:
                parent = self._clients.get(span.parent.span_id)
                if parent is not None:
                    self._pair(parent, span)
                elif len(self._orphans) < self._max_pending:
                    self._orphans.setdefault(span.parent.span_id, []).append(span)

    def _remember(self, table: dict[int, ReadableSpan], key: int, span: ReadableSpan) -> None:
        if len(table) >= self._max_pending:
            table.pop(next(iter(table)))  # bounded memory: forget the oldest
        table[key] = span

    def _pair(self, client: ReadableSpan, server: ReadableSpan) -> None:
        a, b = self._host_of(client), self._host_of(server)
        if a == b:
            return
        estimator = self._pairs.get((a, b))
        if estimator is None:
            estimator = self._pairs[(a, b)] = OffsetEstimator(window=4096)
        try:
            estimator.add_sample(
                client.start_time,  # type: ignore[arg-type]
                server.start_time,  # type: ignore[arg-type]
                server.end_time,  # type: ignore[arg-type]
                client.end_time,  # type: ignore[arg-type]
            )
        except (TypeError, ValueError):
            self.rejected_pairs += 1
            return
        self.pairs_used += 1

    def solve(self, at_ns: int) -> NetworkSolution:
        """Every host's offset to the reference host at (the reference's) time ``at_ns``."""
        edges = []
        for (a, b), estimator in self._pairs.items():
            est = estimator.estimate(at_ns=at_ns)
            if est is not None:
                edges.append(Edge.of(a, b, est))
        if not edges:
            raise ValueError("no client/server span pairs across hosts were seen")
        return solve_network(edges, self.reference_host)

    def adjust(self, spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
        """Shift each span by its host's offset, interpolated in time (drift-aware).

        Spans of hosts with no path to the reference are returned unchanged.
        """
        span_list = list(spans)
        if not self._times:
            return span_list
        first, last = min(self._times), max(self._times)
        early, late = self.solve(first), self.solve(last)
        out = []
        for span in span_list:
            host = self._host_of(span)
            if host not in early.offsets_ns or span.start_time is None:
                out.append(span)
                continue
            x0, x1 = early.offsets_ns[host], late.offsets_ns[host]
            freq = (x1 - x0) / (last - first) if last > first else 0.0
            offset = round(x0 + freq * (span.start_time - first))
            sigma = round(max(early.uncertainties_ns[host], late.uncertainties_ns[host]))
            out.append(shift_span(span, offset, freq, max(sigma, 1)))
        return out
