"""The Prometheus checker passes real output and fails, precisely, on broken expositions."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest

from schedobs.check import check_prometheus_text
from schedobs.contract import CONTRACT_VERSION, Registry
from schedobs.export import configure

from .._workload import record


@pytest.fixture(scope="module")
def good() -> Iterator[str]:
    """A real exposition, scraped from configure()'s endpoint."""
    registry = Registry()
    record(registry, name="chk")
    telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
    try:
        with urllib.request.urlopen(telemetry.prometheus_url or "", timeout=10) as resp:
            yield resp.read().decode()
    finally:
        telemetry.shutdown(timeout=5)


def _rules(text: str, strict: bool = False) -> list[tuple[str, str]]:
    report = check_prometheus_text(text, strict=strict)
    return [(v.rule, v.metric) for v in report.violations]


def test_real_output_conforms(good: str) -> None:
    report = check_prometheus_text(good, strict=True)
    assert report.ok, report.render_text()
    assert {k: v for k, v in report.series.items() if k.startswith("scheduler.")} == {
        "scheduler.queue.length": 2,
        "scheduler.schedule.latency": 2,
        "scheduler.rejected_tasks": 3,
    }
    assert f"conforms to schedobs contract v{CONTRACT_VERSION}" in report.render_text()


def test_the_seed_histogram_name_is_flagged_with_the_right_name(good: str) -> None:
    wrong = good.replace("scheduler_schedule_latency_milliseconds", "scheduler_schedule_latency_ms")
    report = check_prometheus_text(wrong, strict=True)
    messages = [str(v) for v in report.violations]
    assert any(
        "[unknown-metric] scheduler_schedule_latency_ms" in m
        and "did you mean 'scheduler_schedule_latency_milliseconds'" in m
        for m in messages
    ), messages
    assert any("[missing-metric] scheduler_schedule_latency_milliseconds" in m for m in messages)


def test_wrong_type(good: str) -> None:
    wrong = good.replace(
        "# TYPE scheduler_queue_length gauge", "# TYPE scheduler_queue_length counter"
    )
    assert ("wrong-type", "scheduler_queue_length_total") in _rules(wrong) or (
        "unknown-metric",
        "scheduler_queue_length_total",
    ) in _rules(wrong)


def test_gauge_typed_as_untyped_is_wrong_type(good: str) -> None:
    wrong = good.replace(
        "# TYPE scheduler_queue_length gauge", "# TYPE scheduler_queue_length untyped"
    )
    assert ("wrong-type", "scheduler_queue_length") in _rules(wrong)


def test_bad_label_value_names_the_series(good: str) -> None:
    wrong = good.replace('error_type="queue_full"', 'error_type="full"')
    report = check_prometheus_text(wrong)
    bad = [v for v in report.violations if v.rule == "bad-attribute-value"]
    assert len(bad) == 1
    assert bad[0].metric == "scheduler_rejected_tasks_total"
    assert bad[0].series is not None and bad[0].series["error_type"] == "full"
    assert "error.type='full' is not one of queue_full" in bad[0].message


def test_missing_and_unknown_labels(good: str) -> None:
    no_kind = re.sub(r'scheduler_kind="custom",', "", good)
    assert ("missing-attribute", "scheduler_queue_length") in _rules(no_kind)
    extra = good.replace('scheduler_queue="global"', 'scheduler_queue="global",task_id="42"')
    assert ("unknown-attribute", "scheduler_queue_length") in _rules(extra)


def test_wrong_bucket_boundaries(good: str) -> None:
    wrong = good.replace('le="0.025"', 'le="0.02"')
    report = check_prometheus_text(wrong)
    bad = [v for v in report.violations if v.rule == "bad-buckets"]
    assert bad and "missing [0.025], unexpected [0.02]" in bad[0].message


def test_inconsistent_histogram(good: str) -> None:
    lines = []
    for line in good.splitlines():
        if line.startswith("scheduler_schedule_latency_milliseconds_count") and "gold" in line:
            name, _, _ = line.rpartition(" ")
            line = f"{name} 999.0"
        lines.append(line)
    report = check_prometheus_text("\n".join(lines) + "\n")
    assert [v.rule for v in report.violations] == ["inconsistent-histogram"]
    assert "+Inf bucket 8.0 != _count 999.0" in report.violations[0].message


