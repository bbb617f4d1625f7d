"""Joining OpenTelemetry that a service has already set up, instead of a second pipeline.

A service started by ``opentelemetry-instrument`` (the SDK configured from
``OTEL_*`` variables) or one that builds its own ``MeterProvider`` already has
readers and exporters.  :func:`attach_to_provider` hands the contract metrics
to those readers — the ones it has, with their exporters, intervals and
resource — so that the contract leaves by the service's one pipeline, once.
:func:`attach_clock` puts clock compensation in front of the exporters those
providers already have, and adds the clock metrics to their readers.
"""

from __future__ import annotations

import logging
import weakref

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider

from schedobs.contract import Registry

from ._bridge import attach
from ._clock import ClockCompensation
from ._exemplars import enable_exemplars
from ._rewrite import RewritingMetricExporter, RewritingSpanExporter
from ._sdk import check_sdk, metric_exporter_slot, readers_of, span_exporter_slots

__all__ = ["attach_clock", "attach_to_provider"]

_log = logging.getLogger("schedobs")

# Meter providers that already report a clock's metrics: a second attach_clock()
# must not register the instruments twice.
_clock_metrics_on: weakref.WeakSet[MeterProvider] = weakref.WeakSet()


def attach_to_provider(
    meter_provider: MeterProvider | None = None,
    *,
    registry: Registry | None = None,
    exemplars: bool = True,
) -> list[MetricReader]:
    """Export ``registry``'s contract metrics through the readers ``meter_provider`` has.

    ``meter_provider`` defaults to the global one — under ``opentelemetry-instrument``,
    the provider it configured from the ``OTEL_*`` variables; call this from the
    application, once it runs.  Returns the readers the contract was attached to;
    readers that already carry it are left as they are, so a second call adds
    nothing.  ``exemplars``: latency observations in a sampled span keep its trace id.

    Raises ``TypeError`` when the provider is not the OpenTelemetry SDK's (the
    API's no-op provider, before anything configured one), and ``ValueError``
    when it has no reader (nothing would ever export the contract).
    """
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    if not isinstance(provider, MeterProvider):
        raise _not_sdk("MeterProvider", provider, "attach_to_provider")
    check_sdk()
    readers, resource = readers_of(provider)
    if not readers:
        raise ValueError(
            "this MeterProvider has no metric reader, so nothing would export the contract: "
            "set OTEL_METRICS_EXPORTER (otlp, prometheus) or use schedobs.configure()"
        )
    attached = []
    for reader in readers:
        if getattr(getattr(reader, "_collect", None), "_schedobs_bridge", False):
            continue  # attached before: the contract must leave once
        attach(reader, resource=resource, registry=registry)
        attached.append(reader)
    enable_exemplars(exemplars)
    return attached


def attach_clock(
    clock: ClockCompensation | str,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> ClockCompensation:
    """Correct the timestamps that providers someone else built export.

    ``clock``: a :class:`ClockCompensation`, or a reference (``"ntp://host"``,
    ``"redis://host:port"``, ``"host:port"`` of ``schedobs clock serve``) to build one
    with the defaults; it is started if it was not.  Every span exporter the
    ``tracer_provider``'s processors hold (batch or simple) and every periodic
    reader's exporter of ``meter_provider`` is wrapped in place so that spans and
    data points leave with corrected times, and the clock metrics
    (``clock.offset``, ``clock.uncertainty``, …) join ``meter_provider``'s readers.
    Both providers default to the global ones (under ``opentelemetry-instrument``,
    the ones it configured: call this from the application, once it runs).

    Exporters that already rewrite timestamps are left as they are, so a second
    call corrects nothing twice.  Returns the clock; ``clock.close()`` stops its
    prober.  Raises ``TypeError`` when a provider is not the SDK's, ``ValueError``
    when the providers hold no exporter to correct (compensation would do
    nothing), :class:`~schedobs.export.UnsupportedSdkError` when the installed SDK
    keeps its exporters where schedobs does not look.
    """
    tracers = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
    meters = metrics.get_meter_provider() if meter_provider is None else meter_provider
    if not isinstance(tracers, TracerProvider):
        raise _not_sdk("TracerProvider", tracers, "attach_clock")
    if not isinstance(meters, MeterProvider):
        raise _not_sdk("MeterProvider", meters, "attach_clock")
    check_sdk()
    span_slots = span_exporter_slots(tracers)
    readers, _ = readers_of(meters)
    metric_slots = [slot for slot in map(metric_exporter_slot, readers) if slot is not None]
    if not span_slots and not metric_slots:
        raise ValueError(
            "these providers hold no span exporter and no periodic metric exporter, so no "
            "timestamp would be corrected: set OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER, "
            "or wrap your exporters with ClockCompensation.wrap_span_exporter()"
        )
    if isinstance(clock, str):
        clock = ClockCompensation.create(clock)
    clock.start()
    wrapped = 0
    for holder, name in span_slots:
        exporter = getattr(holder, name)
        if not isinstance(exporter, RewritingSpanExporter):
            setattr(holder, name, clock.wrap_span_exporter(exporter))
            wrapped += 1
    for holder, name in metric_slots:
        exporter = getattr(holder, name)
        if not isinstance(exporter, RewritingMetricExporter):
            setattr(holder, name, clock.wrap_metric_exporter(exporter))
            wrapped += 1
    if meters not in _clock_metrics_on:
        _clock_metrics_on.add(meters)
        clock.register_metrics(meters)
    _log.info("clock compensation: %d exporter(s) now send corrected timestamps", wrapped)
    return clock


def _not_sdk(what: str, provider: object, call: str) -> TypeError:
    return TypeError(
        f"the {what} is a {type(provider).__name__}, not the OpenTelemetry SDK's: "
        f"nothing has configured one yet (under opentelemetry-instrument, call {call}() "
        "from the application, after start-up), or pass yours"
    )
