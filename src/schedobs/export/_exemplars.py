"""Exemplars out: from the contract's histograms to OTLP and to OpenMetrics.

:func:`enable_exemplars` connects the contract layer to the OpenTelemetry API's
current context (see ``schedobs.contract._exemplars``).  The OTLP path carries
exemplars on histogram data points (the SDK encodes them); the SDK's Prometheus
exporter drops them, so :class:`OpenMetricsExemplars` puts them back on the
``_bucket`` samples of the scrape, which ``prometheus_client`` writes only in the
OpenMetrics format a scraper asks for (``Accept: application/openmetrics-text``,
as Prometheus does with exemplar storage on): the classic text format is
unchanged.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.metrics import Exemplar as SdkExemplar
from opentelemetry.sdk.metrics.export import Metric
from prometheus_client.samples import Exemplar as PromExemplar

from schedobs.contract import (
    LATENCY_BOUNDARIES_MS,
    SCHEDULE_LATENCY,
    Exemplar,
    disable_exemplars,
    enable_contract_exemplars,
)

__all__ = ["OpenMetricsExemplars", "enable_exemplars", "sdk_exemplars"]

_log = logging.getLogger("schedobs")


def _context_var() -> ContextVar[Any] | None:
    """The ContextVar of the API's default runtime context (private: feature-detected)."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, ContextVar) else None


def enable_exemplars(on: bool) -> bool:
    """Keep exemplars (or stop); ``False`` with a warning where the context is not found."""
    if not on:
        disable_exemplars()
        return False
    var = _context_var()
    if var is None:
        _log.warning(
            "exemplars are off: this OpenTelemetry runtime context keeps no ContextVar "
            "schedobs can read cheaply (a custom OTEL_PYTHON_CONTEXT?)"
        )
        return False
    enable_contract_exemplars(var, otel_trace.get_current_span)
    return True


def sdk_exemplars(exemplars: Sequence[Exemplar | None]) -> list[SdkExemplar]:
    """The SDK's exemplars for one histogram point (one per bucket at most)."""
    return [
        SdkExemplar(
            filtered_attributes=None,
            value=e.value,
            time_unix_nano=e.time_ns,
            span_id=e.span_id,
            trace_id=e.trace_id,
        )
        for e in exemplars
        if e is not None
    ]


def _sanitize(key: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in key)


class OpenMetricsExemplars:
    """Adds the latency histograms' exemplars to a scrape's ``_bucket`` samples.

    The bridge hands it the contract metrics of each collection (``observe``),
    so the exemplars come from the same snapshot the scrape's values do, with
    no second collection; ``apply`` then decorates the exporter's families.
    """

    def __init__(self) -> None:
        self._family = SCHEDULE_LATENCY.prometheus_name
        self._bounds = {_le(b): i for i, b in enumerate((*LATENCY_BOUNDARIES_MS, math.inf))}
        self._index: dict[frozenset[tuple[str, str]], dict[int, SdkExemplar]] = {}

    def observe(self, metrics: Iterable[Metric]) -> None:
        """Index the exemplars of one collection by series and bucket."""
        index: dict[frozenset[tuple[str, str]], dict[int, SdkExemplar]] = {}
        for metric in metrics:
            if metric.name != SCHEDULE_LATENCY.name:
                continue
            for point in metric.data.data_points:
                exemplars = getattr(point, "exemplars", None)
                if exemplars:
                    key = frozenset(
                        (_sanitize(k), str(v))
                        for k, v in (point.attributes or {}).items()
                        if v != ""
                    )
                    index[key] = {bisect_left(LATENCY_BOUNDARIES_MS, e.value): e for e in exemplars}
        self._index = index

    def apply(self, families: list[Any]) -> list[Any]:
        index = self._index
        if not index:
            return families
        for family in families:
            if family.name != self._family:
                continue
            samples = []
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    labels = {k: v for k, v in sample.labels.items() if v != "" and k != "le"}
                    labels = {k: v for k, v in labels.items() if not k.startswith("otel_scope_")}
                    found = index.get(frozenset(labels.items()))
                    bucket = self._bounds.get(sample.labels.get("le", ""))
                    if found and bucket is not None:
                        e = found.get(bucket)
                        if e is not None:
                            sample = sample._replace(exemplar=PromExemplar(
                                {"trace_id": f"{e.trace_id:032x}", "span_id": f"{e.span_id:016x}"},
                                e.value,
                                e.time_unix_nano / 1e9,
                            ))  # fmt: skip
                samples.append(sample)
            family.samples[:] = samples
        return families


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))
