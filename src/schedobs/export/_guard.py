"""Failed metric exports: counted, and one clear line instead of a traceback.

The SDK's ``PeriodicExportingMetricReader`` logs any exception out of
``export()`` with its full traceback, at every interval and again at
shutdown.  An exporter that raises instead of returning ``FAILURE`` (a
connection error some exporter releases let through, a collector that is
gone at shutdown) is an operational condition, not a bug in the caller: this
wrapper turns it into ``FAILURE`` and one warning line naming the endpoint
and the error, then stays quiet until an export succeeds again.  Every failed
export, raised or returned (the OTLP exporter returns ``FAILURE`` once its
retries run out), is counted in ``schedobs.metric_exports.failed``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from schedobs.contract import FAILED_METRIC_EXPORTS

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
        #: Exports that failed, raised or returned (``schedobs.metric_exports.failed``).
        self.failed = 0
        self._closing = False
        self._stop_lock = threading.Lock()
        self._stopped = False

    def _fail(self, what: str, reason: str) -> None:
        # Once shutdown began, an export still running is covered by shutdown's own
        # report (it returns False and says what did not finish): counted, not logged.
        late_export = self._closing and what == "export"
        if not self._failing and not late_export:
            self._failing = True
            _log.warning(
                "metric %s to %s failed: %s (further failures are counted in "
                "schedobs.metric_exports.failed, not logged, until one succeeds)",
                what, self._endpoint, reason,
            )  # fmt: skip

    def _raised(self, what: str, exc: Exception) -> None:
        self.errors += 1
        self._fail(what, f"{type(exc).__name__}: {exc}")

    def register_metrics(self, provider: MeterProvider) -> None:
        """Report :attr:`failed` as ``schedobs.metric_exports.failed``."""

        def observe(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(self.failed)]

        provider.get_meter("schedobs.self").create_observable_counter(
            FAILED_METRIC_EXPORTS.name,
            callbacks=[observe],
            unit=FAILED_METRIC_EXPORTS.unit,
            description=FAILED_METRIC_EXPORTS.description,
        )

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self.failed += 1  # one thread exports: the reader's, or shutdown's after it
            self._raised("export", exc)
            return MetricExportResult.FAILURE
        if result is MetricExportResult.SUCCESS:
            self._failing = False
        else:
            self.failed += 1
            self._fail("export", "the exporter gave up (unreachable, refused or timed out)")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis=timeout_millis)
        except Exception as exc:
            self._raised("flush", exc)
            return False

    def _stop(self) -> bool:
        with self._stop_lock:
            first = not self._stopped
            self._stopped = True
        return first

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._closing = True
        if not self._stop():  # once: after abort() the SDK's own call would only warn
            return
        try:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._raised("exporter shutdown", exc)

    def abort(self) -> None:
        """Stop an export that is still retrying (shutdown's bound has passed)."""
        self.shutdown(timeout_millis=0)
