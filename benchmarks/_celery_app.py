"""The Celery application ``bench_celery.py`` runs on a real worker.

``SCHEDOBS_BENCH_BROKER`` is the broker; ``SCHEDOBS_BENCH_INSTRUMENT=1`` installs
schedobs as a service would (``configure()`` with the broker as the reference
clock and a Prometheus endpoint, ``CeleryInstrumentation``), ``0`` leaves Celery
as it is.  Nothing else differs between the two.
"""

from __future__ import annotations

import os
import time

from celery import Celery

BROKER = os.environ["SCHEDOBS_BENCH_BROKER"]
app = Celery("schedobs_bench", broker=BROKER)
app.conf.update(task_default_queue="bench", worker_hijack_root_logger=False)

MODE = os.environ.get("SCHEDOBS_BENCH_INSTRUMENT", "0")
if MODE != "0":
    import schedobs
    from schedobs.adapters import CeleryInstrumentation

    telemetry = schedobs.configure("bench", prometheus="127.0.0.1:0", clock=BROKER)
    assert telemetry.clock is not None
    if MODE == "1":
        CeleryInstrumentation(app, clock=telemetry.clock.estimator).install()


@app.task
def empty() -> None:
    return None


@app.task
def sleep_1ms() -> None:
    time.sleep(0.001)
