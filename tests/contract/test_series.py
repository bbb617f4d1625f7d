"""Any contract metric through SchedulerMetrics.series(); capped queue names; signed latencies;
a forked child does not re-export its parent's series."""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any

import pytest

from schedobs.contract import (
    OTHER,
    QUEUE_WAIT,
    REJECTED_TASKS,
    RETRIED_TASKS,
    SCHEDULE_LATENCY,
    UNRESOLVED,
    Registry,
    SchedulerMetrics,
    exemplars,
)

DEST = "messaging.destination.name"


def _points(metrics: SchedulerMetrics, name: str) -> dict[tuple, Any]:
    return {
        tuple(sorted(p.attributes.items())): p for spec, p in metrics.collect() if spec.name == name
    }


def test_series_of_every_distributed_metric(registry: Registry) -> None:
    m = SchedulerMetrics("jobs", kind="celery", registry=registry)
    wait = m.histogram(QUEUE_WAIT, {"scheduler.queue": "broker", DEST: "emails"})
    wait.observe(2.0)
    m.counter(UNRESOLVED, {"scheduler.unresolved.reason": "negative", DEST: "emails"}).add(3)
    m.counter(RETRIED_TASKS, {DEST: "emails"}).add()
    m.histogram(SCHEDULE_LATENCY, {DEST: "emails"}).observe_signed(-0.5)
    m.histogram(SCHEDULE_LATENCY, {DEST: "emails"}).observe_signed(2.0)
    # The same spec and attributes give the same handle.
    assert m.histogram(QUEUE_WAIT, {DEST: "emails", "scheduler.queue": "broker"}) is wait
    (point,) = _points(m, "scheduler.queue.wait").values()
    assert point.count == 1
    assert dict(point.attributes) == {
        "scheduler.name": "jobs", "scheduler.kind": "celery", "scheduler.queue": "broker",
        DEST: "emails",
    }  # fmt: skip
    assert [p.value for p in _points(m, "scheduler.schedule.unresolved").values()] == [3]
    assert [p.value for p in _points(m, "scheduler.retried_tasks").values()] == [1]
    (latency,) = _points(m, "scheduler.schedule.latency").values()
    assert (latency.count, latency.sum, latency.min) == (2, 2.0, -0.5)
    assert latency.bucket_counts[0] == 1


def test_classic_series_are_shared_with_the_classic_methods(registry: Registry) -> None:
    m = SchedulerMetrics("jobs", registry=registry)
    assert m.histogram(SCHEDULE_LATENCY, {"scheduler.queue": "work"}) is m.latency(queue="work")
    assert m.counter(REJECTED_TASKS, {"error.type": "revoked"}) is m.rejections("revoked")


@pytest.mark.parametrize(
    ("spec", "attributes", "error", "message"),
    [
        (QUEUE_WAIT, {DEST: "q"}, ValueError, "needs the attributes scheduler.queue"),
        (QUEUE_WAIT, {"scheduler.queue": "runq"}, ValueError, "unknown scheduler.queue 'runq'"),
        (RETRIED_TASKS, {"error.type": "revoked"}, ValueError, "has no attribute 'error.type'"),
        (RETRIED_TASKS, {"scheduler.name": "x"}, ValueError, "the scheduler's own"),
        (RETRIED_TASKS, {DEST: ""}, ValueError, "1 to 128 printable"),
        (RETRIED_TASKS, {DEST: 5}, TypeError, "must be a str"),
        ("scheduler.retried_tasks", {}, ValueError, "not a metric of the contract"),
    ],
)
def test_bad_series_are_refused_at_the_call_site(
    registry: Registry, spec: object, attributes: dict, error: type, message: str
) -> None:
    m = SchedulerMetrics("jobs", registry=registry)
    with pytest.raises(error, match=message):
        m.series(spec, attributes)  # type: ignore[arg-type]
    assert list(m.collect()) == []


def test_wrong_instrument_is_a_type_error(registry: Registry) -> None:
    m = SchedulerMetrics("jobs", registry=registry)
    with pytest.raises(TypeError, match=r"scheduler\.retried_tasks is a counter, not a histogram"):
        m.histogram(RETRIED_TASKS)


