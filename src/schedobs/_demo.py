"""``schedobs demo``: a small instrumented scheduler under a multi-tenant load.

Until the built-in GMP runtime exists, the demo drives a plain worker pool
(a bounded work queue and worker threads) that records all three contract
metrics, serves them on the Prometheus endpoint, optionally exports OTLP, and
prints a live view.  At the end it checks its own endpoint against the
contract and prints the totals, so that one run shows the whole pipeline.
"""

from __future__ import annotations

import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from schedobs.check import check_prometheus_endpoint
from schedobs.contract import (
    LATENCY_BOUNDARIES_MS,
    HistogramPoint,
    Registry,
    SchedulerMetrics,
    estimate_quantile,
)
from schedobs.export import configure

__all__ = ["DemoOptions", "WorkerPool", "run_demo"]


class WorkerPool:
    """A minimal thread-pool scheduler instrumented with the contract.

    Tasks wait in one bounded FIFO (``scheduler.queue=work``); a full queue
    refuses with ``queue_full``, a closed pool with ``shutdown``.  Latency is
    enqueue → start, per tenant.  ``close()`` drains: every accepted task runs.
    """

    def __init__(self, metrics: SchedulerMetrics, workers: int = 4, capacity: int = 256) -> None:
        self.metrics = metrics
        self._queue: queue.Queue[tuple[float, str, Callable[[], object]] | None] = queue.Queue(
            maxsize=capacity
        )
        self._closed = False
        self._lock = threading.Lock()
        self.completed = 0
        metrics.queue_length_callback(self._queue.qsize, queue="work")
        self._workers = [
            threading.Thread(target=self._work, name=f"demo-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, fn: Callable[[], object], tenant: str) -> bool:
        """Queue ``fn``; ``False`` (and a counted rejection) if it was refused."""
        if self._closed:
            self.metrics.reject("shutdown", tenant=tenant)
            return False
        try:
            self._queue.put_nowait((time.perf_counter(), tenant, fn))
        except queue.Full:
            self.metrics.reject("queue_full", tenant=tenant)
            return False
        return True

    def _work(self) -> None:
        latency = self.metrics.observe_latency
        while True:
            item = self._queue.get()
            if item is None:
                return
            enqueued, tenant, fn = item
            latency((time.perf_counter() - enqueued) * 1000.0, queue="work", tenant=tenant)
            try:
                fn()
            finally:
                with self._lock:
                    self.completed += 1

    def close(self) -> None:
        """Refuse new work, run everything already queued, stop the workers."""
        self._closed = True
        for _ in self._workers:
            self._queue.put(None)  # FIFO: the sentinels come after the queued tasks
        for worker in self._workers:
            worker.join()


@dataclass
class DemoOptions:
    """Settings of one demo run."""

    duration: float = 30.0
    prometheus: str | None = "127.0.0.1:9464"
    otlp_endpoint: str | None = None
    otlp_protocol: str | None = None
    headless: bool = False
    seed: int = 1


#: Tenants with their steady arrival rate (tasks/s) and work per task (ms).
_TENANTS = {"gold": (150.0, 2.0), "silver": (250.0, 2.0), "bronze": (350.0, 3.0)}
_BURST_EVERY_S = 5.0
_BURST_SIZE = 600


def _task(work_ms: float) -> Callable[[], object]:
    return lambda: time.sleep(work_ms / 1000.0)


def _load(
    pool: WorkerPool, stop: threading.Event, rng: random.Random, counts: dict[str, int]
) -> None:
    """Poisson-ish arrivals in 10 ms ticks, plus a bronze burst every few seconds."""
    tick = 0.01
    next_burst = time.monotonic() + _BURST_EVERY_S
    while not stop.wait(tick):
        for tenant, (rate, work_ms) in _TENANTS.items():
            arrivals = int(rate * tick + rng.random())
            for _ in range(arrivals):
                counts[tenant] += 1
                pool.submit(_task(work_ms * rng.random() * 2), tenant)
        if time.monotonic() >= next_burst:
            next_burst += _BURST_EVERY_S
            for _ in range(_BURST_SIZE):
                counts["bronze"] += 1
                pool.submit(_task(0.0), "bronze")


def _view(metrics: SchedulerMetrics, pool: WorkerPool, elapsed: float) -> str:
    lines = [f"schedobs demo — {elapsed:5.1f} s — completed {pool.completed}"]
    lines.append(f"  {'tenant':<8} {'tasks':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    rejected: dict[str, int] = {}
    queue_len = 0
    for spec, point in metrics.collect():
        attrs = point.attributes
        if isinstance(point, HistogramPoint):
            q = [
                estimate_quantile(x, LATENCY_BOUNDARIES_MS, point.bucket_counts)
                for x in (0.5, 0.9, 0.99)
            ]
            lines.append(
                f"  {attrs.get('scheduler.tenant', '-'):<8} {point.count:>8} "
                f"{q[0]:>8.3f} {q[1]:>8.3f} {q[2]:>8.3f}"
            )
        elif spec.name == "scheduler.rejected_tasks":
            reason = attrs["error.type"]
            rejected[reason] = rejected.get(reason, 0) + int(getattr(point, "value", 0))
        elif spec.name == "scheduler.queue.length":
            queue_len = int(getattr(point, "value", 0))
    lines.append(f"  queue length (work): {queue_len}")
    lines.append(
        "  refused: " + (", ".join(f"{k}={v}" for k, v in sorted(rejected.items())) or "none")
    )
    return "\n".join(lines)


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the process exit code (0: the endpoint conforms)."""
    registry = Registry()
    telemetry = configure(
        "schedobs-demo",
        zone="local",
        prometheus=options.prometheus,
        otlp_endpoint=options.otlp_endpoint,
        otlp_protocol=options.otlp_protocol,
        export_interval=5.0,
        registry=registry,
        set_global=False,
    )
    metrics = SchedulerMetrics("demo-pool", kind="custom", registry=registry)
    pool = WorkerPool(metrics, workers=4, capacity=256)
    stop = threading.Event()
    submitted = dict.fromkeys(_TENANTS, 0)
    loader = threading.Thread(
        target=_load, args=(pool, stop, random.Random(options.seed), submitted), daemon=True
    )
    print(f"Prometheus endpoint: {telemetry.prometheus_url or 'disabled'}", file=out)
    if telemetry.settings.otlp_enabled:
        print(f"OTLP export: {options.otlp_endpoint or 'from OTEL_* environment'}", file=out)
    started = time.monotonic()
    loader.start()
    interactive = not options.headless and out.isatty()
    try:
        while options.duration <= 0 or time.monotonic() - started < options.duration:
            if stop.wait(1.0):
                break
            if not options.headless:
                view = _view(metrics, pool, time.monotonic() - started)
                print(("\x1b[2J\x1b[H" if interactive else "") + view, file=out, flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; draining", file=out)
    stop.set()
    loader.join()
    pool.close()

    print(_view(metrics, pool, time.monotonic() - started), file=out)
    total = sum(submitted.values())
    refused = sum(
        int(getattr(p, "value", 0))
        for s, p in metrics.collect()
        if s.name == "scheduler.rejected_tasks"
    )
    print(
        f"submitted {total} = completed {pool.completed} + refused {refused}: "
        f"{'exact' if total == pool.completed + refused else 'MISMATCH'}",
        file=out,
    )
    code = 0 if total == pool.completed + refused else 1
    if telemetry.prometheus_url is not None:
        report = check_prometheus_endpoint(telemetry.prometheus_url, strict=True)
        print(report.render_text(), file=out)
        code = code or (0 if report.ok else 1)
    flushed = telemetry.shutdown(timeout=5.0)
    if not flushed:
        print("telemetry shutdown did not finish within 5 s (see log)", file=out)
    return code
