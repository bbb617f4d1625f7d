"""A real Celery deployment with skewed clocks: Debian's redis-server as broker and
reference clock, ``celery worker`` processes and a producer process, each under
libfaketime with its own wall-clock offset; ``CLOCK_MONOTONIC``, which
libfaketime leaves alone, is the ground truth they share."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schedobs.testing import HttpOtlpReceiver, find_libfaketime

from ..._prometheus_server import poll
from ..._redis_server import RedisServer
from ._cluster import Worker, publish, sample_value

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not find_libfaketime(), reason="libfaketime: `make test` installs it"),
]

APP = "tests.adapters.celery._app"
# Wall-clock offsets injected per process (libfaketime's FAKETIME, seconds).
PRODUCER_SKEW, AHEAD_SKEW, BEHIND_SKEW = "+0.035", "+0.12", "-0.08"
SKEW_MS = {"ahead": 120.0 - 35.0, "behind": -80.0 - 35.0}  # worker − producer
LATENCY = "scheduler_schedule_latency_milliseconds"


@pytest.fixture(scope="module")
def broker(redis_server: RedisServer) -> str:
    """The broker URL (its own database; the reference clock ignores the number)."""
    return f"redis://127.0.0.1:{redis_server.port}/1"


@pytest.fixture(scope="module")
def spans() -> Iterator[HttpOtlpReceiver]:
    with HttpOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def workers(
    broker: str, spans: HttpOtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Worker]]:
    """Two prefork workers on queue ``work``: one 120 ms ahead, one 80 ms behind."""
    workdir = tmp_path_factory.mktemp("celery")
    otlp = {"SCHEDOBS_TEST_OTLP": spans.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    started: dict[str, Worker] = {}
    try:
        # One process per broker reports the broker's queue lengths: this one.
        started["ahead"] = Worker(workdir, broker, "ahead", skew=AHEAD_SKEW, **otlp,
                                  SCHEDOBS_TEST_BROKER_QUEUES="work")  # fmt: skip
        started["behind"] = Worker(workdir, broker, "behind", skew=BEHIND_SKEW, **otlp)
        yield started
    finally:
        for worker in started.values():
            worker.stop()


def _timings(workers: dict[str, Worker], ids: set[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{task id: (worker, timing)}`` for ``ids``, once every one of them has started."""

    def ready() -> dict[str, tuple[str, dict[str, Any]]] | None:
        found = {
            t["task_id"]: (name, t) for name, w in workers.items() for t in w.timings()
            if t["task_id"] in ids
        }  # fmt: skip
        return found if set(found) == ids else None

    return poll(ready, 60.0, f"{len(ids)} tasks started")


def test_corrected_latencies_are_within_their_uncertainty_of_the_truth(
    broker: str, workers: dict[str, Worker]
) -> None:
    tasks = publish(
        broker,
        [{"task": f"{APP}.add", "args": [1, 2], "count": 300, "gap": 0.002}],
        PRODUCER_SKEW,
    )
    timings = _timings(workers, {t["id"] for t in tasks})
    errors: dict[str, list[float]] = {"ahead": [], "behind": []}
    raw_minus_truth: dict[str, list[float]] = {"ahead": [], "behind": []}
    outside = []
    for task in tasks:
        worker, timing = timings[task["id"]]
        truth_ms = (timing["start_monotonic_ns"] - task["truth"]) / 1e6
        assert truth_ms > 0
        error = timing["latency_ms"] - truth_ms
        errors[worker].append(error)
        raw_minus_truth[worker].append(timing["uncorrected_ms"] - truth_ms)
        if abs(error) > timing["uncertainty_ms"]:
            outside.append((worker, error, timing["uncertainty_ms"]))
    assert len(errors["ahead"]) >= 30 and len(errors["behind"]) >= 30, {
        k: len(v) for k, v in errors.items()
    }
    # The raw clocks show the injected skews: a worker behind the producer sees
    # negative queue times, as every tool without correction would report them.
    for worker, skew in SKEW_MS.items():
        assert statistics.median(raw_minus_truth[worker]) == pytest.approx(skew, abs=0.5)
    behind = [(timings[t["id"]][1], t["truth"]) for t in tasks if timings[t["id"]][0] == "behind"]
    quick = [timing for timing, truth in behind
             if (timing["start_monotonic_ns"] - truth) / 1e6 < 100]  # fmt: skip
    assert quick and all(timing["uncorrected_ms"] < 0 for timing in quick)
    # Corrected, they are within their reported uncertainty of the truth.
    assert len(outside) <= 0.01 * len(tasks), outside[:10]
    for worker, errs in errors.items():
        assert abs(statistics.median(errs)) < 0.1, (worker, statistics.median(errs))

    # The exported histograms count every task once, on the worker that ran it.
    started = Counter(worker for worker, _ in timings.values())
    for name, process in workers.items():
        mine = [t for w, t in timings.values() if w == name]
        assert process.value(f"{LATENCY}_count", {"messaging_destination_name": "work"}) >= len(
            mine
        )
        unresolved = Counter(t["unresolved"] for t in mine if t["unresolved"])
        for reason in ("negative", "within_uncertainty", "uncorrected"):
            assert (
                process.value(
                    "scheduler_schedule_unresolved_total",
                    {"scheduler_unresolved_reason": reason, "messaging_destination_name": "work"},
                )
                >= unresolved[reason]
            )
    assert sum(started.values()) == len(tasks)


