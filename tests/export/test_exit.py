"""A pipeline that is never shut down: what happens at interpreter exit (real child processes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from schedobs.testing import GrpcOtlpReceiver, latest_points


def _run_child(
    code: str, *args: str, timeout: float = 90
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return result, time.monotonic() - started


_NEVER_SHUT_DOWN = """
    import logging, sys
    logging.basicConfig(level=logging.WARNING)
    from schedobs import Registry, SchedulerMetrics, configure
    registry = Registry()
    metrics = SchedulerMetrics("exit-pool", registry=registry)
    metrics.reject("queue_full", count=3)
    telemetry = configure(
        otlp_endpoint=sys.argv[1], export_interval=3600, export_timeout=30,
        registry=registry, set_global=False,
    )
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("at-exit"):
        pass
    print("configured", flush=True)
"""


def test_a_pipeline_never_shut_down_still_exports_at_exit(grpc_receiver: GrpcOtlpReceiver) -> None:
    """Nothing pending is lost because the program forgot ``shutdown()``: the last
    metrics and the span leave at exit."""
    result, _ = _run_child(_NEVER_SHUT_DOWN, grpc_receiver.endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configured" in result.stdout
    grpc_receiver.wait_for(lambda r: r.metrics_requests and r.trace_requests, timeout=10)
    rejected = [
        point.value
        for (name, _), point in latest_points(grpc_receiver.metrics_requests).items()
        if name == "scheduler.rejected_tasks"
    ]
    assert rejected == [3]
    spans = [
        span.name
        for request in grpc_receiver.trace_requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert spans == ["at-exit"]


def test_the_last_tasks_of_a_runtime_never_shut_down_are_in_the_exit_export(
    grpc_receiver: GrpcOtlpReceiver,
) -> None:
    """The exit's shutdown runs after the runtime has drained (threading's exit hook
    comes before atexit): tasks still queued when the program ends run, and their
    schedule latency is in the final export."""
    code = """
        import sys
        from schedobs import Registry, configure
        from schedobs.runtime import Runtime
        registry = Registry()
        configure(otlp_endpoint=sys.argv[1], export_interval=3600, registry=registry,
                  set_global=False)
        runtime = Runtime(name="exit-runtime", instrument=True, registry=registry)
        for _ in range(500):
            runtime.submit(sum, range(1000))
        print("submitted", flush=True)
    """
    result, _ = _run_child(code, grpc_receiver.endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    grpc_receiver.wait_for(lambda r: r.metrics_requests, timeout=10)
    counts = [  # cumulative: the last point of each queue's series holds its total
        point.value
        for (name, attrs), point in latest_points(grpc_receiver.metrics_requests).items()
        if name == "scheduler.schedule.latency" and ("scheduler.name", "exit-runtime") in attrs
    ]
    assert sum(counts) == 500, (counts, result.stderr)


def test_exit_with_the_collector_down_is_bounded_and_reports_the_loss() -> None:
    """The SDK's own exit handlers shut the two providers down one after the other,
    each retrying its last export (15-16 s here, 7-8 s each); the exit now takes at
    most shutdown()'s default bound (10 s), both parts at once, and says what was
    lost."""
    with GrpcOtlpReceiver() as gone:
        endpoint = gone.endpoint  # started and stopped: the port is closed now
    result, elapsed = _run_child(_NEVER_SHUT_DOWN, endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    # The child's own start (imports, configure) takes 1-2 s on a loaded machine.
    assert elapsed < 10 + 3, (elapsed, result.stderr)
    ours = [line for line in result.stderr.splitlines() if line.startswith("WARNING:schedobs:")]
    assert any("span export failed: 1 span(s) lost" in line for line in ours), result.stderr
    assert any("metric export to" in line for line in ours), result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_a_configure_refused_for_a_taken_reader_leaves_nothing_to_run_at_exit() -> None:
    """The SDK registered its exit handler before refusing a reader another
    MeterProvider has: the half-made provider then shut down that reader (the user's)
    and our already closed one again at exit ("Can't shutdown multiple times")."""
    code = """
        import logging
        logging.basicConfig(level=logging.WARNING)
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from schedobs import Registry, configure
        taken = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[taken], shutdown_on_exit=False)
        try:
            configure(
                registry=Registry(), set_global=False, metric_readers=[taken],
                otlp_endpoint="http://127.0.0.1:1", export_interval=3600,
            )
        except Exception as exc:
            print("refused:", exc, flush=True)
        provider.shutdown()  # the user's provider, once: its reader must not be shut twice
    """
    result, _ = _run_child(code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused:" in result.stdout and "registered" in result.stdout, result.stdout
    assert "shutdown multiple times" not in result.stderr, result.stderr
    assert "shutdown can only be called once" not in result.stderr, result.stderr


def test_where_no_thread_can_start_the_shutdown_runs_its_steps_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.12 refuses to start threads in atexit handlers, where the shutdown at
    exit runs (this interpreter allows it, so the refusal is simulated): each step
    then runs in the calling thread, unbounded, as the SDK's exit handler ran it."""
    from schedobs.export._configure import _run_bounded

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    ran: list[str] = []
    done = _run_bounded(
        {"metrics": lambda: ran.append("metrics"), "traces": lambda: ran.append("traces")},
        1.0,
        "shutdown",
    )
    assert done is True and ran == ["metrics", "traces"]