def test_queue_names_beyond_the_cap_fold_into_other(registry: Registry) -> None:
    m = SchedulerMetrics("jobs", kind="celery", registry=registry, destination_cap=2)
    for name in ("a", "b", "c", "d", "a"):
        m.counter(RETRIED_TASKS, {DEST: name}).add()
    values = {dict(k)[DEST]: p.value for k, p in _points(m, "scheduler.retried_tasks").items()}
    assert values == {"a": 2, "b": 1, OTHER: 2}
    # A flood of overflowing names does not grow the series map.
    for i in range(1000):
        m.counter(RETRIED_TASKS, {DEST: f"flood-{i}"})
    assert len(m._any) == 3
    with pytest.raises(ValueError, match="destination_cap"):
        SchedulerMetrics("x", registry=registry, destination_cap=-1)


def test_signed_observation_keeps_negatives_and_drops_non_finite(registry: Registry) -> None:
    m = SchedulerMetrics("jobs", registry=registry)
    h = m.latency()
    for value in (-3.0, 0.0, 7.0, float("nan"), float("-inf")):
        h.observe_signed(value)
    point = h.snapshot()
    # The sum is a counter in OpenMetrics: a negative value adds 0 to it.
    assert (point.count, point.sum, point.min, point.max) == (3, 7.0, -3.0, 7.0)
    assert point.bucket_counts[0] == 2  # -3 and 0 are both <= 0.01
    assert m.dropped_observations() == {"nan": 1, "infinite": 1}
    with pytest.raises(TypeError, match="real number"):
        h.observe_signed("1")  # type: ignore[arg-type]
    # The plain observe still refuses negatives (one clock: a negative is a clock step).
    h.observe(-1.0)
    assert m.dropped_observations()["negative"] == 1


def test_signed_observation_takes_the_trace_it_is_given(registry: Registry) -> None:
    from contextvars import ContextVar

    m = SchedulerMetrics("jobs", registry=registry)
    h = m.latency()
    saved = exemplars.context_var, exemplars._span_of  # process-wide: configure() sets them
    exemplars.disable()
    try:
        h.observe_signed(1.0, trace_id=0xABC, span_id=0xDEF)  # exemplars off: nothing kept
        assert h.snapshot().exemplars == ()
        exemplars.enable(ContextVar("ctx"), lambda context: None)
        h.observe_signed(1.0, trace_id=0xABC, span_id=0xDEF)
    finally:
        exemplars.context_var, exemplars._span_of = saved
    kept = [e for e in h.snapshot().exemplars if e is not None]
    assert [(e.value, e.trace_id, e.span_id) for e in kept] == [(1.0, 0xABC, 0xDEF)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_reexport_its_parents_series(registry: Registry) -> None:
    parent = SchedulerMetrics("jobs", registry=registry)
    parent.reject("revoked", count=5)
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns about fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report what its copy of the registry would export
        try:
            before = [s.spec.name for s in registry.collect()]
            child = SchedulerMetrics("jobs", registry=registry)  # the name is free here
            child.reject("revoked")
            after = [(s.spec.name, [p.value for p in s.points]) for s in registry.collect()]
            os.write(write, pickle.dumps((before, after, registry.names())))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        before, after, names = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert before == []
    assert after == [("scheduler.rejected_tasks", [1])]
    assert names == ["jobs"]
    # The parent is untouched.
    assert [p.value for s in registry.collect() for p in s.points] == [5]


def test_negative_latencies_keep_the_exposition_valid_openmetrics(registry: Registry) -> None:
    """OpenMetrics parsers refuse a negative histogram sum (it is a counter): a series
    made only of negative cross-clock values must still be readable."""
    import urllib.request

    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    from schedobs import configure

    m = SchedulerMetrics("skewed", kind="celery", registry=registry)
    for value in (-85.0, -84.2, -86.9):
        m.histogram(QUEUE_WAIT, {"scheduler.queue": "reserved", DEST: "work"}).observe_signed(value)
    telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
    try:
        assert telemetry.prometheus_url is not None
        request = urllib.request.Request(telemetry.prometheus_url)
        request.add_header("Accept", "application/openmetrics-text; version=1.0.0")
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
    finally:
        telemetry.shutdown(timeout=5)
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("scheduler_queue_wait")
    }
    assert samples["scheduler_queue_wait_milliseconds_count"] == 3
    assert samples["scheduler_queue_wait_milliseconds_sum"] == 0.0