def test_the_split_adds_up_and_reserved_time_is_the_workers_own(
    broker: str, workers: dict[str, Worker]
) -> None:
    tasks = publish(broker, [{"task": f"{APP}.add", "args": [2, 2], "count": 40}], PRODUCER_SKEW)
    timings = _timings(workers, {t["id"] for t in tasks})
    for _, timing in timings.values():
        assert timing["broker_ms"] is not None and timing["reserved_ms"] is not None
        assert timing["reserved_ms"] >= 0  # one clock: never negative
        assert timing["broker_ms"] + timing["reserved_ms"] == pytest.approx(
            timing["latency_ms"], abs=3 * timing["uncertainty_ms"] + 0.01
        )
    for worker in workers.values():
        text = worker.scrape()
        broker_count = sample_value(
            text, "scheduler_queue_wait_milliseconds_count", {"scheduler_queue": "broker"}
        )
        reserved_count = sample_value(
            text, "scheduler_queue_wait_milliseconds_count", {"scheduler_queue": "reserved"}
        )
        assert broker_count >= reserved_count > 0


def test_eta_tasks_are_measured_from_their_eta_and_skew_moves_their_start(
    broker: str, workers: dict[str, Worker]
) -> None:
    """Celery fires an ETA by the worker's own clock against the producer's: a worker
    ahead starts it early in true time, one behind late.  The corrected latency says so."""
    tasks = publish(
        broker, [{"task": f"{APP}.add", "args": [3, 3], "count": 20, "countdown": 1.0}],
        PRODUCER_SKEW,
    )  # fmt: skip
    timings = _timings(workers, {t["id"] for t in tasks})
    by_worker: dict[str, list[float]] = {"ahead": [], "behind": []}
    outside = []
    for task in tasks:
        worker, timing = timings[task["id"]]
        assert timing["eta"]
        # When it started relative to when its producer meant it to, in true time ...
        late_ms = (timing["start_monotonic_ns"] - task["eta_truth"]) / 1e6
        # ... is what the corrected latency (start − ETA) says, within its uncertainty
        # for >= 99 % of tasks (the promise; here at most one of 20: a CI run under
        # load once had one 0.31 ms off where 0.085 ms was stated).
        error = abs(timing["latency_ms"] - late_ms)
        if error > timing["uncertainty_ms"]:
            outside.append((round(error, 3), round(timing["uncertainty_ms"], 3)))
        assert error < 5.0  # and never wrong by the skew itself (85 or 115 ms)
        by_worker[worker].append(timing["latency_ms"])
    assert len(outside) <= 1, outside
    # The worker ahead of the producer (by 85 ms) fires early, the one behind (by 115 ms)
    # late; Celery's timer and pool add their own few tens of ms of delay to both.
    if by_worker["ahead"]:
        assert statistics.median(by_worker["ahead"]) < -20.0, by_worker["ahead"]
    if by_worker["behind"]:
        assert statistics.median(by_worker["behind"]) > 100.0, by_worker["behind"]


