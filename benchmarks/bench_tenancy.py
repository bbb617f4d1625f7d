"""Multi-tenant scheduling: fairness, isolation under a flood, and the cost of a refusal.

Run: ``make bench`` (or ``python benchmarks/bench_tenancy.py [--quick]``).  Medians
of several repeats, measured side by side in this run.

Goals (issue #5): service shares within ±5 % of the weights under contention;
gold's p99 schedule latency while bronze floods within 2x of gold's
uncontended p99; the cost of a refusal, first-task latency cold against warm,
and the autoscaler's settling time after a load step (reported).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time

from schedobs.contract import LATENCY_BOUNDARIES_MS, Registry, estimate_quantile
from schedobs.runtime import Autoscaler, GCTuner, RejectedError, Runtime
from schedobs.tenancy import Tenant, TenantScheduler


def spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def fairness_error(seconds: float) -> float:
    """Largest relative deviation of a measured share from its weight (3:2:1)."""
    with Runtime(procs=2, name="fair") as rt:
        ts = TenantScheduler(
            rt,
            [Tenant(n, sla=n, max_running=4) for n in ("gold", "silver", "bronze")],
            instrument=False,
        )
        futures = [
            ts.submit(t, spin, 1.0) for _ in range(4000) for t in ("gold", "silver", "bronze")
        ]
        time.sleep(seconds)
        stats = ts.stats()
        ts.shutdown(wait=False)
        for f in futures:
            f.cancel()
    total = sum(s.service_s for s in stats.values())
    return max(
        abs(stats[n].service_s / total - w / 6) / (w / 6)
        for n, w in (("gold", 3), ("silver", 2), ("bronze", 1))
    )


def gold_p99(flood: bool, probes: int) -> float:
    """Gold's p99 schedule latency (ms, from the scheduler's histogram)."""
    registry = Registry()
    with Runtime(procs=2, name="iso") as rt:
        ts = TenantScheduler(
            rt,
            [Tenant("gold", sla="gold", max_running=2),
             Tenant("bronze", sla="bronze", max_running=2, max_queued=100_000, hard_limit=200_000)],
            registry=registry,
        )  # fmt: skip
        backlog = [ts.submit("bronze", spin, 0.5) for _ in range(20_000)] if flood else []
        for _ in range(probes):
            ts.submit("gold", spin, 0.2).result()
            time.sleep(0.002)
        ts.shutdown(wait=False)
        for f in backlog:
            f.cancel()
    (point,) = [
        p
        for s in registry.collect()
        for p in s.points
        if s.spec.name == "scheduler.schedule.latency"
        and dict(p.attributes).get("scheduler.tenant") == "gold"
    ]
    return estimate_quantile(0.99, LATENCY_BOUNDARIES_MS, point.bucket_counts)  # type: ignore[union-attr]


def refusal_cost_us(n: int) -> float:
    with Runtime(procs=1, name="refuse") as rt:
        ts = TenantScheduler(rt, [Tenant("t", hard_limit=20, max_running=1)], registry=Registry())
        gate = threading.Event()
        ts.submit("t", gate.wait)
        while True:
            try:
                ts.submit("t", int)
            except RejectedError:
                break
        t0 = time.perf_counter()
        for _ in range(n):
            with contextlib.suppress(RejectedError):
                ts.submit("t", int)
        cost = (time.perf_counter() - t0) / n * 1e6
        gate.set()
        ts.shutdown(wait=True)
    return cost


def first_task_ms(warm: bool) -> float:
    """Submit → result of the first task on a fresh runtime (ms)."""
    rt = Runtime(procs=2, name="first", warm_threads=2 if warm else 0)
    try:
        deadline = time.monotonic() + 5
        while warm and len(rt._sched.idle_ms) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.02)  # both runtimes start equally quiet
        t0 = time.perf_counter()
        rt.submit(int).result()
        return (time.perf_counter() - t0) * 1000
    finally:
        rt.shutdown()


def settling_s() -> tuple[float, int, int]:
    """After a load step: seconds until the processor count stops changing, final N, decisions."""
    rt = Runtime(procs=1, name="step")
    scaler = Autoscaler(rt, min_procs=1, max_procs=8, threshold=8, interval=0.05)
    scaler.start()
    stop = threading.Event()

    def feeder() -> None:
        while not stop.is_set():
            if rt.stats().queued_global < 400:
                for _ in range(100):
                    rt.go(spin, 0.1)
            time.sleep(0.002)

    t = threading.Thread(target=feeder)
    step = time.monotonic()
    t.start()
    last_change, last_n = step, rt.procs
    while time.monotonic() - last_change < 1.0 and time.monotonic() - step < 10:
        if rt.procs != last_n:
            last_n, last_change = rt.procs, time.monotonic()
        time.sleep(0.01)
    stop.set()
    t.join()
    scaler.close()
    rt.shutdown()
    return last_change - step, last_n, len(scaler.history)


def _allocate() -> int:
    # A task that allocates like request handling does: short-lived containers.
    rows = [{"id": i, "tags": [i, i + 1]} for i in range(200)]
    return len(rows)


def gc_effect(tuned: bool, n: int) -> tuple[float, float]:
    """(p99 schedule latency ms, tasks/s) of allocation-heavy tasks with a large live heap."""
    import gc

    heap = [{"k": i} for i in range(300_000)]  # long-lived objects the collector walks
    registry = Registry()
    rt = Runtime(procs=2, name="gc", instrument=True, registry=registry)
    tuner = GCTuner(rt, interval=0.05).start() if tuned else None
    before = gc.get_threshold()
    try:
        t0 = time.perf_counter()
        tasks = [rt.go(_allocate) for _ in range(n)]
        for t in tasks:
            t.join()
        rate = n / (time.perf_counter() - t0)
        latency = rt.stats().latency
    finally:
        if tuner is not None:
            tuner.close()
        rt.shutdown()
        gc.set_threshold(*before)
    del heap
    counts = [sum(v) for v in zip(*(lc.bucket_counts for lc in latency.values()), strict=True)]
    return estimate_quantile(0.99, LATENCY_BOUNDARIES_MS, counts), rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats, seconds, probes = (1, 0.5, 20) if args.quick else (5, 1.5, 100)
    fair = statistics.median(fairness_error(seconds) for _ in range(repeats))
    quiet = statistics.median(gold_p99(False, probes) for _ in range(repeats))
    loud = statistics.median(gold_p99(True, probes) for _ in range(repeats))
    refusal = statistics.median(refusal_cost_us(20_000) for _ in range(repeats))
    cold = statistics.median(first_task_ms(False) for _ in range(repeats * 4))
    warm = statistics.median(first_task_ms(True) for _ in range(repeats * 4))
    settle, final_n, decisions = settling_s()
    gc_n = 20_000 if args.quick else 100_000
    off = [gc_effect(False, gc_n) for _ in range(repeats)]
    on = [gc_effect(True, gc_n) for _ in range(repeats)]
    p99_off, rate_off = statistics.median(x[0] for x in off), statistics.median(x[1] for x in off)
    p99_on, rate_on = statistics.median(x[0] for x in on), statistics.median(x[1] for x in on)
    print(f"python {sys.version.split()[0]}; medians of {repeats} repeats\n")
    rows = [
        ("fairness error (max |share - weight| / weight)", f"{100 * fair:.1f} %", "<= 5 %",
         fair <= 0.05),
        ("gold p99 schedule latency, uncontended", f"{quiet:.3f} ms", "-", True),
        ("gold p99 schedule latency, bronze flooding", f"{loud:.3f} ms", "-", True),
        ("gold p99 ratio flood / uncontended", f"{loud / quiet:.2f}x", "<= 2x", loud / quiet <= 2),
        ("cost of a refusal (submit raising RejectedError)", f"{refusal:.2f} µs", "-", True),
        ("first task, cold runtime (thread start)", f"{cold:.3f} ms", "-", True),
        ("first task, warm pool of Ms", f"{warm:.3f} ms", "-", True),
        ("autoscaler settling after a step", f"{settle:.2f} s", "-", True),
        ("  processors after the step / decisions", f"{final_n} / {decisions}", "-", True),
        ("GC tuner off: p99 latency / throughput", f"{p99_off:.2f} ms / {rate_off:,.0f}/s", "-",
         True),
        ("GC tuner on:  p99 latency / throughput", f"{p99_on:.2f} ms / {rate_on:,.0f}/s", "-",
         True),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for label, value, goal, ok in rows:
        verdict = "" if goal == "-" else ("meets" if ok else "MISSES")
        print(f"  {label:<{width}}  {value:>24}  goal {goal:<7} {verdict}")
    helps = p99_on < 0.9 * p99_off or rate_on > 1.1 * rate_off
    print(
        "\n  GC tuner: "
        + ("helps on this workload" if helps else "no clear help on this workload")
        + " (it stays off unless started)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
