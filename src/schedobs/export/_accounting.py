"""Counting what telemetry loses, and saying so once.

Spans are lost two ways: the batch processor's queue is full (the SDK drops
the span; its own duplicate filter logs the warning once), or the exporter
gives up on a batch (collector down past the retry deadline).
:class:`SpanAccounting` counts both in
``schedobs.spans.dropped{schedobs.drop.reason}`` and logs the first failed
export once, so a collector outage costs one log line and an exact count, not a
log line per span.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from schedobs.contract import DROPPED_SPANS, SPAN_DROP_REASON

from ._sdk import UnsupportedSdkError, queue_of

__all__ = ["CountingSpanExporter", "SpanAccounting"]

_log = logging.getLogger("schedobs")


class SpanAccounting:
    """Counts dropped spans by reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dropped = {"queue_full": 0, "export_failed": 0}

    # --- queue-full drops -----------------------------------------------------------------

    def processor(self, exporter: SpanExporter) -> BatchSpanProcessor:
        """A ``BatchSpanProcessor`` for ``exporter`` that counts the spans its full queue drops."""
        return _CountingBatchSpanProcessor(exporter, self)

    def _queue_full(self) -> None:
        with self._lock:
            self.dropped["queue_full"] += 1

    # --- failed exports -----------------------------------------------------------------

    def wrap(self, exporter: SpanExporter) -> CountingSpanExporter:
        """An exporter that counts the spans of every batch ``exporter`` fails to send."""
        return CountingSpanExporter(exporter, self)

    def _failed(self, n: int, *, log: bool = True) -> None:
        with self._lock:
            self.dropped["export_failed"] += n
            first = self.dropped["export_failed"] == n
        if first and log:
            _log.warning(
                "span export failed: %d span(s) lost; further losses are counted in "
                "schedobs.spans.dropped, not logged",
                n,
            )

    # --- the self-metric --------------------------------------------------------------------

    def register_metrics(self, provider: MeterProvider) -> None:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                counts = dict(self.dropped)
            return [Observation(v, {SPAN_DROP_REASON: k}) for k, v in counts.items()]

        provider.get_meter("schedobs.self").create_observable_counter(
            DROPPED_SPANS.name,
            callbacks=[observe],
            unit=DROPPED_SPANS.unit,
            description=DROPPED_SPANS.description,
        )


class _CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's processor; a span that arrives at a full queue is counted before the SDK
    drops it (the queue is private SDK state, found per release by ``_sdk.queue_of``)."""

    def __init__(self, exporter: SpanExporter, accounting: SpanAccounting) -> None:
        super().__init__(exporter)
        self._accounting = accounting
        try:
            self._span_queue, self._span_bound = queue_of(self)
        except UnsupportedSdkError:
            self.shutdown()  # type: ignore[no-untyped-call]  # its worker thread has started
            raise

    def on_end(self, span: ReadableSpan) -> None:
        if len(self._span_queue) >= self._span_bound:
            self._accounting._queue_full()
        super().on_end(span)


class CountingSpanExporter(SpanExporter):
    """Delegates to ``inner``; counts the spans of every batch it fails to send."""

    def __init__(self, inner: SpanExporter, accounting: SpanAccounting) -> None:
        self._inner = inner
        self._accounting = accounting
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._aborted = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            self._lost(len(spans))
            raise
        if result is not SpanExportResult.SUCCESS:
            self._lost(len(spans))
        return result

    def _lost(self, n: int) -> None:
        # After abort() shutdown has already reported this batch as not finished.
        self._accounting._failed(n, log=not self._aborted)

    def _stop(self) -> bool:
        with self._stop_lock:
            first = not self._stopped
            self._stopped = True
        return first

    def shutdown(self) -> None:
        if self._stop():  # once: after abort() the SDK's own call would only warn
            self._inner.shutdown()

    def abort(self) -> None:
        """Stop an export that is still retrying (shutdown's bound has passed)."""
        self._aborted = True
        if self._stop():
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)
