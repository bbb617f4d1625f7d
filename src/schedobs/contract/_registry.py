"""The registry: where collection finds every scheduler's pre-aggregated metrics.

A :class:`Registry` is the *metric producer* of the OTel specification: readers
pull from it at collection time.  The export bridge attaches one registry to
every metric reader it wires up, so all schedulers share one mechanism.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

from ._points import MetricSnapshot, Point
from ._spec import CONTRACT, MetricSpec

__all__ = ["REGISTRY", "Registry"]


class Collectable(Protocol):
    """What a registry needs from a scheduler's metrics."""

    @property
    def name(self) -> str: ...

    def collect(self) -> Iterable[tuple[MetricSpec, Point]]: ...


class Registry:
    """A set of uniquely named schedulers whose metrics are collected together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[str, Collectable] = {}

    def register(self, member: Collectable) -> None:
        """Add a scheduler; its name must be unique in this registry."""
        with self._lock:
            if member.name in self._members:
                raise ValueError(
                    f"a scheduler named {member.name!r} is already registered; "
                    "scheduler names must be unique per registry (they become the "
                    "scheduler.name attribute)"
                )
            self._members[member.name] = member

    def unregister(self, member: Collectable) -> None:
        """Remove a scheduler; its series stop being exported.  Idempotent."""
        with self._lock:
            if self._members.get(member.name) is member:
                del self._members[member.name]

    def names(self) -> list[str]:
        """Names of the registered schedulers."""
        with self._lock:
            return list(self._members)

    def collect(self) -> list[MetricSnapshot]:
        """Snapshot every registered scheduler, grouped by metric, in contract order."""
        with self._lock:
            members = list(self._members.values())
        grouped: dict[str, list[Point]] = {}
        for member in members:
            for spec, point in member.collect():
                grouped.setdefault(spec.name, []).append(point)
        return [
            MetricSnapshot(spec, tuple(grouped[spec.name]))
            for spec in CONTRACT.metrics
            if spec.name in grouped
        ]


#: The process-wide default registry, used when none is passed (as
#: ``prometheus_client.REGISTRY``).  Tests should pass their own.
REGISTRY = Registry()
