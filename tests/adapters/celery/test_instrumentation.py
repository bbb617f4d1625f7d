"""CeleryInstrumentation in one process: its arguments, its signals, the broker's queue
lengths against Debian's redis-server, and the relay from forked pool children."""

from __future__ import annotations

import logging
import marshal
import os
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals

from schedobs.adapters import CeleryInstrumentation
from schedobs.adapters._celery._relay import Relay
from schedobs.clock._prober import wall_minus_monotonic as clock_pair
from schedobs.contract import QUEUE_LENGTH, Registry

from ..._redis_server import RedisServer

DEST = "messaging.destination.name"


@pytest.fixture
def app(redis_server: RedisServer) -> Iterator[Celery]:
    url = f"redis://127.0.0.1:{redis_server.port}/2"
    redis_server.command("-n", "2", "FLUSHDB")
    application = Celery("unit", broker=url)
    application.conf.task_default_queue = "unit"
    yield application
    application.close()


def _lengths(inst: CeleryInstrumentation, queue: str) -> dict[str, int]:
    return {
        dict(p.attributes)[DEST]: p.value
        for spec, p in inst.metrics.collect()
        if spec is QUEUE_LENGTH and dict(p.attributes)["scheduler.queue"] == queue
    }


def _llen_truth(server: RedisServer, queue: str) -> tuple[int, int]:
    """(all of the queue's lists, the plain list alone), read with redis-cli."""
    keys = [k for k in server.command("-n", "2", "--scan", "--pattern", f"{queue}*").decode()
            .splitlines() if k]  # fmt: skip
    sizes = {k: int(server.command("-n", "2", "LLEN", k)) for k in keys}
    return sum(sizes.values()), sizes.get(queue, 0)


def test_broker_queue_lengths_count_every_priority_list(
    app: Celery, redis_server: RedisServer
) -> None:
    inst = CeleryInstrumentation(app, registry=Registry(), broker_queues=["backlog", "empty"])
    assert _lengths(inst, "broker") == {"backlog": 0, "empty": 0}  # no keys yet: nothing waits
    published = 0
    for batch in ([0, 0, 0], [9, 5, 3, 1], [7] * 10, [2, 4, 6, 8, 9]):
        for priority in batch:
            app.send_task("unit.noop", queue="backlog", priority=priority)
        published += len(batch)
        total, plain = _llen_truth(redis_server, "backlog")
        assert total == published
        assert _lengths(inst, "broker") == {"backlog": total, "empty": 0}
    # LLEN of the queue's own key alone is what tools that miss priorities report.
    assert plain < total


def test_auto_names_the_apps_queues(app: Celery) -> None:
    inst = CeleryInstrumentation(app, registry=Registry(), broker_queues="auto")
    assert inst._broker is not None and inst._broker.queues == ("unit",)


def test_an_unreachable_broker_leaves_the_lengths_out_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Celery("dead", broker="redis://127.0.0.1:1/0")
    inst = CeleryInstrumentation(dead, registry=Registry(), broker_queues=["q"])
    with caplog.at_level(logging.WARNING, logger="schedobs"):
        started = time.monotonic()
        for _ in range(2):
            assert _lengths(inst, "broker") == {}
        assert time.monotonic() - started < 15
    complaints = [r for r in caplog.records if "queue lengths" in r.getMessage()]
    assert len(complaints) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"clock": object()}, TypeError, "clock must be a clock estimator"),
        ({"on_timing": 3}, TypeError, "on_timing must be callable"),
        ({"broker_queues": "celery"}, TypeError, "'auto' or a list of queue names"),
        ({"broker_queues": ["ok", ""]}, TypeError, "'auto' or a list of queue names"),
        ({"destination_cap": -1}, ValueError, "destination_cap"),
    ],
)
def test_bad_arguments_are_refused(
    app: Celery, kwargs: dict[str, Any], error: type, message: str
) -> None:
    registry = Registry()
    with pytest.raises(error, match=message):
        CeleryInstrumentation(app, registry=registry, **kwargs)
    assert registry.names() == []
    with pytest.raises(ValueError, match="needs the Celery app"):
        CeleryInstrumentation(None, registry=registry, broker_queues=["q"])


def test_install_is_idempotent_and_uninstall_disconnects(app: Celery) -> None:
    inst = CeleryInstrumentation(app, registry=Registry(), name="idem")
    inst.install()
    inst.install()
    headers: dict[str, Any] = {}
    signals.before_task_publish.send(sender="t", headers=headers, body=None)
    assert len(headers["schedobs"]) == 3 and headers["schedobs"][2] == -1  # no clock: σ unknown
    inst.uninstall()
    inst.uninstall()
    headers = {}
    signals.before_task_publish.send(sender="t", headers=headers, body=None)
    assert headers == {}


def _fork_senders(relay: Relay, children: int, records: int) -> None:
    """Fork ``children`` processes that each send ``records`` records, and wait for them."""
    pids = []
    for i in range(children):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            relay.after_fork_in_child()
            ok = all(relay.send(("start", f"task-{i}-{n}", n, None)) for n in range(records))
            os._exit(0 if ok and relay.in_child() else 1)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_the_relay_is_read_in_the_workers_event_loop() -> None:
    """The prefork worker's main process runs kombu's Hub; the relay is one more reader in
    it (no thread of ours to fight the loop for the GIL)."""
    from kombu.asynchronous import Hub

    received: list[tuple[Any, ...]] = []
    relay = Relay(received.append)
    relay.open()
    hub = Hub()
    threads_before = threading.active_count()
    try:
        relay.attach(hub)
        _fork_senders(relay, children=3, records=400)
        deadline = time.monotonic() + 10
        while len(received) < 1200 and time.monotonic() < deadline:
            hub.run_once()
        assert not relay.in_child() and threading.active_count() == threads_before
    finally:
        relay.close()
        hub.close()
    assert len({r[1] for r in received}) == 1200


