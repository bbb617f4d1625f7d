"""Export wiring: the OpenTelemetry SDK set up for the scheduler contract.

:func:`configure` builds a ``MeterProvider`` with a periodic OTLP reader and a
Prometheus scrape endpoint, a ``TracerProvider`` with batch OTLP export, and
attaches the producer bridge so that pre-aggregated contract metrics appear in
both outputs identically.  :class:`TimestampRewriter` is the seam where clock
compensation corrects timestamps before export.  A service whose OpenTelemetry is
already set up (``opentelemetry-instrument``, its own providers) calls
:func:`attach_to_provider` instead: the contract leaves through its readers;
:func:`attach_clock` (or :class:`ClockCompensation` around exporters it builds)
corrects their timestamps.

Example::

    import schedobs

    telemetry = schedobs.configure("checkout", zone="eu-west-1a",
                                   otlp_endpoint="http://127.0.0.1:4317")
    ...
    telemetry.shutdown(timeout=5)
"""

from ._bridge import SCOPE, attach, to_sdk_metrics
from ._clock import ClockCompensation
from ._configure import Telemetry, configure
from ._existing import attach_clock, attach_to_provider
from ._rewrite import RewritingMetricExporter, RewritingSpanExporter, TimestampRewriter
from ._settings import DEFAULT_PROMETHEUS, ExportSettings

__all__ = [
    "DEFAULT_PROMETHEUS",
    "SCOPE",
    "ClockCompensation",
    "ExportSettings",
    "RewritingMetricExporter",
    "RewritingSpanExporter",
    "Telemetry",
    "TimestampRewriter",
    "attach",
    "attach_clock",
    "attach_to_provider",
    "configure",
    "to_sdk_metrics",
]
