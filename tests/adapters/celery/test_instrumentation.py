"""CeleryInstrumentation in one process: its arguments, its signals, the broker's queue
lengths against Debian's redis-server, and the relay from forked pool children."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals

from schedobs.adapters import CeleryInstrumentation
from schedobs.adapters._celery._relay import Relay
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


def test_the_relay_carries_records_from_forked_children() -> None:
    received: list[tuple[Any, ...]] = []
    relay = Relay(received.append)
    relay.open()
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


def test_a_bad_record_does_not_stop_the_relay(caplog: pytest.LogCaptureFixture) -> None:
    received: list[tuple[Any, ...]] = []

    def handle(record: tuple[Any, ...]) -> None:
        if record[0] == "boom":
            raise RuntimeError("boom")
        received.append(record)

    relay = Relay(handle)
    relay.open()
    try:
        with caplog.at_level(logging.ERROR, logger="schedobs"):
            assert relay._sending is not None
            relay._sending.send(b"not marshal data")
            relay._sending.send(__import__("marshal").dumps(("boom",)))
            relay._sending.send(__import__("marshal").dumps(("fine",)))
            relay.close()
    finally:
        relay.close()
    assert received == [("fine",)]
    assert len([r for r in caplog.records if "pool child" in r.getMessage()]) == 2
