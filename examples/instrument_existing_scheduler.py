"""Instrument a scheduler you already have: a work queue drained by worker threads.

Run: ``python examples/instrument_existing_scheduler.py`` and scrape the URL it prints
first; it stays up ``--hold`` seconds (30) after its work for that (``--hold 0`` does not
wait; ``--prometheus 127.0.0.1:0`` picks a free port).  The lines marked ``# schedobs``
are all it takes.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import threading
import time

import schedobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prometheus", default="127.0.0.1:9464")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to stay up after")
    args = parser.parse_args()

    telemetry = schedobs.configure("example-service", prometheus=args.prometheus)  # schedobs
    print(
        f"scrape {telemetry.prometheus_url} (up until {args.hold:g} s after the work)", flush=True
    )
    metrics = schedobs.SchedulerMetrics("jobs", kind="custom")  # schedobs
    latency = metrics.latency(queue="work")  # schedobs

    work: queue.Queue[tuple[float, int] | None] = queue.Queue(maxsize=1000)
    metrics.queue_length_callback(work.qsize, queue="work")  # schedobs

    def worker() -> None:
        while (item := work.get()) is not None:
            enqueued, _payload = item
            latency.observe((time.perf_counter() - enqueued) * 1000)  # schedobs
            # ... the real work on _payload goes here ...

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    refused = 0
    for i in range(args.tasks):
        try:
            work.put_nowait((time.perf_counter(), i))
        except queue.Full:
            metrics.reject("queue_full")  # schedobs
            refused += 1
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()

    print(f"{args.tasks - refused} ran, {refused} refused", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the wait
        time.sleep(args.hold)  # time to scrape the final figures
    telemetry.shutdown(timeout=5)  # schedobs


if __name__ == "__main__":
    main()