def test_the_relay_carries_records_from_forked_children() -> None:
    received: list[tuple[Any, ...]] = []
    relay = Relay(received.append)
    relay.open()
    relay.start_thread()  # a worker without an event loop
    try:
        children = []
        for i in range(4):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                relay.after_fork_in_child()
                ok = all(relay.send(("start", f"task-{i}-{n}", n, None)) for n in range(50))
                os._exit(0 if ok and relay.in_child() else 1)
            children.append(pid)
        for pid in children:
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert not relay.in_child()
    finally:
        relay.close()  # what was sent before is read first
    assert len(received) == 200 and len({r[1] for r in received}) == 200


def test_a_child_that_cannot_write_in_time_counts_and_says_so_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schedobs.adapters._celery import _relay

    monkeypatch.setattr(_relay, "SEND_TIMEOUT_S", 0.05)
    relay = Relay(lambda record: time.sleep(60))  # a main process that stopped reading
    relay.open()
    relay.start_thread()
    try:
        relay.owner_pid = -1  # as seen from a child
        payload = ("start", "x" * 3000)
        with caplog.at_level(logging.ERROR, logger="schedobs"):
            results = [relay.send(payload) for _ in range(400)]  # > 1 MiB: the pipe fills
        assert results[0] and not results[-1]
        assert relay.unsent == results.count(False) > 0
        assert len([r for r in caplog.records if "could not pass" in r.getMessage()]) == 1
        assert not relay.send(("start", "y" * 5000))  # too long to be atomic: refused
    finally:
        relay.owner_pid = os.getpid()
        relay._thread = None  # its reader is stuck in the handler on purpose
        relay._handle = lambda record: None  # close() records what is left: quickly
        relay.close()


def test_a_bad_record_does_not_stop_the_relay(caplog: pytest.LogCaptureFixture) -> None:
    received: list[tuple[Any, ...]] = []

    def handle(record: tuple[Any, ...]) -> None:
        if record[0] == "boom":
            raise RuntimeError("boom")
        received.append(record)

    relay = Relay(handle)
    relay.open()
    relay.start_thread()
    try:
        with caplog.at_level(logging.ERROR, logger="schedobs"):
            for data in (b"not marshal data", marshal.dumps(("boom",)), marshal.dumps(("fine",))):
                os.write(relay._write_fd, len(data).to_bytes(2, "big") + data)
            relay.close()
    finally:
        relay.close()
    assert received == [("fine",)]
    assert len([r for r in caplog.records if "pool child" in r.getMessage()]) == 2


class _StallingClock:
    """The wall clock, but the reader is "preempted" for 2 ms inside chosen readings:
    what a busy 2-core worker does to a process between two clock reads."""

    def __init__(self) -> None:
        self.stall_next = 0

    def __call__(self) -> int:
        if self.stall_next > 0:
            self.stall_next -= 1
            time.sleep(0.002)
        return time.time_ns()


def test_the_split_adds_up_when_the_worker_is_preempted_between_clock_readings(
    app: Celery,
) -> None:
    """broker + reserved = latency for every task, however the worker's readings of its
    two clocks (wall, monotonic) at receipt and at start are torn apart by the scheduler."""
    from types import SimpleNamespace

    timings: list[Any] = []
    published: list[int] = []
    wall = _StallingClock()
    inst = CeleryInstrumentation(app, registry=Registry(), name="torn", on_timing=timings.append,
                                 clock_ns=wall).install()  # fmt: skip
    try:
        for stall_at_receipt, stall_at_start in ((0, 0), (1, 0), (0, 1), (1, 1), (0, 2)):
            headers: dict[str, Any] = {}
            signals.before_task_publish.send(sender="t", headers=headers, body=None)
            published.append(headers["schedobs"][0])
            request = SimpleNamespace(request_dict={}, delivery_info={"routing_key": "torn"})
            wall.stall_next = stall_at_receipt
            signals.task_received.send(sender=None, request=request)
            time.sleep(0.003)  # reserved in the worker
            task_request = SimpleNamespace(delivery_info={"routing_key": "torn"},
                                           **headers, **request.request_dict)  # fmt: skip
            wall.stall_next = stall_at_start
            signals.task_prerun.send(sender=None, task_id=f"t{len(timings)}",
                                     task=SimpleNamespace(request=task_request))  # fmt: skip
    finally:
        inst.uninstall()
    assert len(timings) == 5
    wall_minus_monotonic, _ = clock_pair()
    for timing, publish_ns in zip(timings, published, strict=True):
        assert timing.reserved_ms >= 3.0
        # One host, no clock estimate: the two parts and the whole are all local
        # differences; no rate correction here, so they add up exactly.
        assert timing.broker_ms + timing.reserved_ms == pytest.approx(timing.latency_ms, abs=1e-6)
        # The start's two readings describe one instant: a preempted pair is read again.
        start_ns = publish_ns + round(timing.latency_ms * 1e6)
        paired = start_ns - timing.start_monotonic_ns
        assert abs(paired - wall_minus_monotonic) < 200_000, (paired - wall_minus_monotonic) / 1e6
