# mypy: disable-error-code="operator, union-attr, index, arg-type"
"""Correcting collected traces from client/server span pairs, without forcing children to the centre."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from schedobs.clock import SpanPairAdjuster

T0 = 1_700_000_000_000_000_000
# x_h = reference − local: host "b" runs 30 ms behind, "c" 20 ms ahead and drifting.
TRUE = {"a": (0.0, 0.0), "b": (30e6, 0.0), "c": (-20e6, 25e-6)}


def _x(host: str, ref: int) -> float:
    offset, drift = TRUE[host]
    return offset + drift * (ref - T0)


def _local(host: str, ref: int) -> int:
    return ref - round(_x(host, ref))


_ids = iter(range(1, 10**9))


def _span(host: str, kind: SpanKind, start: int, end: int, trace: int, parent: SpanContext | None):
    ctx = SpanContext(trace, next(_ids), is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name="rpc",
        context=ctx,
        parent=parent,
        resource=Resource.create({"host.name": host}),
        kind=kind,
        start_time=start,
        end_time=end,
    )


def _traces(rng: random.Random, n: int) -> list[ReadableSpan]:
    spans = []
    pairs = [("a", "b"), ("b", "c"), ("a", "c")]
    for i in range(n):
        client, server = pairs[i % 3]
        send = T0 + i * 50_000_000
        fwd = 200_000 + round(rng.lognormvariate(10, 0.8))
        back = 200_000 + round(rng.lognormvariate(10.5, 0.8))
        work = rng.randrange(50_000, 500_000)
        c = _span(client, SpanKind.CLIENT, _local(client, send),
                  _local(client, send + fwd + work + back), trace=i + 1, parent=None)  # fmt: skip
        s = _span(server, SpanKind.SERVER, _local(server, send + fwd),
                  _local(server, send + fwd + work), trace=i + 1, parent=c.context)  # fmt: skip
        spans += [c, s]
    return spans


def test_collected_traces_are_corrected_to_the_reference_host() -> None:
    rng = random.Random(4)
    spans = _traces(rng, 600)
    adjuster = SpanPairAdjuster(reference_host="a")
    adjuster.add_spans(reversed(spans))  # children before parents: matched anyway
    assert adjuster.pairs_used == 600
    fixed = adjuster.adjust(spans)
    by_id = {s.context.span_id: s for s in fixed}
    errors = []
    for original, corrected in zip(spans, fixed, strict=True):
        host = original.resource.attributes["host.name"]
        true_start = original.start_time + _x(host, original.start_time)
        errors.append(abs(corrected.start_time - true_start))
    errors.sort()
    assert errors[len(errors) // 2] < 20_000  # median within 20 µs of the truth
    for s in fixed:
        if s.kind is SpanKind.SERVER:
            parent = by_id[s.parent.span_id]
            assert parent.start_time <= s.start_time
            assert s.end_time <= parent.end_time


def test_children_are_not_forced_to_the_centre() -> None:
    rng = random.Random(5)
    spans = _traces(rng, 300)
    # One RPC whose server started almost at once (a fast forward path).
    send = T0 + 7_500_000_000  # inside the span of the other traces
    c = _span("a", SpanKind.CLIENT, _local("a", send), _local("a", send + 5_000_000), 999, None)
    s = _span(
        "b",
        SpanKind.SERVER,
        _local("b", send + 210_000),
        _local("b", send + 300_000),
        999,
        c.context,
    )
    adjuster = SpanPairAdjuster(reference_host="a")
    adjuster.add_spans([*spans, c, s])
    fixed = {x.context.span_id: x for x in adjuster.adjust([c, s])}
    child, parent = fixed[s.context.span_id], fixed[c.context.span_id]
    lead = child.start_time - parent.start_time
    assert abs(lead - 210_000) < 100_000  # stays near the start, not at the centre (~2.4 ms)


def test_no_pairs_means_no_solution() -> None:
    adjuster = SpanPairAdjuster(reference_host="a")
    assert adjuster.adjust([]) == []
    with pytest.raises(ValueError, match="no client/server span pairs"):
        adjuster.solve(T0)


def test_each_corrected_span_carries_an_uncertainty_that_covers_its_error() -> None:
    # The replies are slower than the requests (lognormal medians 36 µs against 22 µs):
    # asymmetry no pair of spans can show, which each span's σ must still allow for.
    spans = _traces(random.Random(5), 600)
    adjuster = SpanPairAdjuster(reference_host="a")
    adjuster.add_spans(spans)
    assert _outside_3_sigma(spans, adjuster.adjust(spans), _x) == 0


def _outside_3_sigma(
    spans: list[ReadableSpan], fixed: list[ReadableSpan], x: Callable[[str, int], float]
) -> int:
    outside = 0
    for original, corrected in zip(spans, fixed, strict=True):
        host = original.resource.attributes["host.name"]
        sigma = corrected.attributes.get("clock.uncertainty_ns")
        if sigma is None:
            continue  # the reference host's own spans
        error = abs(corrected.start_time - (original.start_time + x(host, original.start_time)))
        outside += error > 3 * sigma
    return outside


def test_asymmetry_every_route_to_the_reference_shares_stays_in_sigma() -> None:
    # The reference "a" in one zone, eight hosts in another: every reply from the far
    # zone to "a" takes 40 µs longer than its request (a 20 µs shift of the whole zone,
    # which no loop of span pairs shows); routes inside the far zone are symmetric.
    rng = random.Random(6)
    far = [f"b{i}" for i in range(8)]
    offsets = {"a": 0.0, **{h: rng.uniform(-5e6, 5e6) for h in far}}
    spans = []
    for i in range(1_200):
        if i % 2:
            client, server = "a", far[i % 8]
        else:
            client, server = rng.sample(far, 2)
        send = T0 + i * 10_000_000
        extra = 40_000 if "a" in (client, server) else 0
        fwd = 300_000 + round(rng.lognormvariate(9.5, 0.5)) + (extra if server == "a" else 0)
        back = 300_000 + round(rng.lognormvariate(9.5, 0.5)) + (extra if client == "a" else 0)
        work = rng.randrange(50_000, 500_000)

        def local(host: str, ref: int) -> int:
            return ref - round(offsets[host])

        c = _span(client, SpanKind.CLIENT, local(client, send),
                  local(client, send + fwd + work + back), trace=i + 1, parent=None)  # fmt: skip
        s = _span(server, SpanKind.SERVER, local(server, send + fwd),
                  local(server, send + fwd + work), trace=i + 1, parent=c.context)  # fmt: skip
        spans += [c, s]
    adjuster = SpanPairAdjuster(reference_host="a")
    adjuster.add_spans(spans)
    fixed = adjuster.adjust(spans)
    assert _outside_3_sigma(spans, fixed, lambda host, _: offsets[host]) == 0
