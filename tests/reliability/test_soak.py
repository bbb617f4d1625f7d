"""Soak: a million tasks through an instrumented runtime under concurrent scrapes and exports.

Run by ``make soak`` (marked ``slow``).  Resident memory must stop growing, and the exported
counts must equal the tasks run and refused.
"""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from schedobs.contract import Registry
from schedobs.export import configure
from schedobs.runtime import RejectedError, Runtime
from schedobs.testing import GrpcOtlpReceiver, latest_points

pytestmark = pytest.mark.slow

TASKS = 1_000_000


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def test_a_million_tasks_with_scrapes_and_exports(registry: Registry) -> None:
    with GrpcOtlpReceiver() as receiver:
        telemetry = configure(
            "soak",
            otlp_endpoint=receiver.endpoint,
            export_interval=1.0,
            prometheus="127.0.0.1:0",
            registry=registry,
            set_global=False,
        )
        rt = Runtime(procs=2, name="soak", instrument=True, registry=registry, max_queued=500)
        stop = threading.Event()
        scrapes = [0]

        def scrape() -> None:
            while not stop.is_set():
                with urllib.request.urlopen(telemetry.prometheus_url or "", timeout=10) as r:
                    r.read()
                scrapes[0] += 1
                stop.wait(0.1)

        scraper = threading.Thread(target=scrape)
        scraper.start()
        accepted = refused = 0
        rss: list[float] = []
        t0 = time.monotonic()
        for i in range(TASKS):
            try:
                rt.go(int)
                accepted += 1
            except RejectedError:
                refused += 1
                time.sleep(0)  # let the Ms catch up
            if i % (TASKS // 8) == 0:
                rss.append(_rss_mb())
        rt.shutdown(wait=True)
        elapsed = time.monotonic() - t0
        rss.append(_rss_mb())
        stop.set()
        scraper.join()
        assert telemetry.force_flush(timeout=10)
        receiver.wait_for(lambda r: len(r.metrics_requests) >= 2)
        telemetry.shutdown(timeout=10)

    points = latest_points(receiver.metrics_requests)
    completed = sum(p.value for (n, _), p in points.items() if n == "scheduler.completed_tasks")
    refusals = {
        dict(a).get("error.type"): p.value
        for (n, a), p in points.items()
        if n == "scheduler.rejected_tasks"
    }
    latency = sum(p.value for (n, _), p in points.items() if n == "scheduler.schedule.latency")
    print(
        f"\nsoak: {TASKS} tasks in {elapsed:.1f} s ({TASKS / elapsed:,.0f}/s), {accepted} run, "
        f"{refused} refused, {scrapes[0]} scrapes, {len(receiver.metrics_requests)} exports, "
        f"RSS MB by eighth: {[round(x) for x in rss]}"
    )
    assert accepted + refused == TASKS
    assert completed == accepted  # exact: every task counted once
    assert latency == accepted
    assert refusals.get("queue_full", 0) == refused
    assert scrapes[0] > 5
    # Memory stops growing: after the first eighth, no more than 30 MB of drift.
    assert max(rss[2:]) - rss[1] < 30, rss
