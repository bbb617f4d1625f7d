"""Two-level multi-tenant scheduling in front of a GMP runtime.

::

    submit(tenant, fn) ─► admission pre-filter ─► tenant pool queue ─┐  level 1: isolation
        (quota_exceeded, queue_full,                                   │  (max_running,
         constraint_violation, shutdown)                               │   max_queued, hard limit)
                                                                       ▼
                     weighted fair queueing over backlogged pools ─► Runtime ─► Ms
                     (start-time fair queueing, cost = measured         level 2: shares by weight
                      task time / weight)

At most ``window`` tenant tasks are inside the runtime at once (default: one
per processor), so the order in which work reaches the processors is the
fair-queueing order, not the arrival order; a completion dispatches the next
task.  Each pool's virtual time advances by a task's estimated cost over the
tenant's weight and is corrected by its measured cost when it finishes, so
shares converge to ``weight / Σ weights`` of processor time among the tenants
that have work.  A pool that was idle rejoins at the current virtual time: it
can neither hoard credit nor be starved for its idleness.

Cost is CPU time for plain callables (``thread_time``: not the time spent
waiting for the GIL) and wall time from start to end for coroutines and
generators (they may move between threads).

Arbitration: every ``arbitration_period`` completions the measured shares are
compared with the fair shares (capacity × weight / Σ weights of the active
tenants); a deviation above 15 % re-arbitrates (virtual times of the pools
with work are realigned) and is counted.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from schedobs.contract import (
    QUEUE_LENGTH,
    SCHEDULER_QUEUE,
    SCHEDULER_TENANT,
    Registry,
    SchedulerMetrics,
)
from schedobs.runtime import RejectedError, Runtime, RuntimeFuture

from ._spec import SLA_WEIGHTS, ConstraintError, Limits, Tenant

__all__ = ["TenantScheduler", "TenantStats"]

_cpu = time.thread_time_ns
_ADMISSION_SHARE = 0.95  # refuse once usage would pass 95 % of the hard limit
_DEVIATION = 0.15


@dataclass(frozen=True)
class TenantStats:
    """One tenant's picture at a moment."""

    name: str
    weight: float
    fair_share: float  # of processor time, among tenants with work
    measured_share: float  # of processor time consumed so far (since the last arbitration)
    queued: int
    running: int
    completed: int
    service_s: float
    refused: dict[str, int]


class _Entry:
    __slots__ = ("args", "cost_ns", "deadline_ns", "fn", "future", "kwargs", "submitted_ns")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
        deadline_ns: int,
        submitted_ns: int,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.deadline_ns = deadline_ns
        self.submitted_ns = submitted_ns
        self.cost_ns = 0.0


class _Pool:
    def __init__(self, spec: Tenant, weight: float) -> None:
        self.spec = spec
        self.weight = weight
        self.queue: deque[_Entry] = deque()
        self.running = 0
        self.admitted = 0  # queued + running
        self.vtime = 0.0
        self.avg_cost_ns = 1_000_000.0  # a first guess: 1 ms per task
        self.service_ns = 0
        self.period_ns = 0
        self.completed = 0
        self.refused: dict[str, int] = {}
        self.removing = False
        self.drained = threading.Event()


