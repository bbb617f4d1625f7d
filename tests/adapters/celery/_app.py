"""The Celery application the cross-host tests run: producers and workers are processes.

Configured from the environment, so that the same module serves a worker
(``celery -A tests.adapters.celery._app worker``) and a producer script, each
under its own libfaketime clock:

- ``SCHEDOBS_TEST_BROKER``: the Redis broker, also the reference clock;
- ``SCHEDOBS_TEST_ROLE``: ``worker`` or ``producer`` (the service name);
- ``SCHEDOBS_TEST_PROMETHEUS``: ``host:port`` of this process's scrape endpoint;
- ``SCHEDOBS_TEST_OTLP``: an OTLP/HTTP base URL for spans (and OpenTelemetry's
  own Celery instrumentation then), or unset;
- ``SCHEDOBS_TEST_TIMINGS``: a file that gets one JSON line per task started
  (a worker's ``on_timing``);
- ``SCHEDOBS_TEST_VISIBILITY``: the Redis transport's visibility timeout, s
  (also how often a worker looks for unacknowledged messages to restore);
- ``SCHEDOBS_TEST_PREFETCH``: the worker's prefetch multiplier;
- ``SCHEDOBS_TEST_BROKER_QUEUES``: queues whose broker length this process reports.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from celery import Celery

import schedobs
from schedobs.adapters import CeleryInstrumentation, TaskTiming

BROKER = os.environ["SCHEDOBS_TEST_BROKER"]
ROLE = os.environ.get("SCHEDOBS_TEST_ROLE", "worker")
OTLP = os.environ.get("SCHEDOBS_TEST_OTLP") or None

app = Celery("schedobs_test", broker=BROKER)
app.conf.update(
    task_default_queue="work",
    worker_prefetch_multiplier=int(os.environ.get("SCHEDOBS_TEST_PREFETCH", "4")),
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("SCHEDOBS_TEST_VISIBILITY", "3600")),
        "unacked_restore_interval": float(os.environ.get("SCHEDOBS_TEST_VISIBILITY", "10")),
        # Scan for expired messages at every interval (kombu scans at every tenth by
        # default: 20 s of a redelivery test spent waiting for nothing).
        "unacked_restore_throttle": 1,
        "queue_order_strategy": "priority",
    },
)

telemetry = schedobs.configure(
    f"celery-{ROLE}",
    prometheus=os.environ.get("SCHEDOBS_TEST_PROMETHEUS") or None,
    otlp_endpoint=OTLP,
    otlp_protocol="http/protobuf",
    otlp_metrics=False,
    clock=schedobs.ClockCompensation.create(BROKER, interval=0.2),
)
assert telemetry.clock is not None

_timings = os.environ.get("SCHEDOBS_TEST_TIMINGS")
_lock = threading.Lock()


def _write(timing: TaskTiming) -> None:
    assert _timings is not None
    with _lock, open(_timings, "a") as f:
        f.write(json.dumps(timing._asdict()) + "\n")


_broker_queues = os.environ.get("SCHEDOBS_TEST_BROKER_QUEUES")
instrumentation = CeleryInstrumentation(
    app,
    clock=telemetry.clock.estimator,
    on_timing=_write if _timings else None,
    broker_queues=_broker_queues.split(",") if _broker_queues else None,
).install()

if OTLP:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument()


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def work(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(bind=True, max_retries=3, default_retry_delay=0)
def flaky(self: Any, failures: int) -> int:
    """Retries ``failures`` times, then succeeds."""
    if self.request.retries < failures:
        raise self.retry(countdown=0)
    return int(self.request.retries)
