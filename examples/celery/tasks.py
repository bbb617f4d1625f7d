"""The example's Celery application: two queues, schedobs on producers and workers alike.

Configured from the environment so that the same module serves every process:

- ``SCHEDOBS_BROKER``: the Redis broker, also the reference clock
  (default ``redis://127.0.0.1:6379/0``);
- ``SCHEDOBS_ZONE``: this process's zone (the ``cloud.availability_zone`` resource);
- ``SCHEDOBS_PROMETHEUS``: ``host:port`` of this process's scrape endpoint (unset: none);
- ``SCHEDOBS_TIMINGS``: a file that gets one JSON line per task started (workers);
- the standard ``OTEL_*`` variables, for an OTLP collector.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time

from celery import Celery

import schedobs
from schedobs.adapters import CeleryInstrumentation, TaskTiming

BROKER = os.environ.get("SCHEDOBS_BROKER", "redis://127.0.0.1:6379/0")

app = Celery("shop", broker=BROKER)
app.conf.update(
    task_routes={
        "tasks.send_email": {"queue": "emails"},
        "tasks.render_report": {"queue": "reports"},
    },
    broker_transport_options={"queue_order_strategy": "priority"},
    worker_hijack_root_logger=False,
)

telemetry = schedobs.configure(
    "shop",
    zone=os.environ.get("SCHEDOBS_ZONE"),
    prometheus=os.environ.get("SCHEDOBS_PROMETHEUS") or None,
    # The broker every process reaches is the common clock.
    clock=schedobs.ClockCompensation.create(BROKER, interval=1.0),
)
assert telemetry.clock is not None

_timings = os.environ.get("SCHEDOBS_TIMINGS")
_lock = threading.Lock()


def _log_timing(timing: TaskTiming) -> None:
    assert _timings is not None
    with _lock, open(_timings, "a") as f:
        f.write(json.dumps(timing._asdict()) + "\n")


CeleryInstrumentation(
    app, clock=telemetry.clock.estimator, on_timing=_log_timing if _timings else None
).install()


@app.task
def send_email(to: str) -> str:
    time.sleep(random.uniform(0.002, 0.01))  # an SMTP call
    return to


@app.task
def render_report(rows: int) -> int:
    return sum(i * i for i in range(rows))  # some CPU