def test_duplicate_samples(good: str) -> None:
    line = next(ln for ln in good.splitlines() if ln.startswith("scheduler_queue_length{"))
    wrong = good.replace(line, line + "\n" + line)
    assert ("duplicate-sample", "scheduler_queue_length") in _rules(wrong)


def test_negative_counter(good: str) -> None:
    wrong = re.sub(
        r"(scheduler_rejected_tasks_total\{[^}]*queue_full[^}]*\}) \S+", r"\1 -1.0", good
    )
    assert ("bad-value", "scheduler_rejected_tasks_total") in _rules(wrong)


def test_unparseable_text() -> None:
    report = check_prometheus_text("scheduler_queue_length{oops 1\n")
    assert [v.rule for v in report.violations] == ["unparseable"]


def test_missing_metrics_are_warnings_unless_strict() -> None:
    report = check_prometheus_text("other_metric 1\n", allow_empty=True)
    assert report.ok
    assert {w.metric for w in report.warnings} == {
        "scheduler_queue_length",
        "scheduler_schedule_latency_milliseconds",
        "scheduler_rejected_tasks_total",
    }
    assert not check_prometheus_text("other_metric 1\n", strict=True, allow_empty=True).ok


NODE_EXPORTER_PAGE = """\
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.21
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
"""


@pytest.mark.parametrize("text", ["", NODE_EXPORTER_PAGE], ids=["empty page", "node exporter"])
def test_a_target_with_no_contract_metric_fails_unless_allowed(text: str) -> None:
    """Pointed at the wrong port, the check used to say "conforms" (three warnings)."""
    report = check_prometheus_text(text)
    assert not report.ok
    assert [(v.rule, v.metric) for v in report.violations] == [("no-contract-metrics", "(output)")]
    assert "right endpoint" in report.render_text()
    assert check_prometheus_text(text, allow_empty=True).ok


def test_foreign_metrics_are_ignored(good: str) -> None:
    text = good + '# TYPE http_requests_total counter\nhttp_requests_total{path="/"} 3\n'
    assert check_prometheus_text(text, strict=True).ok


def test_report_as_dict(good: str) -> None:
    data = check_prometheus_text(good.replace('le="0.025"', 'le="0.02"')).as_dict()
    assert data["ok"] is False
    assert data["violations"][0]["rule"] == "bad-buckets"
    assert data["violations"][0]["series"]["scheduler_name"] == "chk"


COLLECTOR_STYLE = """\
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{instance="i-1",job="shop/checkout",cloud_availability_zone="eu-1a"} 1
# HELP scheduler_queue_length Tasks waiting.
# TYPE scheduler_queue_length gauge
scheduler_queue_length{instance="i-1",job="shop/checkout",scheduler_name="w",scheduler_kind="gmp",\
scheduler_queue="global",service_name="checkout",service_namespace="shop",\
service_instance_id="i-1",cloud_availability_zone="eu-1a"{extra}} 3
"""


def test_resource_labels_a_collector_copies_onto_series_are_the_producer_s() -> None:
    """A Collector's Prometheus exporter copies resource attributes onto every series
    (``resource_constant_labels``): those declared in the producer's ``target_info``
    (and its identity, which the mapping turns into job/instance) are not contract
    labels; anything else still is."""
    assert _rules(COLLECTOR_STYLE.replace("{extra}", "")) == []
    assert _rules(COLLECTOR_STYLE.replace("{extra}", ',cloud_region="eu-1"')) == [
        ("unknown-attribute", "scheduler_queue_length")
    ]
    # A zone that is not the producer's own is not a copy of its resource.
    other_zone = COLLECTOR_STYLE.replace('"eu-1a"{extra}', '"eu-1b"')
    assert _rules(other_zone) == [("unknown-attribute", "scheduler_queue_length")]
