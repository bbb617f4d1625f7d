"""A producer process for the cross-host tests: publishes what argv asks, prints the truth.

``python -m tests.adapters.celery._producer '<json>'`` where the JSON is a list
of ``{"task": name, "args": [...], "count": n, "queue": q, "priority": p,
"countdown": s, "expires": s}``.  It waits for its clock estimate (the broker's
TIME), publishes, and prints one JSON line per task: its id and
``CLOCK_MONOTONIC`` when it was published — the ground truth, on the clock
every process on this machine shares whatever libfaketime does to their wall
clocks.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

from celery import signals

from schedobs.clock._prober import wall_minus_monotonic

from . import _app

_truth: dict[str, tuple[int, Any, int | None]] = {}
_wall_minus_mono: dict[str, int] = {}


@signals.before_task_publish.connect(weak=False)
def _record_truth(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # Connected after schedobs' own handler, so the stamp is in the headers.  The
    # publish instant on CLOCK_MONOTONIC is the stamp's own wall-clock reading
    # carried over by (wall − monotonic) read now: libfaketime's shift is
    # constant, so both clocks advance together and the mapping is exact to
    # ~0.1 µs, where reading the monotonic clock here would be some µs late.
    if headers is not None:
        stamp = headers.get("schedobs")
        gap, _ = wall_minus_monotonic()  # bracketed: a preemption between reads is no offset
        truth = time.monotonic_ns() if stamp is None else stamp[0] - gap
        eta = headers.get("eta")  # the producer's wall clock: when it means the task to run
        eta_truth = None
        if eta:
            eta_truth = round(datetime.fromisoformat(eta).timestamp() * 1e9) - gap
            _wall_minus_mono[headers["id"]] = gap
        _truth[headers["id"]] = (truth, stamp, eta_truth)


def main() -> None:
    spec = json.loads(sys.argv[1])
    estimator = _app.telemetry.clock.estimator  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while estimator.accepted < 5:
        if time.monotonic() > deadline:
            raise SystemExit("no clock estimate from the broker in 30 s")
        time.sleep(0.05)
    out = []
    for item in spec:
        options = {k: item[k] for k in ("queue", "priority", "countdown", "expires") if k in item}
        for _ in range(item.get("count", 1)):
            result = _app.app.send_task(item["task"], args=item.get("args", ()), **options)
            truth, stamp, eta_truth = _truth.pop(result.id)
            out.append({"id": result.id, "truth": truth, "eta_truth": eta_truth, "stamp": stamp,
                        "task": item["task"],
                        "wall_minus_mono": _wall_minus_mono.pop(result.id, None)})  # fmt: skip
            if item.get("gap"):
                time.sleep(item["gap"])
    for line in out:
        print(json.dumps(line))
    _app.telemetry.shutdown(timeout=5)


if __name__ == "__main__":
    main()
