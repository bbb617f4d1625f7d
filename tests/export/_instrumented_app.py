"""An application run under ``opentelemetry-instrument``: schedobs joins the SDK the
command configured instead of building its own (tests/export/test_instrument_command.py)."""

from __future__ import annotations

import sys

from opentelemetry import metrics, trace

from schedobs.contract import SchedulerMetrics
from schedobs.export import attach_to_provider


def main() -> None:
    readers = attach_to_provider()
    again = attach_to_provider()  # a second call must not attach twice
    work = SchedulerMetrics("instrumented", kind="custom")
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("request"):
        work.latency(queue="work").observe(12.0)
    work.reject("queue_full")
    provider = metrics.get_meter_provider()
    provider.force_flush()  # type: ignore[attr-defined]
    print(f"READERS {len(readers)} AGAIN {len(again)}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
