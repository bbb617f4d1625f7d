"""An application run under ``opentelemetry-instrument`` with its wall clock off
(libfaketime): schedobs corrects the timestamps the command's own exporters send
(tests/export/test_instrument_command.py)."""

from __future__ import annotations

import select
import sys
import time

from opentelemetry import metrics, trace

from schedobs.contract import SchedulerMetrics
from schedobs.export import ClockCompensation, attach_clock, attach_to_provider


def _settled(clock: ClockCompensation) -> bool:
    estimate = clock.estimator.estimate()
    return estimate is not None and estimate.samples >= 8


def main() -> None:
    clock = attach_clock(ClockCompensation.create(sys.argv[1], interval=0.2))
    again = attach_clock(clock)  # wraps nothing twice
    attach_to_provider()
    deadline = time.monotonic() + 30
    while not _settled(clock):
        if time.monotonic() > deadline:
            raise SystemExit("no settled clock estimate in 30 s")
        select.select([], [], [], 0.05)  # time.sleep() misbehaves under libfaketime
    estimate = clock.estimator.estimate()
    assert estimate is not None and again is clock
    tracer = trace.get_tracer("app")
    # The span's start and the skewed wall reading lie between two monotonic
    # readings: the test maps both to true time. (Adjacent reads are not enough:
    # another thread may take the GIL between them, for 5 ms at a time.)
    before = time.monotonic_ns()
    wall = time.time_ns()
    with tracer.start_as_current_span("request"):
        after = time.monotonic_ns()
        SchedulerMetrics("clocked", kind="custom").latency(queue="work").observe(3.0)
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    print(
        f"START before={before} after={after} wall={wall} sigma={estimate.uncertainty_ns}",
        flush=True,
    )
    print(f"FLUSH mono={time.monotonic_ns()}", flush=True)
    metrics.get_meter_provider().force_flush()  # type: ignore[attr-defined]
    clock.close()


if __name__ == "__main__":
    main()