class TenantScheduler:
    """Multi-tenant admission and weighted fair queueing for a :class:`Runtime`.

    >>> ts = TenantScheduler(runtime, [Tenant("acme", sla="gold"),        # doctest: +SKIP
    ...                                 Tenant("blip", sla="bronze")])
    >>> ts.submit("acme", handle, request).result()                       # doctest: +SKIP
    """

    def __init__(
        self,
        runtime: Runtime,
        tenants: Iterable[Tenant] = (),
        *,
        limits: Limits | None = None,
        sla_weights: dict[str, float] | None = None,
        window: int | None = None,
        name: str | None = None,
        registry: Registry | None = None,
        instrument: bool = True,
        arbitration_period: int = 256,
    ) -> None:
        self.runtime = runtime
        # The runtime's clock: deadlines given to it and waits measured here agree.
        self._now = runtime.clock
        self.limits = limits or Limits()
        self.sla_weights = dict(SLA_WEIGHTS if sla_weights is None else sla_weights)
        for sla, w in self.sla_weights.items():
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
                raise ValueError(f"SLA weight of {sla!r} must be > 0, got {w!r}")
        self.capacity = float(runtime.procs)
        self._window = runtime.procs if window is None else window
        if self._window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}
        self._inflight = 0
        self._vclock = 0.0
        self._closing = False
        self._period = arbitration_period
        self._since_arbitration = 0
        #: Times the arbiter found a share more than 15 % off and realigned the pools.
        self.rearbitrations = 0
        self.metrics: SchedulerMetrics | None = None
        if instrument:
            self.metrics = SchedulerMetrics(
                name or f"{runtime.name}.tenants", kind="gmp", registry=registry
            )
            self.metrics.register_callback(self._observe)
        for tenant in tenants:
            self.add_tenant(tenant)

    # --- tenants ---------------------------------------------------------------------

    def add_tenant(self, tenant: Tenant) -> None:
        """Declare a tenant; a duplicate name is a ``ValueError``."""
        tenant.validate(self.capacity, self.sla_weights)
        with self._lock:
            if tenant.name in self._pools:
                raise ValueError(f"tenant {tenant.name!r} is already declared")
            pool = _Pool(tenant, tenant.weight(self.sla_weights))
            pool.vtime = self._vclock
            self._pools[tenant.name] = pool

    def update_tenant(self, tenant: Tenant) -> None:
        """Change a tenant's declaration; queued and running work is kept."""
        tenant.validate(self.capacity, self.sla_weights)
        with self._lock:
            pool = self._live_pool(tenant.name)
            pool.spec = tenant
            pool.weight = tenant.weight(self.sla_weights)
            batch = self._dispatch_locked()
        self._start(batch)

    def remove_tenant(self, name: str, *, wait: bool = True, timeout: float | None = None) -> bool:
        """Stop admitting for ``name``; its admitted work still runs, then it is dropped.

        With ``wait``, returns once the tenant's last task finished (``False`` on timeout).
        """
        with self._lock:
            pool = self._live_pool(name)
            pool.removing = True
            if pool.admitted == 0:
                del self._pools[name]
                pool.drained.set()
        return pool.drained.wait(timeout) if wait else True

    def tenants(self) -> list[str]:
        with self._lock:
            return [n for n, p in self._pools.items() if not p.removing]

    def _live_pool(self, name: str) -> _Pool:
        pool = self._pools.get(name)
        if pool is None or pool.removing:
            raise KeyError(f"no tenant {name!r}")
        return pool

    # --- submitting --------------------------------------------------------------------

    def submit(
        self,
        tenant: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        memory_mb: float | None = None,
        timeout_s: float | None = None,
        cpu: float | None = None,
        **kwargs: Any,
    ) -> Future[Any]:
        """Admit ``fn(*args, **kwargs)`` for ``tenant``; return its future.

        Raises :class:`~schedobs.runtime.RejectedError` (``reason``:
        ``quota_exceeded``, ``queue_full``, ``shutdown``) or
        :class:`ConstraintError` (``constraint_violation``) — refused work never
        entered the system, accepted work is never dropped by a later refusal.
        ``timeout_s`` is enforced cooperatively: a task still queued at its
        deadline fails with ``TimeoutError``; a coroutine or generator gets
        ``TimeoutError`` thrown in at its next checkpoint.
        """
        try:
            _memory, timeout, _cpu = self.limits.apply(tenant, memory_mb, timeout_s, cpu)
        except ConstraintError:
            self._count_refusal(tenant, "constraint_violation")
            raise
        now = self._now()
        deadline = now + int(timeout * 1e9) if timeout else 0
        future: Future[Any] = RuntimeFuture()
        entry = _Entry(fn, args, kwargs, future, deadline, now)
        with self._lock:
            pool = self._pools.get(tenant)
            if pool is None and not self._closing:
                raise KeyError(f"no tenant {tenant!r}; declare it with add_tenant()")
            reason = "shutdown" if pool is None else self._refusal_locked(pool)
            if reason is None:
                assert pool is not None
                if not pool.queue and not pool.running:
                    pool.vtime = max(pool.vtime, self._vclock)  # rejoin at the present
                pool.admitted += 1
                pool.queue.append(entry)
                batch = self._dispatch_locked()
        if reason is not None:
            self._count_refusal(tenant, reason)
            raise RejectedError(reason, f"tenant {tenant!r}: {_MESSAGES[reason]}", tenant)
        self._start(batch)
        return future

    def _refusal_locked(self, pool: _Pool) -> str | None:
        if self._closing or pool.removing:
            return "shutdown"
        if pool.admitted + 1 > _ADMISSION_SHARE * pool.spec.hard_limit:
            return "quota_exceeded"
        if len(pool.queue) >= pool.spec.max_queued:
            return "queue_full"
        return None

    def _count_refusal(self, tenant: str, reason: str) -> None:
        with self._lock:
            pool = self._pools.get(tenant)
            if pool is not None:
                pool.refused[reason] = pool.refused.get(reason, 0) + 1
        if self.metrics is not None:
            self.metrics.reject(reason, tenant=tenant)

    # --- dispatch -------------------------------------------------------------------------

    def _dispatch_locked(self) -> list[tuple[_Pool, _Entry]]:
        batch: list[tuple[_Pool, _Entry]] = []
        while self._inflight < self._window:
            best: _Pool | None = None
            for pool in self._pools.values():
                eligible = pool.queue and pool.running < pool.spec.max_running
                if eligible and (best is None or pool.vtime < best.vtime):
                    best = pool
            if best is None:
                break
            entry = best.queue.popleft()
            self._vclock = best.vtime
            entry.cost_ns = best.avg_cost_ns
            best.vtime += entry.cost_ns / best.weight
            best.running += 1
            self._inflight += 1
            batch.append((best, entry))
        return batch

    def _start(self, batch: list[tuple[_Pool, _Entry]]) -> None:
        for pool, entry in batch:
            fn = entry.fn
            if inspect.iscoroutinefunction(fn):
                runner: Callable[..., Any] = self._run_async
            elif inspect.isgeneratorfunction(fn):
                runner = self._run_generator
            else:
                runner = self._run
            self.runtime.spawn(
                runner, (pool, entry), deadline_ns=entry.deadline_ns, tenant=pool.spec.name
            )

    def _begin(self, pool: _Pool, entry: _Entry) -> int | None:
        """Start bookkeeping; ``None`` if the task must not run (cancelled, timed out)."""
        start = self._now()
        future = entry.future
        if not future.set_running_or_notify_cancel():
            self._finish(pool, entry, 0)
            return None
        if self.metrics is not None:
            self.metrics.observe_latency(
                (start - entry.submitted_ns) / 1e6, queue="work", tenant=pool.spec.name
            )
        if entry.deadline_ns and start > entry.deadline_ns:
            future.set_exception(TimeoutError("the task's timeout passed while it was queued"))
            self._finish(pool, entry, 0)
            return None
        return start

    def _run(self, pool: _Pool, entry: _Entry) -> None:
        if self._begin(pool, entry) is None:
            return
        # A plain callable runs on this thread from start to end: its CPU time
        # is the service it got.  Wall time would also count the time it waited
        # for the GIL, charging a tenant for other tenants' work.
        cpu0 = _cpu()
        try:
            result = entry.fn(*entry.args, **entry.kwargs)
        except BaseException as exc:
            entry.future.set_exception(exc)
        else:
            entry.future.set_result(result)
        finally:
            self._finish(pool, entry, max(_cpu() - cpu0, 1))

    async def _run_async(self, pool: _Pool, entry: _Entry) -> None:
        start = self._begin(pool, entry)
        if start is None:
            return
        try:
            result = await entry.fn(*entry.args, **entry.kwargs)
        except BaseException as exc:
            entry.future.set_exception(exc)
        else:
            entry.future.set_result(result)
        finally:
            self._finish(pool, entry, self._now() - start)

    def _run_generator(self, pool: _Pool, entry: _Entry) -> Any:
        start = self._begin(pool, entry)
        if start is None:
            return
        try:
            result = yield from entry.fn(*entry.args, **entry.kwargs)
        except BaseException as exc:
            entry.future.set_exception(exc)
        else:
            entry.future.set_result(result)
        finally:
            self._finish(pool, entry, self._now() - start)

    def _finish(self, pool: _Pool, entry: _Entry, cost_ns: int) -> None:
        with self._lock:
            pool.running -= 1
            pool.admitted -= 1
            self._inflight -= 1
            if cost_ns:
                pool.service_ns += cost_ns
                pool.period_ns += cost_ns
                pool.vtime += (cost_ns - entry.cost_ns) / pool.weight
                pool.avg_cost_ns += 0.1 * (cost_ns - pool.avg_cost_ns)
            pool.completed += 1
            self._since_arbitration += 1
            if self._since_arbitration >= self._period:
                self._arbitrate_locked()
            if pool.removing and pool.admitted == 0:
                if not self._closing:  # after shutdown, pools stay for stats()
                    self._pools.pop(pool.spec.name, None)
                pool.drained.set()
            batch = self._dispatch_locked()
        self._start(batch)

    # --- arbitration ------------------------------------------------------------------------

    def _shares_locked(self) -> tuple[dict[str, float], dict[str, float]]:
        active = {n: p for n, p in self._pools.items() if p.queue or p.running or p.period_ns}
        total_weight = sum(p.weight for p in active.values()) or 1.0
        total_service = sum(p.period_ns for p in active.values()) or 1
        fair = {n: p.weight / total_weight for n, p in active.items()}
        measured = {n: p.period_ns / total_service for n, p in active.items()}
        return fair, measured

    def _arbitrate_locked(self) -> None:
        self._since_arbitration = 0
        fair, measured = self._shares_locked()
        backlogged = [p for p in self._pools.values() if p.queue]
        off = any(
            abs(measured[n] - share) > _DEVIATION * share
            for n, share in fair.items()
            if self._pools[n].queue  # only tenants that wanted more can be short-changed
        )
        if off and len(backlogged) > 1:
            self.rearbitrations += 1
            floor = min(p.vtime for p in backlogged)
            for p in backlogged:
                p.vtime = floor
        for p in self._pools.values():
            p.period_ns = 0

    # --- introspection and shutdown ---------------------------------------------------------------

    def stats(self) -> dict[str, TenantStats]:
        """Per-tenant picture (shares are of processor time among tenants with work)."""
        with self._lock:
            fair, _ = self._shares_locked()
            total = sum(p.service_ns for p in self._pools.values()) or 1
            return {
                name: TenantStats(
                    name=name,
                    weight=p.weight,
                    fair_share=fair.get(name, 0.0) * self.capacity,
                    measured_share=(p.service_ns / total) * self.capacity,
                    queued=len(p.queue),
                    running=p.running,
                    completed=p.completed,
                    service_s=p.service_ns / 1e9,
                    refused=dict(p.refused),
                )
                for name, p in self._pools.items()
            }

    def _observe(self) -> Iterable[tuple[Any, dict[str, str], int]]:
        with self._lock:
            lengths = [(n, len(p.queue)) for n, p in self._pools.items()]
        for name, length in lengths:
            yield QUEUE_LENGTH, {SCHEDULER_QUEUE: "work", SCHEDULER_TENANT: name}, length

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Refuse new work (``shutdown``); with ``wait``, return once admitted work finished.

        The tenants' statistics stay readable through :meth:`stats` afterwards.
        """
        with self._lock:
            self._closing = True
            pools = list(self._pools.values())
        if not wait:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        for pool in pools:
            with self._lock:
                pool.removing = True
                if pool.admitted == 0:
                    pool.drained.set()
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not pool.drained.wait(left):
                return False
        return True


_MESSAGES = {
    "quota_exceeded": "admitting this task would pass 95 % of the tenant's hard limit",
    "queue_full": "the tenant's queue is full",
    "shutdown": "the scheduler (or this tenant) no longer accepts work",
}
