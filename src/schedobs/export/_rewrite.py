"""The timestamp-rewriting seam in front of the span and metric exporters.

Clock compensation (docs/clock.md) corrects timestamps *before* they leave the
process.  This module is the one place where that happens: every OTLP exporter
that :func:`schedobs.configure` builds is wrapped so that batches pass through a
:class:`TimestampRewriter` first::

    BatchSpanProcessor ─► RewritingSpanExporter ─► rewriter.rewrite_spans ─► OTLP
    PeriodicReader ─────► RewritingMetricExporter ─► rewriter.rewrite_metrics ─► OTLP

The Prometheus text exposition carries no timestamps (the scraper stamps the
samples), so the scrape path needs no rewriting.

A rewriter that raises is logged once and the batch is exported uncorrected:
a correction bug must not lose telemetry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._sdk import preferences

__all__ = ["RewritingMetricExporter", "RewritingSpanExporter", "TimestampRewriter"]

_log = logging.getLogger("schedobs")


@runtime_checkable
class TimestampRewriter(Protocol):
    """Corrects timestamps of a batch just before export.

    Implementations return new objects (SDK spans and metric data are
    immutable); they must not block and must be thread-safe.
    """

    def rewrite_spans(self, spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
        """Return the spans with corrected start, end and event times."""
        ...

    def rewrite_metrics(self, data: MetricsData) -> MetricsData:
        """Return the metric data with corrected data-point timestamps."""
        ...


class _Once:
    """Log an exception the first time only (a broken stage would log per batch)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._done = False

    def __call__(self) -> None:
        if not self._done:
            self._done = True
            _log.exception("%s failed; exporting uncorrected timestamps (logged once)", self._what)


class RewritingSpanExporter(SpanExporter):
    """A span exporter that rewrites timestamps, then delegates to ``inner``."""

    def __init__(self, inner: SpanExporter, rewriter: TimestampRewriter) -> None:
        self._inner = inner
        self._rewriter = rewriter
        self._failed = _Once("span timestamp rewriting")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            spans = self._rewriter.rewrite_spans(spans)
        except Exception:
            self._failed()
        return self._inner.export(spans)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class RewritingMetricExporter(MetricExporter):
    """A metric exporter that rewrites timestamps, then delegates to ``inner``."""

    def __init__(self, inner: MetricExporter, rewriter: TimestampRewriter) -> None:
        # Keep the inner exporter's temporality and aggregation preferences:
        # the reader reads them from the exporter it is given.
        super().__init__(**preferences(inner))
        self._inner = inner
        self._rewriter = rewriter
        self._failed = _Once("metric timestamp rewriting")

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            metrics_data = self._rewriter.rewrite_metrics(metrics_data)
        except Exception:
            self._failed()
        return self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
