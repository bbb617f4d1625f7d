"""The registry: where collection finds every scheduler's pre-aggregated metrics.

A :class:`Registry` is the *metric producer* of the OTel specification: readers
pull from it at collection time.  The export bridge attaches one registry to
every metric reader it wires up, so all schedulers share one mechanism.

Series belong to the process that recorded them.  A child made by
``os.fork()`` (a prefork worker pool, say) inherits a frozen copy of its
parent's schedulers; if the OpenTelemetry SDK's periodic reader, which restarts
itself in the child, exported them too, a backend would see two processes
claim the same series with different values.  So a registry collects only the
members registered in the current process, and a member inherited through a
fork gives up its name to a new one registered in the child.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Protocol

from schedobs import _forksafe

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
        _forksafe.register(self)  # an exporter may be collecting when a prefork server forks
        # name -> (member, pid of the process that registered it)
        self._members: dict[str, tuple[Collectable, int]] = {}

    def register(self, member: Collectable) -> None:
        """Add a scheduler; its name must be unique in this registry (in this process)."""
        pid = os.getpid()
        with self._lock:
            current = self._members.get(member.name)
            if current is not None and current[1] == pid:
                raise ValueError(
                    f"a scheduler named {member.name!r} is already registered; "
                    "scheduler names must be unique per registry (they become the "
                    "scheduler.name attribute)"
                )
            self._members[member.name] = (member, pid)

    def unregister(self, member: Collectable) -> None:
        """Remove a scheduler; its series stop being exported.  Idempotent."""
        with self._lock:
            current = self._members.get(member.name)
            if current is not None and current[0] is member:
                del self._members[member.name]

    def member(self, name: str) -> Collectable | None:
        """The scheduler registered as ``name`` in this process, or ``None``."""
        with self._lock:
            current = self._members.get(name)
        return current[0] if current is not None and current[1] == os.getpid() else None

    def names(self) -> list[str]:
        """Names of the schedulers registered in this process."""
        pid = os.getpid()
        with self._lock:
            return [name for name, (_, owner) in self._members.items() if owner == pid]

    def collect(self) -> list[MetricSnapshot]:
        """Snapshot every scheduler registered in this process, grouped by metric, in
        contract order."""
        pid = os.getpid()
        with self._lock:
            members = [member for member, owner in self._members.values() if owner == pid]
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
