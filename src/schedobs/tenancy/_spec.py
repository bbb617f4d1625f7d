"""Tenant declarations, SLA classes, per-task resource limits, and their validation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from schedobs._checks import is_int, is_number

__all__ = ["SLA_WEIGHTS", "ConstraintError", "Limits", "Tenant"]

#: Default SLA classes and their weights.
SLA_WEIGHTS = {"gold": 3.0, "silver": 2.0, "bronze": 1.0}


class ConstraintError(ValueError):
    """A task declares more than the runtime's limits allow (``constraint_violation``)."""

    reason = "constraint_violation"

    def __init__(self, message: str, tenant: str | None = None) -> None:
        super().__init__(message)
        self.tenant = tenant


def _positive(what: str, value: object, *, allow_none: bool = False, integer: bool = False) -> None:
    if value is None and allow_none:
        return
    if not (is_int(value) or (not integer and is_number(value))):
        raise TypeError(f"{what} must be a {'int' if integer else 'number'}, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be > 0, got {value!r}")


@dataclass(frozen=True)
class Tenant:
    """One tenant: its SLA class, CPU quota and admission bounds.

    Args:
        name: the tenant's name (also the ``scheduler.tenant`` attribute).
        sla: ``gold``, ``silver`` or ``bronze`` (weights 3, 2, 1), or any key of
            the scheduler's SLA table.
        cpu_quota: processors this tenant's pool may use (its isolation quota).
        cpu_request: processors a typical task of this tenant requests; weight =
            SLA weight × (1 + cpu_request / cpu_quota).
        max_running: tasks of this tenant running at once.
        max_queued: tasks waiting in its pool; beyond → ``queue_full``.
        hard_limit: tasks admitted and not finished (queued + running); the
            admission pre-filter refuses once usage would pass 95 % of it
            (``quota_exceeded``).
    """

    name: str
    sla: str = "bronze"
    cpu_quota: float = 1.0
    cpu_request: float = 0.0
    max_running: int = 2
    max_queued: int = 10_000
    hard_limit: int = 20_000

    def validate(self, capacity: float, sla_weights: dict[str, float]) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first bad field."""
        if not isinstance(self.name, str) or not self.name or len(self.name) > 128:
            raise ValueError(f"tenant name must be 1 to 128 characters, got {self.name!r}")
        if self.sla not in sla_weights:
            raise ValueError(
                f"tenant {self.name!r}: unknown SLA {self.sla!r}; known: {', '.join(sla_weights)}"
            )
        _positive(f"tenant {self.name!r} cpu_quota", self.cpu_quota)
        if self.cpu_quota > capacity:
            raise ValueError(
                f"tenant {self.name!r}: cpu_quota {self.cpu_quota} is above the capacity "
                f"({capacity} processors)"
            )
        if not (is_number(self.cpu_request) and 0 <= self.cpu_request <= self.cpu_quota):
            raise ValueError(
                f"tenant {self.name!r}: cpu_request must be within [0, cpu_quota], "
                f"got {self.cpu_request!r}"
            )
        for what in ("max_running", "max_queued", "hard_limit"):
            _positive(f"tenant {self.name!r} {what}", getattr(self, what), integer=True)

    def weight(self, sla_weights: dict[str, float]) -> float:
        """SLA weight × (1 + cpu_request / cpu_quota)."""
        return sla_weights[self.sla] * (1.0 + self.cpu_request / self.cpu_quota)


@dataclass(frozen=True)
class Limits:
    """What a single task may declare.  ``clamp``: reduce over-limit values instead of refusing."""

    max_memory_mb: float = 4096.0
    max_timeout_s: float = 3600.0
    max_cpu: float = 1.0
    clamp: bool = False

    def apply(
        self,
        tenant: str,
        memory_mb: float | None,
        timeout_s: float | None,
        cpu: float | None,
    ) -> tuple[float | None, float | None, float | None]:
        """Validate (and clamp, if allowed) one task's declaration."""
        out: list[float | None] = []
        for what, value, limit in (
            ("memory_mb", memory_mb, self.max_memory_mb),
            ("timeout_s", timeout_s, self.max_timeout_s),
            ("cpu", cpu, self.max_cpu),
        ):
            if value is None:
                out.append(None)
                continue
            try:
                _positive(what, value)
            except (TypeError, ValueError) as exc:
                raise ConstraintError(f"tenant {tenant!r}: {exc}", tenant) from None
            if value > limit:
                if not self.clamp:
                    raise ConstraintError(
                        f"tenant {tenant!r}: {what}={value} exceeds the limit {limit}", tenant
                    )
                value = limit
            out.append(float(value))
        return out[0], out[1], out[2]
