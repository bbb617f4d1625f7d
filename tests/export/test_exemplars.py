"""Exemplars: a latency bucket leads to the trace it was observed in."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from schedobs.contract import Registry, SchedulerMetrics, disable_exemplars
from schedobs.export import Telemetry, configure
from schedobs.testing import GrpcOtlpReceiver

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture
def telemetry(registry: Registry, grpc_receiver: GrpcOtlpReceiver) -> Iterator[Telemetry]:
    handle = configure(
        "exemplars", prometheus="127.0.0.1:0", otlp_endpoint=grpc_receiver.endpoint,
        export_interval=3600, registry=registry, set_global=False,
    )  # fmt: skip
    try:
        yield handle
    finally:
        handle.shutdown(timeout=5)
        disable_exemplars()


def _scrape(url: str, accept: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return str(resp.read().decode())


def test_an_observation_in_a_sampled_span_is_an_exemplar_on_both_paths(
    telemetry: Telemetry, registry: Registry, grpc_receiver: GrpcOtlpReceiver
) -> None:
    latency = SchedulerMetrics("ex", registry=registry).latency(queue="work")
    tracer = telemetry.tracer_provider.get_tracer("t")
    latency.observe(0.3)  # no span: no exemplar
    with tracer.start_as_current_span("slow request") as span:
        latency.observe(240.0)
        trace_id, span_id = span.get_span_context().trace_id, span.get_span_context().span_id
    assert telemetry.force_flush(timeout=10)

    points = [
        dp
        for req in grpc_receiver.metrics_requests
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "scheduler.schedule.latency"
        for dp in m.histogram.data_points
    ]
    (exemplar,) = [e for dp in points for e in dp.exemplars]
    assert exemplar.trace_id == trace_id.to_bytes(16, "big")
    assert exemplar.span_id == span_id.to_bytes(8, "big")
    assert exemplar.as_double == 240.0

    url = telemetry.prometheus_url or ""
    openmetrics = _scrape(url, OPENMETRICS)
    line = next(x for x in openmetrics.splitlines() if f'trace_id="{trace_id:032x}"' in x)
    assert line.startswith("scheduler_schedule_latency_milliseconds_bucket{")
    assert 'le="250.0"' in line and f'span_id="{span_id:016x}"' in line and " 240.0 " in line
    assert "trace_id" not in _scrape(url)  # the classic text format is unchanged


def test_an_unsampled_span_leaves_no_exemplar(telemetry: Telemetry, registry: Registry) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    latency = SchedulerMetrics("ex2", registry=registry).latency(queue="work")
    with TracerProvider(sampler=ALWAYS_OFF).get_tracer("t").start_as_current_span("unsampled"):
        latency.observe(7.0)
    assert latency.snapshot().exemplars == ()


def test_exemplars_off(registry: Registry) -> None:
    handle = configure(prometheus=None, registry=registry, set_global=False, exemplars=False)
    try:
        latency = SchedulerMetrics("ex3", registry=registry).latency(queue="work")
        with handle.tracer_provider.get_tracer("t").start_as_current_span("s"):
            latency.observe(7.0)
        assert latency.snapshot().exemplars == ()
    finally:
        handle.shutdown(timeout=5)


@pytest.mark.integration
def test_the_real_prometheus_stores_exemplars_that_lead_to_exported_traces(
    tmp_path: Path, telemetry: Telemetry, registry: Registry, grpc_receiver: GrpcOtlpReceiver
) -> None:
    """Prometheus with exemplar storage scrapes (it asks for OpenMetrics) an instrumented
    runtime whose tasks run inside traced requests; the trace ids /api/v1/query_exemplars
    returns are those of spans exported over OTLP."""
    import time

    from schedobs.runtime import Runtime

    from .._prometheus_server import PrometheusServer, poll

    server = PrometheusServer(tmp_path, features=("exemplar-storage",))
    try:
        host, port = telemetry.prometheus_address or ("", 0)
        server.scrape(f"{host}:{port}")
        start = time.time() - 5
        tracer = telemetry.tracer_provider.get_tracer("t")
        query = 'scheduler_schedule_latency_milliseconds_bucket{scheduler_name="traced"}'

        def stored() -> set[str]:
            return {
                e["labels"]["trace_id"]
                for series in server.query_exemplars(query, start, time.time() + 5)
                for e in series["exemplars"]
            }

        requests: list[str] = []
        with Runtime(procs=2, name="traced", instrument=True, registry=registry) as rt:
            # Six traced requests, each stored by Prometheus before the next one replaces
            # it as its bucket's exemplar (waiting for a scrape rather than sleeping past
            # one: on a busy machine Prometheus's first scrape came after all six had run).
            for _ in range(6):
                with tracer.start_as_current_span("request") as span:
                    rt.submit(sum, range(100)).result(timeout=10)
                trace_id = f"{span.get_span_context().trace_id:032x}"
                requests.append(trace_id)
                poll(
                    lambda t=trace_id: t in stored() or None,  # type: ignore[misc]
                    20.0,
                    f"request {len(requests)}'s exemplar stored by Prometheus",
                )
            assert telemetry.force_flush(timeout=10)
            exported = {
                span.trace_id.hex()
                for req in grpc_receiver.trace_requests
                for rs in req.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            }
        assert stored() == set(requests) and len(set(requests)) == 6
        assert set(requests) <= exported and len(exported) == 6
    finally:
        server.stop()


def test_a_runtime_task_submitted_in_a_traced_request_is_the_exemplar_of_its_latency(
    telemetry: Telemetry, registry: Registry
) -> None:
    """The runtime takes the latency of each task as it starts; the trace is the one
    current when the task was submitted (its captured context)."""
    from schedobs.runtime import Runtime

    tracer = telemetry.tracer_provider.get_tracer("t")
    with Runtime(procs=1, name="traced-rt", instrument=True, registry=registry) as rt:
        rt.submit(int).result(timeout=10)  # outside any trace
        with tracer.start_as_current_span("request") as span:
            rt.submit(int).result(timeout=10)
            trace_id = span.get_span_context().trace_id
        rt.submit(int).result(timeout=10)
        exemplars = [
            e
            for snap in registry.collect()
            if snap.spec.name == "scheduler.schedule.latency"
            for point in snap.points
            if point.attributes.get("scheduler.name") == "traced-rt"
            for e in getattr(point, "exemplars", ())
            if e is not None
        ]
    assert [e.trace_id for e in exemplars] == [trace_id]
    assert 0 <= exemplars[0].value < 1_000  # ms


def test_a_timed_asyncio_task_created_in_a_sampled_span_is_its_bucket_s_exemplar(
    telemetry: Telemetry, registry: Registry
) -> None:
    """Task timing bins most waits in batches, without exemplars; a task created inside
    a sampled span is observed on its own, so its bucket still leads to the trace."""
    import asyncio

    from schedobs.adapters import AsyncioInstrumentation

    tracer = telemetry.tracer_provider.get_tracer("t")

    async def main() -> int:
        instrumentation = AsyncioInstrumentation(
            name="ex-loop", registry=registry, task_timing=True
        ).install()
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(300)))  # outside any span
        with tracer.start_as_current_span("request") as span:
            await asyncio.create_task(asyncio.sleep(0))
        instrumentation.uninstall()
        return span.get_span_context().trace_id

    trace_id = asyncio.run(main())
    (point,) = [
        p for snap in registry.collect() if snap.spec.name == "scheduler.schedule.latency"
        for p in snap.points
    ]  # fmt: skip
    assert point.count == 301  # type: ignore[union-attr]
    exemplars = [e for e in point.exemplars if e is not None]  # type: ignore[union-attr]
    assert [e.trace_id for e in exemplars] == [trace_id]
