"""The GMP runtime against ThreadPoolExecutor and asyncio, side by side in one run.

Run: ``make bench`` (or ``python benchmarks/bench_runtime.py [--quick]``).

Every figure is the median of several repeats taken in this run, and every
ratio compares figures from this run only.  The machine is shared and noisy:
read the medians and ratios, not single runs.

Goals (issues #3 and #10), on a 2-core machine:
  submit+result of trivial callables   >= 3x ThreadPoolExecutor(2), >= 2x asyncio
  go + join of trivial tasks           >= 4x asyncio create_task + gather, for plain,
                                       generator and coroutine tasks alike
  cooperative switches (10 per task)   >= 3x asyncio sleep(0), generators and coroutines
  instrumentation on vs off            <= 10 % throughput lost
  idle runtime                         < 1 % of a core
  blocking calls beside CPU tasks      close to the ideal overlap
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from schedobs.contract import Registry
from schedobs.runtime import Runtime, blocking, gosched


def _trivial() -> int:
    return 1


async def _atrivial() -> int:
    return 1


def _gtrivial():  # type: ignore[no-untyped-def]
    # A generator function that returns at once (the yield is never reached).
    yield from ()
    return 1


def _median(fn: Callable[[], float], repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(repeats))


# --- 1. submit + result ---------------------------------------------------------


def tpe_submit(n: int) -> float:
    with ThreadPoolExecutor(max_workers=2) as pool:
        t0 = time.perf_counter()
        futures = [pool.submit(_trivial) for _ in range(n)]
        for f in futures:
            f.result()
        return n / (time.perf_counter() - t0)


def asyncio_gather(n: int) -> float:
    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*[asyncio.create_task(_atrivial()) for _ in range(n)])
        return n / (time.perf_counter() - t0)

    return asyncio.run(main())


def rt_submit(n: int, rt: Runtime) -> float:
    t0 = time.perf_counter()
    futures = [rt.submit(_trivial) for _ in range(n)]
    for f in futures:
        f.result()
    return n / (time.perf_counter() - t0)


# --- 2. go + wait ------------------------------------------------------------------


def rt_go(n: int, rt: Runtime, fn: Callable[[], object] = _trivial) -> float:
    t0 = time.perf_counter()
    tasks = [rt.go(fn) for _ in range(n)]
    for t in tasks:
        t.join()
    return n / (time.perf_counter() - t0)


def _work20() -> None:
    end = time.perf_counter_ns() + 20_000
    while time.perf_counter_ns() < end:
        pass


def rt_go_work(n: int, rt: Runtime) -> float:
    t0 = time.perf_counter()
    tasks = [rt.go(_work20) for _ in range(n)]
    for t in tasks:
        t.join()
    return n / (time.perf_counter() - t0)


# --- 3. cooperative switches ----------------------------------------------------------

SWITCHES = 10


def asyncio_switches(tasks: int) -> float:
    async def worker() -> None:
        for _ in range(SWITCHES):
            await asyncio.sleep(0)

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*[asyncio.create_task(worker()) for _ in range(tasks)])
        return tasks * SWITCHES / (time.perf_counter() - t0)

    return asyncio.run(main())


def _gen_worker():  # type: ignore[no-untyped-def]
    for _ in range(SWITCHES):
        yield


async def _coro_worker() -> None:
    for _ in range(SWITCHES):
        await gosched()


def rt_switches(tasks: int, rt: Runtime, fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    handles = [rt.go(fn) for _ in range(tasks)]
    for h in handles:
        h.join()
    return tasks * SWITCHES / (time.perf_counter() - t0)


# --- 5. idle CPU --------------------------------------------------------------------------


def idle_cpu_percent(seconds: float) -> float:
    rt = Runtime(name="idle")
    try:
        rt.submit(_trivial).result()
        time.sleep(0.2)  # let the monitor back off and the Ms park
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        time.sleep(seconds)
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - t0
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        return 100.0 * cpu / wall
    finally:
        rt.shutdown()


# --- 6. blocking calls beside CPU work ---------------------------------------------------------


def _spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass


async def _blocker() -> None:
    await blocking(time.sleep, 0.01)


def overlap(cpu_tasks: int, cpu_ms: float, blockers: int) -> tuple[float, float]:
    """(measured seconds, ideal seconds) for CPU tasks plus 10 ms blocking calls."""
    rt = Runtime(name="overlap")
    try:
        t0 = time.perf_counter()
        handles = [rt.go(_blocker) for _ in range(blockers)]
        handles += [rt.go(_spin, cpu_ms) for _ in range(cpu_tasks)]
        for h in handles:
            h.join()
        measured = time.perf_counter() - t0
    finally:
        rt.shutdown()
    # The GIL serialises the CPU work; the sleeps can all overlap with it.
    ideal = max(cpu_tasks * cpu_ms / 1000.0, 0.01)
    return measured, ideal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GMP runtime benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    n, repeats, switch_tasks = (20_000, 3, 2_000) if args.quick else (200_000, 5, 20_000)
    rows: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    print(f"python {sys.version.split()[0]}; {n} tasks; medians of {repeats} repeats\n")

    rt = Runtime(name="bench")
    try:
        tpe = _median(lambda: tpe_submit(n), repeats)
        aio = _median(lambda: asyncio_gather(n), repeats)
        sub = _median(lambda: rt_submit(n, rt), repeats)
        gow = _median(lambda: rt_go(n, rt), repeats)
        gow_gen = _median(lambda: rt_go(n, rt, _gtrivial), repeats)
        gow_coro = _median(lambda: rt_go(n, rt, _atrivial), repeats)
        aio_sw = _median(lambda: asyncio_switches(switch_tasks), repeats)
        gen_sw = _median(lambda: rt_switches(switch_tasks, rt, _gen_worker), repeats)
        coro_sw = _median(lambda: rt_switches(switch_tasks, rt, _coro_worker), repeats)
    finally:
        rt.shutdown()

    inst = Runtime(name="bench-instrumented", instrument=True, registry=Registry())
    plain = Runtime(name="bench-plain")
    try:
        on = _median(lambda: rt_go(n, inst), repeats)
        off = _median(lambda: rt_go(n, plain), repeats)
        # The same with tasks that do 20 µs of work, closer to real use.
        n20 = n // 10
        on20 = _median(lambda: rt_go_work(n20, inst), repeats)
        off20 = _median(lambda: rt_go_work(n20, plain), repeats)
    finally:
        inst.shutdown()
        plain.shutdown()

    print("throughput (tasks/s or switches/s)")
    for name, value in (
        ("ThreadPoolExecutor(2) submit+result", tpe),
        ("asyncio create_task+gather", aio),
        ("Runtime submit+result", sub),
        ("Runtime go+join", gow),
        ("Runtime go+join, generator tasks", gow_gen),
        ("Runtime go+join, coroutine tasks", gow_coro),
        ("asyncio sleep(0) switches", aio_sw),
        ("Runtime generator yields", gen_sw),
        ("Runtime coroutine gosched()", coro_sw),
        ("Runtime go+join, instrumented", on),
        ("Runtime go+join, not instrumented", off),
        ("Runtime 20 µs tasks, instrumented", on20),
        ("Runtime 20 µs tasks, not instrumented", off20),
    ):
        print(f"  {name:<38} {value:>12,.0f}")

    rows.append(
        (
            "submit+result vs ThreadPoolExecutor(2)",
            f"{sub / tpe:.2f}x",
            ">= 3x",
            verdict(sub / tpe >= 3),
        )
    )
    rows.append(
        ("submit+result vs asyncio gather", f"{sub / aio:.2f}x", ">= 2x", verdict(sub / aio >= 2))
    )
    for label, value in (
        ("go+join vs asyncio gather", gow),
        ("go+join generator tasks vs asyncio", gow_gen),
        ("go+join coroutine tasks vs asyncio", gow_coro),
    ):
        rows.append((label, f"{value / aio:.2f}x", ">= 4x", verdict(value / aio >= 4)))
    rows.append(
        (
            "generator switches vs asyncio sleep(0)",
            f"{gen_sw / aio_sw:.2f}x",
            ">= 3x",
            verdict(gen_sw / aio_sw >= 3),
        )
    )
    rows.append(
        (
            "coroutine switches vs asyncio sleep(0)",
            f"{coro_sw / aio_sw:.2f}x",
            ">= 3x",
            verdict(coro_sw / aio_sw >= 3),
        )
    )
    loss = 100.0 * (1 - on / off)
    rows.append(("instrumentation cost (go+join)", f"{loss:.1f} %", "<= 10 %", verdict(loss <= 10)))
    loss20 = 100.0 * (1 - on20 / off20)
    rows.append(
        ("instrumentation cost (20 µs tasks)", f"{loss20:.1f} %", "<= 10 %", verdict(loss20 <= 10))
    )

    idle = idle_cpu_percent(1.0 if args.quick else 3.0)
    rows.append(("idle runtime CPU", f"{idle:.2f} % of a core", "< 1 %", verdict(idle < 1)))

    measured, ideal = overlap(cpu_tasks=100, cpu_ms=2.0, blockers=100)
    ratio = measured / ideal
    rows.append(
        (
            "100 x 10 ms blocking + 100 x 2 ms CPU",
            f"{measured * 1000:.0f} ms, {ratio:.2f}x ideal ({ideal * 1000:.0f} ms)",
            "close to 1x",
            verdict(ratio <= 1.5),
        )
    )  # fmt: skip

    print("\nratios against the goals")
    width = max(len(r[0]) for r in rows)
    for label, shown, goal, outcome in rows:
        print(f"  {label:<{width}}  {shown:>34}  goal {goal:<12} {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
