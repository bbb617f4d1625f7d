"""The contract data matches docs/contract.md and translates to the documented Prometheus names."""

from __future__ import annotations

import pytest

from schedobs.contract import (
    CONTRACT,
    LATENCY_BOUNDARIES_MS,
    OTHER,
    InstrumentKind,
    prometheus_name,
)


def test_core_metrics_are_the_design_table() -> None:
    rows = {
        (m.name, m.instrument, m.unit, m.prometheus_name) for m in CONTRACT.metrics if m.required
    }
    assert rows == {
        ("scheduler.queue.length", InstrumentKind.GAUGE, "{task}", "scheduler_queue_length"),
        (
            "scheduler.schedule.latency",
            InstrumentKind.HISTOGRAM,
            "ms",
            "scheduler_schedule_latency_milliseconds",
        ),
        (
            "scheduler.rejected_tasks",
            InstrumentKind.COUNTER,
            "{task}",
            "scheduler_rejected_tasks_total",
        ),
    }


def test_latency_boundaries_are_the_design_boundaries() -> None:
    assert LATENCY_BOUNDARIES_MS == (
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
        5000, 10000,
    )  # fmt: skip
    assert CONTRACT.metric("scheduler.schedule.latency").boundaries == LATENCY_BOUNDARIES_MS


def test_closed_value_sets() -> None:
    attrs = CONTRACT.attributes
    assert attrs["scheduler.kind"].values == ("gmp", "asyncio", "thread_pool", "celery", "custom")
    assert attrs["error.type"].values == (
        "queue_full",
        "quota_exceeded",
        "constraint_violation",
        "shutdown",
        "revoked",
        "expired",
        "unknown_task",
        "invalid_message",
        OTHER,
    )
    assert {"global", "local", "ready", "timer", "work", "broker", "reserved"} == set(
        attrs["scheduler.queue"].values or ()
    )
    assert attrs["scheduler.unresolved.reason"].values == (
        "negative",
        "within_uncertainty",
        "uncorrected",
    )
    # Open values are bounded by other means (caps), never free-form task data.
    assert attrs["scheduler.name"].values is None
    assert attrs["scheduler.tenant"].values is None
    assert attrs["messaging.destination.name"].values is None


def test_distributed_metrics_translate_to_their_prometheus_names() -> None:
    names = {spec.name: spec.prometheus_name for spec in CONTRACT.metrics}
    assert names["scheduler.queue.wait"] == "scheduler_queue_wait_milliseconds"
    assert names["scheduler.schedule.unresolved"] == "scheduler_schedule_unresolved_total"
    assert names["scheduler.retried_tasks"] == "scheduler_retried_tasks_total"
    assert CONTRACT.metric("scheduler.queue.wait").boundaries == LATENCY_BOUNDARIES_MS


def test_every_attribute_a_metric_names_is_defined() -> None:
    for metric in CONTRACT.metrics:
        for key in metric.attributes:
            assert key in CONTRACT.attributes, (metric.name, key)
        assert metric.description.strip()


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("a.b", "s", InstrumentKind.HISTOGRAM, "a_b_seconds"),
        ("a.b", "{x}", InstrumentKind.GAUGE, "a_b"),
        ("a.b_seconds", "s", InstrumentKind.GAUGE, "a_b_seconds"),
        ("a.b", "1", InstrumentKind.COUNTER, "a_b_total"),
    ],
)
def test_prometheus_translation(name: str, unit: str, kind: InstrumentKind, expected: str) -> None:
    assert prometheus_name(name, unit, kind) == expected


def test_unknown_metric_lookup_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no metric 'nope' in contract v1"):
        CONTRACT.metric("nope")
