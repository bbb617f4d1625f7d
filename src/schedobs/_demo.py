"""``schedobs demo``: the GMP runtime under a multi-tenant load, observed live.

A :class:`~schedobs.runtime.Runtime` (instrumented) runs a
:class:`~schedobs.tenancy.TenantScheduler` with three tenants — gold, silver
and bronze — whose tasks mix CPU work and blocking calls; bronze sends a burst
every few seconds that runs into its quota and is refused.  The contract is
served on the Prometheus endpoint (and sent over OTLP if asked), and a live
view shows queue lengths, latency percentiles per tenant, refusals by reason,
processors and threads, and the clock offset.  At the end the demo checks its
own endpoint against the contract and prints the totals.
"""

from __future__ import annotations

import random
import signal as _signal
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TextIO

from schedobs.check import check_prometheus_endpoint
from schedobs.contract import (
    LATENCY_BOUNDARIES_MS,
    HistogramPoint,
    Registry,
    estimate_quantile,
)
from schedobs.export import configure
from schedobs.runtime import RejectedError, Runtime, blocking
from schedobs.tenancy import Tenant, TenantScheduler

__all__ = ["DemoOptions", "run_demo"]


@dataclass
class DemoOptions:
    """Settings of one demo run."""

    duration: float = 30.0
    prometheus: str | None = "127.0.0.1:9464"
    otlp_endpoint: str | None = None
    otlp_protocol: str | None = None
    clock_reference: str | None = None
    headless: bool = False
    seed: int = 1


#: Tenants: SLA, steady arrivals per second, CPU ms and blocking ms per task.
_LOAD = {"gold": (120.0, 0.3, 1.0), "silver": (180.0, 0.3, 1.0), "bronze": (250.0, 0.5, 2.0)}
_BURST_EVERY_S = 5.0
_BURST_SIZE = 800


def _spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass


async def _request(cpu_ms: float, io_ms: float) -> None:
    _spin(cpu_ms)
    await blocking(time.sleep, io_ms / 1000.0)  # the P is handed off if it lasts


class _Load:
    def __init__(self, ts: TenantScheduler, rng: random.Random) -> None:
        self.ts = ts
        self.rng = rng
        self.stop = threading.Event()
        self.submitted = dict.fromkeys(_LOAD, 0)
        self.refused = dict.fromkeys(_LOAD, 0)
        self.accepted: list[Future[Any]] = []

    def _submit(self, tenant: str, cpu_ms: float, io_ms: float) -> None:
        self.submitted[tenant] += 1
        try:
            self.accepted.append(self.ts.submit(tenant, _request, cpu_ms, io_ms))
        except RejectedError:
            self.refused[tenant] += 1

    def run(self) -> None:
        tick = 0.01
        next_burst = time.monotonic() + _BURST_EVERY_S
        while not self.stop.wait(tick):
            for tenant, (rate, cpu_ms, io_ms) in _LOAD.items():
                for _ in range(int(rate * tick + self.rng.random())):
                    self._submit(tenant, cpu_ms * self.rng.uniform(0.5, 1.5), io_ms)
            if time.monotonic() >= next_burst:
                next_burst += _BURST_EVERY_S
                for _ in range(_BURST_SIZE):
                    self._submit("bronze", 0.1, 0.5)
            if len(self.accepted) > 50_000:  # keep memory flat on long runs
                self.accepted = [f for f in self.accepted if not f.done()]


def _view(registry: Registry, rt: Runtime, telemetry: Any, elapsed: float) -> str:
    stats = rt.stats()
    lines = [
        f"schedobs demo: {elapsed:5.1f} s | processors {stats.processors} "
        f"(idle {stats.processors_idle}) | threads running {stats.threads_running}, "
        f"syscall {stats.threads_syscall}, idle {stats.threads_idle} | completed {stats.completed}",
        f"  runtime queues: global {stats.queued_global}, local {stats.queued_local}",
        f"  {'tenant':<8} {'queued':>7} {'tasks':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}",
    ]
    refused: dict[str, int] = {}
    queued: dict[str, int] = {}
    rows = []
    for snap in registry.collect():
        for point in snap.points:
            attrs = point.attributes
            tenant = attrs.get("scheduler.tenant")
            if snap.spec.name == "scheduler.rejected_tasks":
                reason = attrs["error.type"]
                refused[reason] = refused.get(reason, 0) + int(getattr(point, "value", 0))
            elif snap.spec.name == "scheduler.queue.length" and tenant:
                queued[tenant] = int(getattr(point, "value", 0))
            elif isinstance(point, HistogramPoint) and tenant:
                q = [
                    estimate_quantile(x, LATENCY_BOUNDARIES_MS, point.bucket_counts)
                    for x in (0.5, 0.9, 0.99)
                ]
                rows.append((tenant, point.count, q))
    for tenant, count, q in sorted(rows):
        waiting = queued.get(tenant, 0)
        lines.append(
            f"  {tenant:<8} {waiting:>7} {count:>8} {q[0]:>8.3f} {q[1]:>8.3f} {q[2]:>8.3f}"
        )
    shown = ", ".join(f"{k}={v}" for k, v in sorted(refused.items()) if v) or "none"
    lines.append(f"  refused: {shown}")
    clock = telemetry.clock
    estimate = clock.estimator.estimate() if clock is not None else None
    lines.append(
        "  clock offset: "
        + (
            f"{estimate.offset_ns / 1e6:+.3f} ms ± {estimate.uncertainty_ns / 1e3:.1f} µs"
            if estimate is not None
            else "not configured (--clock-reference host:port)"
        )
    )
    return "\n".join(lines)


