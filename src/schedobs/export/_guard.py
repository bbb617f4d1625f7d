"""One clear line, not a traceback, when the metric exporter itself raises.

The SDK's ``PeriodicExportingMetricReader`` logs any exception out of
``export()`` with its full traceback, at every interval and again at
shutdown.  An exporter that raises instead of returning ``FAILURE`` (a
connection error some exporter releases let through, a collector that is
gone at shutdown) is an operational condition, not a bug in the caller: this
wrapper turns it into ``FAILURE`` and one warning line naming the endpoint
and the error, then stays quiet until an export succeeds again.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from ._sdk import preferences

__all__ = ["GuardedMetricExporter"]

_log = logging.getLogger("schedobs")


class GuardedMetricExporter(MetricExporter):
    """Delegates to ``inner``; an exception becomes ``FAILURE`` and one log line."""

    def __init__(self, inner: MetricExporter, endpoint: str) -> None:
        super().__init__(**preferences(inner))
        self._inner = inner
        self._endpoint = endpoint
        self._failing = False
        #: Exports that raised (and were turned into FAILURE).
        self.errors = 0

    def _fail(self, what: str, exc: Exception) -> None:
        self.errors += 1
        if not self._failing:
            self._failing = True
            _log.warning(
                "metric %s to %s failed: %s: %s (further failures are not logged until one "
                "succeeds)", what, self._endpoint, type(exc).__name__, exc,
            )  # fmt: skip

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._fail("export", exc)
            return MetricExportResult.FAILURE
        if result is MetricExportResult.SUCCESS:
            self._failing = False
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis=timeout_millis)
        except Exception as exc:
            self._fail("flush", exc)
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._fail("exporter shutdown", exc)
