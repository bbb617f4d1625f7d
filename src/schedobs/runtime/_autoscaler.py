"""The elastic processor pool: scale the runtime's Ps on the pending-queue length.

Every ``interval`` seconds the autoscaler reads L, the runnable tasks waiting
(global and local queues), and smooths it: ``L̂ ← α·L + (1 − α)·L̂``.

- **Out**: when L̂ stays above ``threshold`` for ``patience`` samples, add
  ``ΔN = ⌈β·√L̂⌉`` processors (the Lyapunov-drift rule: the step grows with the
  square root of the backlog, so a large backlog is met quickly without
  overshooting a small one).
- **In**: when L̂ stays below ``threshold / 4`` with an idle processor for
  ``idle_patience`` samples, remove one.
- **No flapping**: the in and out conditions are far apart (hysteresis), each
  change starts a ``cooldown`` of samples with no change, and N stays within
  ``[min_procs, max_procs]``.

Decisions are counted (``scale_outs``, ``scale_ins``); the runtime counts every
change of its pool as a scale event and exports it with its metrics.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._periodic import Periodic

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["Autoscaler"]


class Autoscaler(Periodic):
    """Scales ``runtime``'s processors within ``[min_procs, max_procs]``."""

    _thread_name = "schedobs-autoscaler"

    def __init__(
        self,
        runtime: Runtime,
        *,
        min_procs: int = 1,
        max_procs: int = 8,
        threshold: float = 16.0,
        beta: float = 0.5,
        alpha: float = 0.3,
        interval: float = 0.1,
        patience: int = 3,
        idle_patience: int = 20,
        cooldown: int = 5,
    ) -> None:
        if not 1 <= min_procs <= max_procs:
            raise ValueError(f"need 1 <= min_procs <= max_procs, got {min_procs}, {max_procs}")
        if not 0 < alpha <= 1 or beta <= 0 or threshold <= 0 or interval <= 0:
            raise ValueError("alpha must be in (0, 1]; beta, threshold and interval > 0")
        self.runtime = runtime
        self.min_procs = min_procs
        self.max_procs = max_procs
        self.threshold = threshold
        self.beta = beta
        self.alpha = alpha
        self.interval = interval
        self.patience = patience
        self.idle_patience = idle_patience
        self.cooldown = cooldown
        self.smoothed = 0.0
        self.scale_outs = 0
        self.scale_ins = 0
        #: (procs before, procs after) of every decision, in order.
        self.history: list[tuple[int, int]] = []
        self._above = 0
        self._idle = 0
        self._quiet = 0
        self._init_thread()
        if runtime.procs < min_procs or runtime.procs > max_procs:
            runtime.resize(min(max(runtime.procs, min_procs), max_procs))

    def step(self) -> int:
        """One decision (the thread calls this every ``interval``); returns the new N."""
        stats = self.runtime.stats()
        pending = stats.queued_global + stats.queued_local
        self.smoothed = self.alpha * pending + (1 - self.alpha) * self.smoothed
        n = self.runtime.procs
        if self._quiet > 0:
            self._quiet -= 1
            return n
        if self.smoothed > self.threshold:
            self._above += 1
            self._idle = 0
        elif self.smoothed < self.threshold / 4 and stats.processors_idle > 0:
            self._idle += 1
            self._above = 0
        else:
            self._above = self._idle = 0
        target = n
        if self._above >= self.patience and n < self.max_procs:
            target = min(self.max_procs, n + math.ceil(self.beta * math.sqrt(self.smoothed)))
            self.scale_outs += 1
        elif self._idle >= self.idle_patience and n > self.min_procs:
            target = n - 1
            self.scale_ins += 1
        if target != n:
            self.runtime.resize(target)
            self.history.append((n, target))
            self._above = self._idle = 0
            self._quiet = self.cooldown
        return target