def test_retries_rejections_and_revocations_are_counted_exactly(
    broker: str, workers: dict[str, Worker], tmp_path: Path
) -> None:
    from celery import Celery

    before = {
        (name, key): w.value(metric, labels)
        for name, w in workers.items()
        for key, metric, labels in _COUNTED
    }
    tasks = publish(broker, [{"task": f"{APP}.flaky", "args": [2], "count": 3}], PRODUCER_SKEW)
    app = Celery("client", broker=broker)
    try:
        app.send_task("tests.no_such_task", queue="work")
        with app.producer_or_acquire() as producer:  # a message that is no task at all
            producer.publish({"hello": "world"}, routing_key="work", serializer="json")
        revoked = app.send_task(f"{APP}.add", args=(0, 0), queue="work", countdown=2)
        app.control.revoke(revoked.id)
        app.send_task(f"{APP}.add", args=(0, 1), queue="work", countdown=2, expires=1)
    finally:
        app.close()
    expected = {"retried": 6, "unknown_task": 1, "invalid_message": 1, "revoked": 1,
                "expired": 1, "flaky_runs": 9}  # fmt: skip

    def counted() -> dict[str, float] | None:
        got = {
            key: sum(w.value(metric, labels) - before[(name, key)]
                     for name, w in workers.items())
            for key, metric, labels in _COUNTED
        }  # fmt: skip
        return got if got == expected else None

    try:
        poll(counted, 30.0, f"counts {expected}")
    except TimeoutError:
        got = {
            key: sum(w.value(metric, labels) - before[(name, key)] for name, w in workers.items())
            for key, metric, labels in _COUNTED
        }
        raise AssertionError(f"counted {got}, expected {expected}") from None
    # Each retry is a new publish, measured afresh: 3 runs per task, all stamped.
    runs = Counter(
        t["task_id"] for w in workers.values() for t in w.timings()
        if t["task_id"] in {task["id"] for task in tasks}
    )  # fmt: skip
    assert sorted(runs.values()) == [3, 3, 3]


_COUNTED = [
    ("retried", "scheduler_retried_tasks_total", {"messaging_destination_name": "work"}),
    ("unknown_task", "scheduler_rejected_tasks_total", {"error_type": "unknown_task"}),
    ("invalid_message", "scheduler_rejected_tasks_total", {"error_type": "invalid_message"}),
    ("revoked", "scheduler_rejected_tasks_total", {"error_type": "revoked"}),
    ("expired", "scheduler_rejected_tasks_total", {"error_type": "expired"}),
    ("flaky_runs", f"{LATENCY}_count", {"messaging_destination_name": "work"}),
]


def test_latency_exemplars_lead_to_the_consumer_spans(
    broker: str, workers: dict[str, Worker], spans: HttpOtlpReceiver
) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    publish(broker, [{"task": f"{APP}.add", "args": [4, 4], "count": 30}], PRODUCER_SKEW,
            SCHEDOBS_TEST_OTLP=spans.endpoint)  # fmt: skip
    exemplars = set()
    for worker in workers.values():
        for family in text_string_to_metric_families(worker.scrape(openmetrics=True)):
            for sample in family.samples:
                if sample.name == f"{LATENCY}_bucket" and sample.exemplar is not None:
                    labels = sample.exemplar.labels
                    exemplars.add((int(labels["trace_id"], 16), int(labels["span_id"], 16)))
    assert exemplars

    def consumer_spans(receiver: Any) -> set[tuple[int, int]]:
        found = set()
        for request in receiver.trace_requests:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        if span.kind == 5 and span.name.startswith("run/"):  # CONSUMER
                            found.add((int.from_bytes(span.trace_id, "big"),
                                       int.from_bytes(span.span_id, "big")))  # fmt: skip
        return found if exemplars <= found else set()

    spans.wait_for(consumer_spans, timeout=30)


def test_tasks_reserved_on_a_worker_match_celerys_own_inspection(
    broker: str, tmp_path: Path
) -> None:
    """One pool slot, a prefetch window of 4: while a long task runs, the others wait on
    the worker; the gauge says how many, as ``celery inspect reserved`` does."""
    from celery import Celery

    worker = Worker(tmp_path, broker, "slow", skew=BEHIND_SKEW, queues="slow", concurrency=1)
    app = Celery("client", broker=broker)
    try:
        publish(broker, [{"task": f"{APP}.work", "args": [2.0], "count": 6, "queue": "slow"}],
                PRODUCER_SKEW)  # fmt: skip

        def agree() -> int | None:
            reported = worker.value(
                "scheduler_queue_length",
                {"scheduler_queue": "reserved", "messaging_destination_name": "slow"},
            )
            inspected = app.control.inspect([f"slow@{_hostname()}"], timeout=1.0).reserved()
            listed = len(next(iter((inspected or {}).values()), []))
            again = worker.value(
                "scheduler_queue_length",
                {"scheduler_queue": "reserved", "messaging_destination_name": "slow"},
            )
            return int(reported) if reported == listed == again and listed >= 3 else None

        assert poll(agree, 30.0, "the reserved gauge agreeing with inspect") == 4
    finally:
        app.close()
        worker.stop()


