"""Correct span and metric timestamps before export (a :class:`TimestampRewriter`).

One smooth correction per span: with the estimate ``(offset, freq)`` taken at
the span's start ``s``, every timestamp ``t`` of the span becomes
``t + offset + freq·(t − s)``.  Start, end and events move together; the
duration changes only by the factor ``1 + freq`` (a few ppm), never by a jump.
Each corrected span carries ``clock.offset_ns`` and ``clock.uncertainty_ns``.

Guardrails: an offset beyond ``max_adjust_ns`` is clamped to it (and the span
says ``clock.capped=true``); with no estimate yet, batches pass unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace import Event, ReadableSpan

from ._estimator import ClockEstimate, OffsetEstimator

__all__ = ["ClockCorrector", "shift_span"]


def shift_span(
    span: ReadableSpan, offset_ns: int, freq: float, uncertainty_ns: int, *, capped: bool = False
) -> ReadableSpan:
    """A copy of ``span`` with every timestamp ``t`` moved to
    ``t + offset_ns + freq·(t − start)``, and the correction recorded as attributes."""
    start = span.start_time
    if start is None:
        return span

    def fix(t: int | None) -> int | None:
        return None if t is None else t + offset_ns + round(freq * (t - start))

    attributes: dict[str, Any] = dict(span.attributes or {})
    attributes["clock.offset_ns"] = offset_ns
    attributes["clock.uncertainty_ns"] = uncertainty_ns
    if capped:
        attributes["clock.capped"] = True
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=[Event(e.name, e.attributes, fix(e.timestamp)) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=fix(start),
        end_time=fix(span.end_time),
        instrumentation_scope=span.instrumentation_scope,
    )


class ClockCorrector:
    """Rewrites timestamps with an :class:`OffsetEstimator`'s current fit."""

    def __init__(self, estimator: OffsetEstimator, *, max_adjust_ns: int = 1_000_000_000) -> None:
        if max_adjust_ns <= 0:
            raise ValueError(f"max_adjust_ns must be > 0, got {max_adjust_ns}")
        self.estimator = estimator
        self.max_adjust_ns = max_adjust_ns
        #: Spans whose correction was clamped to ``max_adjust_ns``.
        self.capped = 0

    def _shift(self, est: ClockEstimate) -> tuple[int, bool]:
        offset = est.offset_ns
        if abs(offset) > self.max_adjust_ns:
            return (self.max_adjust_ns if offset > 0 else -self.max_adjust_ns), True
        return offset, False

    def rewrite_spans(self, spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
        out: list[ReadableSpan] = []
        for span in spans:
            start = span.start_time
            est = self.estimator.estimate(at_ns=start) if start is not None else None
            if est is None:
                out.append(span)
                continue
            offset, capped = self._shift(est)
            if capped:
                self.capped += 1
            freq = 0.0 if capped else est.freq_ppm * 1e-6
            out.append(shift_span(span, offset, freq, est.uncertainty_ns, capped=capped))
        return out

    def rewrite_metrics(self, data: MetricsData) -> MetricsData:
        def fix(t: Any) -> Any:
            if not t:
                return t
            est = self.estimator.estimate(at_ns=t)
            if est is None:
                return t
            return t + self._shift(est)[0]

        return MetricsData(
            resource_metrics=[
                replace(rm, scope_metrics=[
                    replace(sm, metrics=[
                        replace(m, data=replace(m.data, data_points=[  # type: ignore[arg-type]
                            replace(p, time_unix_nano=fix(p.time_unix_nano),
                                    start_time_unix_nano=fix(p.start_time_unix_nano))
                            for p in m.data.data_points
                        ]))
                        for m in sm.metrics
                    ])
                    for sm in rm.scope_metrics
                ])
                for rm in data.resource_metrics
            ]
        )  # fmt: skip
