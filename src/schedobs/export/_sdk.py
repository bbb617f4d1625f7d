"""The private OpenTelemetry SDK hooks schedobs relies on, detected up front.

schedobs supports every ``opentelemetry-sdk`` release from 1.30 to the newest
(``make test-otel-range`` runs the suite at both ends).  Three things it needs
have no public API in the SDK yet:

* ``MetricReader._set_collect_callback`` (and the ``_collect`` it installs):
  the one path every collection takes, through which the bridge hands the
  pre-aggregated contract metrics to every reader.  The SDK has no public
  MetricProducer yet: open-telemetry/opentelemetry-python#4768 asks for one,
  and PR #5419 proposes ``metric_producers=`` on readers.  When a release
  accepts that argument, this is the place to switch to it.
* the ``BatchSpanProcessor``'s queue and its bound, read to count the spans the
  SDK drops when it is full (``schedobs.spans.dropped{reason=queue_full}``).
  Releases up to 1.33 keep them on the processor (``queue``,
  ``max_queue_size``); later ones on its ``_batch_processor`` (``_queue``,
  ``_max_queue_size``).
* ``MetricExporter._preferred_temporality`` / ``_preferred_aggregation``,
  carried over by the exporter wrappers so the reader keeps the wrapped
  exporter's choices.
* for providers someone else built (:func:`attach_to_provider`,
  :func:`attach_clock`): a ``MeterProvider``'s readers and resource, a
  ``TracerProvider``'s span processors and where each keeps its exporter, and a
  periodic reader's exporter, so that clock compensation can be put in front of
  exporters that already exist.

:func:`check_sdk` runs in :func:`schedobs.configure` before anything starts:
a release without one of them fails there, with the release and the hook
named, never later and silently.
"""

from __future__ import annotations

from collections.abc import Sized
from importlib import metadata
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = [
    "UnsupportedSdkError",
    "check_sdk",
    "metric_exporter_slot",
    "preferences",
    "queue_of",
    "readers_of",
    "span_exporter_slots",
    "span_queue",
]


class UnsupportedSdkError(RuntimeError):
    """The installed ``opentelemetry-sdk`` lacks a hook schedobs needs."""


def _release() -> str:
    try:
        return metadata.version("opentelemetry-sdk")
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored or odd installs
        return "unknown"


def _missing(hook: str, why: str) -> UnsupportedSdkError:
    return UnsupportedSdkError(
        f"opentelemetry-sdk {_release()} has no {hook}, which schedobs needs {why}; "
        "schedobs supports opentelemetry-sdk >=1.30,<2 (tested at both ends)"
    )


def span_queue(processor: BatchSpanProcessor) -> tuple[Sized, int] | None:
    """The processor's queue and its bound, wherever this release keeps them."""
    inner: Any = getattr(processor, "_batch_processor", None)
    for holder, queue, bound in (
        (inner, "_queue", "_max_queue_size"),
        (processor, "queue", "max_queue_size"),
    ):
        if holder is None:
            continue
        q, m = getattr(holder, queue, None), getattr(holder, bound, None)
        if isinstance(q, Sized) and isinstance(m, int):
            return q, m
    return None


def check_sdk() -> None:
    """Raise :class:`UnsupportedSdkError` naming the release and the hook if one is missing."""
    if not callable(getattr(MetricReader, "_set_collect_callback", None)):
        raise _missing(
            "MetricReader._set_collect_callback",
            "to hand its pre-aggregated metrics to every reader",
        )
    exporter = _Probe()
    for attribute in ("_preferred_temporality", "_preferred_aggregation"):
        if not hasattr(exporter, attribute):
            raise _missing(f"MetricExporter.{attribute}", "to wrap exporters faithfully")


def preferences(exporter: MetricExporter) -> dict[str, Any]:
    """The temporality and aggregation ``exporter`` asked its reader for."""
    return {
        "preferred_temporality": exporter._preferred_temporality,
        "preferred_aggregation": exporter._preferred_aggregation,
    }


def readers_of(provider: MeterProvider) -> tuple[list[MetricReader], Resource]:
    """The readers and the resource of a ``MeterProvider`` someone else built.

    The SDK offers no getter.  The resource is in ``_sdk_config``; the readers are
    in ``_sdk_config.metric_readers`` in older releases, and in the measurement
    consumer's reader storages (which also hold readers added after construction)
    or ``_metric_readers`` in newer ones.
    """
    config: Any = getattr(provider, "_sdk_config", None)
    resource = getattr(config, "resource", None)
    consumer: Any = getattr(provider, "_measurement_consumer", None)
    candidates = (
        getattr(getattr(consumer, "_reader_storages", None), "keys", lambda: None)(),
        getattr(config, "metric_readers", None),
        getattr(provider, "_metric_readers", None),
    )
    for found in candidates:
        if found is not None and isinstance(resource, Resource):
            readers = [r for r in found if isinstance(r, MetricReader)]
            return readers, resource
    raise _missing(
        "the readers of a MeterProvider (_measurement_consumer._reader_storages, "
        "_sdk_config.metric_readers or _metric_readers) and its _sdk_config.resource",
        "to join a MeterProvider it did not build",
    )


def queue_of(processor: BatchSpanProcessor) -> tuple[Sized, int]:
    """:func:`span_queue`, or :class:`UnsupportedSdkError` naming the release."""
    found = span_queue(processor)
    if found is None:
        raise _missing(
            "BatchSpanProcessor queue (_batch_processor._queue or queue)",
            "to count the spans dropped when it is full",
        )
    return found


class _Probe(MetricExporter):
    """A do-nothing exporter: what the SDK's base class sets up is what is probed."""

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        raise NotImplementedError

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def span_exporter_slots(provider: TracerProvider) -> list[tuple[Any, str]]:
    """Where each span processor of a ``TracerProvider`` someone else built keeps its
    exporter, as ``(holder, attribute)`` (so that it can be wrapped in place).

    The processors are in ``_active_span_processor._span_processors`` in every
    supported release.  A batch processor keeps its exporter in
    ``_batch_processor._exporter`` in newer releases and in ``span_exporter`` in
    older ones; a simple processor in ``span_exporter``.  Processors of other
    kinds hold no exporter schedobs knows of and are left out.
    """
    active: Any = getattr(provider, "_active_span_processor", None)
    processors = getattr(active, "_span_processors", None)
    if not isinstance(processors, (tuple, list)):
        raise _missing(
            "TracerProvider._active_span_processor._span_processors",
            "to correct the timestamps of the span exporters a TracerProvider has",
        )
    slots: list[tuple[Any, str]] = []
    for processor in processors:
        inner: Any = getattr(processor, "_batch_processor", None)
        if inner is not None and hasattr(inner, "_exporter"):
            slots.append((inner, "_exporter"))
        elif "span_exporter" in vars(processor):
            slots.append((processor, "span_exporter"))
    return slots


def metric_exporter_slot(reader: MetricReader) -> tuple[Any, str] | None:
    """Where a push reader keeps its exporter (``PeriodicExportingMetricReader._exporter``
    in every supported release); ``None`` for pull readers such as Prometheus's."""
    if isinstance(reader, PeriodicExportingMetricReader) and hasattr(reader, "_exporter"):
        return reader, "_exporter"
    return None