def test_a_killed_worker_s_tasks_are_measured_from_their_first_publish(
    broker: str, tmp_path: Path
) -> None:
    """SIGKILL takes the worker and its pool at once.  Its prefetched messages were never
    acknowledged; once the visibility timeout passes a new worker gets them, and their
    latency still counts from the original publish, within its uncertainty of the truth."""
    fragile = {"SCHEDOBS_TEST_VISIBILITY": "2"}
    first = Worker(tmp_path, broker, "first", skew=AHEAD_SKEW, queues="fragile", concurrency=1,
                   **fragile)  # fmt: skip
    tasks = publish(broker, [{"task": f"{APP}.work", "args": [0.5], "count": 5,
                              "queue": "fragile"}], PRODUCER_SKEW)  # fmt: skip
    poll(lambda: len(first.timings()) >= 1 or None, 30.0, "the first task started")
    first.kill()
    killed_at = time.monotonic_ns()
    started_before = {t["task_id"] for t in first.timings()}
    second = Worker(tmp_path, broker, "second", skew=BEHIND_SKEW, queues="fragile",
                    concurrency=2, **fragile)  # fmt: skip
    try:
        ids = {t["id"] for t in tasks}
        redelivered = poll(
            lambda: ((got := {t["task_id"]: t for t in second.timings()})
            and set(got) | started_before >= ids and got) or None,
            60.0, "every task started somewhere",
        )  # fmt: skip
        truth = {t["id"]: t["truth"] for t in tasks}
        again = [t for task_id, t in redelivered.items() if task_id not in started_before]
        assert again, "no task was redelivered"
        for timing in again:
            true_ms = (timing["start_monotonic_ns"] - truth[timing["task_id"]]) / 1e6
            assert timing["start_monotonic_ns"] > killed_at
            assert abs(timing["latency_ms"] - true_ms) <= timing["uncertainty_ms"]
        # The new worker's own series count what it started, from zero.
        assert second.value(f"{LATENCY}_count", {"messaging_destination_name": "fragile"}) == len(
            redelivered
        )
    finally:
        second.stop()


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _doc_queries() -> list[str]:
    """The PromQL expressions of docs/celery.md, one per paragraph of its ``promql`` block."""
    import re

    text = (Path(__file__).resolve().parents[3] / "docs" / "celery.md").read_text()
    block = re.search(r"```promql\n(.*?)```", text, re.S)
    assert block, "docs/celery.md has no promql block"
    queries: list[str] = []
    current: list[str] = []
    for line in block.group(1).splitlines():
        if line.startswith("#") or not line.strip():
            if current:
                queries.append(" ".join(current))
                current = []
            continue
        if current and not line.startswith(" "):
            queries.append(" ".join(current))  # a new expression on the next line
            current = []
        current.append(line.strip())
    if current:
        queries.append(" ".join(current))
    return queries


def test_the_documented_promql_runs_on_the_real_prometheus(
    broker: str, workers: dict[str, Worker], prometheus_server: Any
) -> None:
    """Every query in docs/celery.md, against Debian's Prometheus scraping both workers while
    tasks (some with an ETA, so some unresolved) run: each returns data."""
    import math

    queries = _doc_queries()
    assert len(queries) >= 7
    prometheus_server.scrape(*(f"127.0.0.1:{w.port}" for w in workers.values()))
    poll(lambda: prometheus_server.value("count(up == 1)") == 2 or None, 20.0, "both targets up")
    time.sleep(1.0)  # a scrape before the tasks, so that rate() sees them arrive
    publish(broker, [{"task": f"{APP}.add", "args": [5, 5], "count": 60},
                     {"task": f"{APP}.add", "args": [6, 6], "count": 10, "countdown": 0.5},
                     {"task": f"{APP}.flaky", "args": [1], "count": 2}], PRODUCER_SKEW)  # fmt: skip
    time.sleep(2.5)  # ETA tasks run, and Prometheus scrapes a few more times

    def answers(query: str) -> list[dict[str, Any]] | None:
        result = prometheus_server.query(query)
        finite = [r for r in result if math.isfinite(float(r["value"][1]))]
        return finite or None

    for query in queries:
        poll(lambda q=query: answers(q), 20.0, f"data for {query}")
