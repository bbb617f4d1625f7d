"""Joining OpenTelemetry that a service has already set up, instead of a second pipeline.

A service started by ``opentelemetry-instrument`` (the SDK configured from
``OTEL_*`` variables) or one that builds its own ``MeterProvider`` already has
readers and exporters.  :func:`attach_to_provider` hands the contract metrics
to those readers — the ones it has, with their exporters, intervals and
resource — so that the contract leaves by the service's one pipeline, once.
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

from schedobs.contract import Registry

from ._bridge import attach
from ._exemplars import enable_exemplars
from ._sdk import check_sdk, readers_of

__all__ = ["attach_to_provider"]


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
        raise TypeError(
            f"the MeterProvider is a {type(provider).__name__}, not the OpenTelemetry SDK's: "
            "nothing has configured one yet (under opentelemetry-instrument, call "
            "attach_to_provider() from the application, after start-up), or pass yours"
        )
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