class _Screen:
    """A live view redrawn in place, as ``top`` does: the terminal's alternate screen,
    the cursor sent home and every line overwritten each second, the terminal as
    it was when the view closes (the final summary is then printed normally)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._open = True
        out.write("\x1b[?1049h\x1b[?25l")  # alternate screen, cursor hidden
        out.flush()

    def draw(self, view: str) -> None:
        # Home, each line cleared to its end, then everything below: no scrolling.
        body = "\x1b[K\n".join(view.splitlines())
        self._out.write(f"\x1b[H{body}\x1b[K\n\x1b[J")
        self._out.flush()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._out.write("\x1b[?25h\x1b[?1049l")  # cursor shown, main screen back
            self._out.flush()


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop the load and drain, as on Ctrl-C (hence the base class)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the process exit code (0: exact totals, conforming endpoint)."""
    registry = Registry()
    telemetry = configure(
        "schedobs-demo",
        zone="local",
        prometheus=options.prometheus,
        otlp_endpoint=options.otlp_endpoint,
        otlp_protocol=options.otlp_protocol,
        export_interval=5.0,
        registry=registry,
        clock=options.clock_reference,
        set_global=False,
    )
    rt = Runtime(procs=2, name="demo", instrument=True, registry=registry)
    ts = TenantScheduler(
        rt,
        [
            Tenant("gold", sla="gold", max_running=2),
            Tenant("silver", sla="silver", max_running=2),
            Tenant("bronze", sla="bronze", max_running=2, max_queued=400, hard_limit=600),
        ],
        registry=registry,
    )
    load = _Load(ts, random.Random(options.seed))
    loader = threading.Thread(target=load.run, name="demo-load", daemon=True)
    print(f"Prometheus endpoint: {telemetry.prometheus_url or 'disabled'}", file=out)
    for name in ("traces", "metrics"):
        signal = telemetry.settings.signal(name)
        if signal is not None:
            print(f"OTLP {name}: {signal.endpoint} ({signal.protocol}, from {signal.source})",
                  file=out)  # fmt: skip
    started = time.monotonic()
    loader.start()
    screen = _Screen(out) if not options.headless and out.isatty() else None
    # SIGTERM (docker stop, systemd, kill) drains like Ctrl-C; a second one, during the
    # drain, ends the process at once (the handler is back to the default by then).
    in_main = threading.current_thread() is threading.main_thread()
    previous = _signal.signal(_signal.SIGTERM, _terminate) if in_main else None
    try:
        while options.duration <= 0 or time.monotonic() - started < options.duration:
            time.sleep(1.0)
            if not options.headless:
                view = _view(registry, rt, telemetry, time.monotonic() - started)
                if screen is not None:
                    screen.draw(view)
                else:
                    print(view, file=out, flush=True)
    except (KeyboardInterrupt, _Terminated) as stop:
        if screen is not None:
            screen.close()
        why = "terminated (SIGTERM)" if isinstance(stop, _Terminated) else "interrupted"
        print(f"\n{why}; draining", file=out, flush=True)
    finally:
        if in_main:
            _signal.signal(_signal.SIGTERM, previous)
        if screen is not None:
            screen.close()
    load.stop.set()
    loader.join()
    drained = ts.shutdown(wait=True, timeout=30)
    print(_view(registry, rt, telemetry, time.monotonic() - started), file=out)
    submitted = sum(load.submitted.values())
    refused = sum(load.refused.values())
    done = sum(1 for f in load.accepted if f.done())
    completed = submitted - refused
    exact = drained and done == len(load.accepted)
    print(
        f"submitted {submitted} = ran {completed} + refused {refused}: "
        f"{'exact' if exact else 'MISMATCH'}",
        file=out,
    )
    code = 0 if exact else 1
    if telemetry.prometheus_url is not None:
        report = check_prometheus_endpoint(telemetry.prometheus_url, strict=True)
        print(report.render_text(), file=out)
        code = code or (0 if report.ok else 1)
    rt.shutdown(wait=True)
    if not telemetry.shutdown(timeout=5.0):
        print("telemetry shutdown did not finish within 5 s (see log)", file=out)
    return code
