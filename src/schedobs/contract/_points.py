"""Plain-data snapshots of pre-aggregated contract metrics.

These are what a :class:`~schedobs.contract.Registry` hands out at collection
time.  They carry no OpenTelemetry SDK types, so the contract layer stays
SDK-free; the export bridge translates them into SDK data points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._exemplars import Exemplar
from ._spec import MetricSpec

__all__ = ["CounterPoint", "GaugePoint", "HistogramPoint", "MetricSnapshot", "Point"]


@dataclass(frozen=True)
class GaugePoint:
    """The current value of one gauge series."""

    attributes: Mapping[str, str]
    value: int


@dataclass(frozen=True)
class CounterPoint:
    """The cumulative value of one counter series since ``start_ns``."""

    attributes: Mapping[str, str]
    start_ns: int
    value: int


@dataclass(frozen=True)
class HistogramPoint:
    """The cumulative state of one explicit-bucket histogram series since ``start_ns``.

    ``bucket_counts`` has one entry per boundary plus the overflow bucket; bucket
    ``i`` counts values ``v`` with ``boundaries[i-1] < v <= boundaries[i]``.
    ``count`` always equals ``sum(bucket_counts)``.  ``min`` and ``max`` are 0.0
    while ``count`` is 0.
    """

    attributes: Mapping[str, str]
    start_ns: int
    count: int
    sum: float
    bucket_counts: tuple[int, ...]
    min: float
    max: float
    #: Per bucket, the latest observation made in a sampled trace, or ``None``
    #: (empty when exemplars are off).
    exemplars: tuple[Exemplar | None, ...] = ()


Point = GaugePoint | CounterPoint | HistogramPoint


@dataclass(frozen=True)
class MetricSnapshot:
    """All points of one contract metric at one collection."""

    spec: MetricSpec
    points: tuple[Point, ...]
