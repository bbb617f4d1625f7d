"""Recording and collection cost of schedobs against the OpenTelemetry SDK, side by side.

Run: ``make bench`` (or ``python benchmarks/bench_recording.py [--quick]``).

1. Hot path: one latency observation through a ``SchedulerMetrics`` series
   handle (and through the convenience call) against one SDK
   ``Histogram.record`` with one reader and with the two readers that
   ``configure()`` installs (periodic OTLP + Prometheus).  Goal: our call costs
   at most 1/20 of the SDK call.
2. Collection: one collection of 100 histogram series, schedobs' bridge
   against the SDK's own aggregation, both through an ``InMemoryMetricReader``.

Each figure is the median of several repeats measured in this run; ratios
compare numbers taken minutes apart on the same machine, never a stored
baseline.  Shared machines are noisy: read medians and ratios, not single runs.
"""

from __future__ import annotations

import argparse
import inspect
import random
import statistics
import sys
import timeit
from collections.abc import Callable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from schedobs.contract import LATENCY_BOUNDARIES_MS, Registry, SchedulerMetrics
from schedobs.export import attach

GOAL_RATIO = 20.0


class _NullExporter(MetricExporter):
    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: object
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kw: object) -> None:
        pass


def _values(n: int = 1000) -> list[float]:
    rng = random.Random(7)
    return [rng.lognormvariate(-1.0, 1.5) for _ in range(n)]


def _per_call_ns(
    fn: Callable[[float], None], values: list[float], repeats: int, loops: int
) -> float:
    """Median over ``repeats`` of the time per call, in ns (loop overhead included)."""

    def run() -> None:
        for _ in range(loops):
            for v in values:
                fn(v)

    run()  # warm up: creates per-thread rows, fills caches
    times = timeit.repeat(run, number=1, repeat=repeats)
    return statistics.median(times) / (loops * len(values)) * 1e9


def _loop_overhead_ns(values: list[float], repeats: int, loops: int) -> float:
    def noop(v: float) -> None:
        pass

    return _per_call_ns(noop, values, repeats, loops)


_VIEW = View(
    instrument_name="bench.latency",
    aggregation=ExplicitBucketHistogramAggregation(boundaries=list(LATENCY_BOUNDARIES_MS)),
)


def _prometheus_reader() -> PrometheusMetricReader:
    # A private registry where the release takes one (0.63b0 and later); the
    # global one otherwise (0.51b0, the oldest supported).
    if "registry" in inspect.signature(PrometheusMetricReader.__init__).parameters:
        return PrometheusMetricReader(registry=CollectorRegistry())  # type: ignore[call-arg, unused-ignore]
    return PrometheusMetricReader()


def _sdk_histogram(two_readers: bool) -> tuple[MeterProvider, Callable[[float], None]]:
    readers: list[MetricReader] = [InMemoryMetricReader()]
    if two_readers:
        readers = [
            PeriodicExportingMetricReader(_NullExporter(), export_interval_millis=3_600_000),
            _prometheus_reader(),
        ]
    provider = MeterProvider(metric_readers=readers, views=[_VIEW])
    hist = provider.get_meter("bench").create_histogram("bench.latency", unit="ms")
    attrs = {"scheduler.name": "bench", "scheduler.kind": "custom", "scheduler.queue": "local"}

    def record(v: float) -> None:
        hist.record(v, attrs)

    return provider, record


def bench_hot_path(repeats: int, loops: int) -> dict[str, float]:
    values = _values()
    metrics = SchedulerMetrics("bench", registry=Registry())
    handle = metrics.latency(queue="local")
    results = {
        "loop overhead (empty call)": _loop_overhead_ns(values, repeats, loops),
        "schedobs LatencyHistogram.observe": _per_call_ns(handle.observe, values, repeats, loops),
        "schedobs SchedulerMetrics.observe_latency": _per_call_ns(
            lambda v: metrics.observe_latency(v, queue="local"), values, repeats, loops
        ),
    }
    for two in (False, True):
        provider, record = _sdk_histogram(two)
        label = f"SDK Histogram.record, {'2 readers' if two else '1 reader'}"
        # The SDK call is ~30x slower: fewer loops keep the run short.
        results[label] = _per_call_ns(record, values, repeats, max(1, loops // 10))
        provider.shutdown()
    return results


def bench_exemplars(repeats: int, loops: int) -> dict[str, float]:
    """Exemplars' cost per observation, off and on measured in alternation (ns)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from schedobs.contract import disable_exemplars
    from schedobs.export._exemplars import enable_exemplars

    values = _values()
    handle = SchedulerMetrics("bench-ex", registry=Registry()).latency(queue="local")
    tracer = TracerProvider().get_tracer("bench")
    off, on, traced = [], [], []
    for _ in range(max(repeats, 5)):
        disable_exemplars()
        off.append(_per_call_ns(handle.observe, values, 3, loops))
        enable_exemplars(True)
        on.append(_per_call_ns(handle.observe, values, 3, loops))
        with trace.use_span(tracer.start_span("request"), end_on_exit=True):
            traced.append(_per_call_ns(handle.observe, values, 3, loops))
    disable_exemplars()
    return {
        "exemplars off": statistics.median(off),
        "exemplars on, no span": statistics.median(on),
        "exemplars on, sampled span": statistics.median(traced),
        "cost, no span (median of paired differences)": statistics.median(
            b - a for a, b in zip(off, on, strict=True)
        ),
        "cost, sampled span (median of paired differences)": statistics.median(
            b - a for a, b in zip(off, traced, strict=True)
        ),
    }


def bench_collection(repeats: int, series: int = 100) -> dict[str, float]:
    values = _values(200)
    queues = ("global", "local", "ready", "timer", "work")

    # schedobs: 100 series through the bridge into an in-memory reader.
    registry = Registry()
    metrics = SchedulerMetrics("bench", registry=registry, tenant_cap=series)
    for i in range(series):
        h = metrics.latency(queue=queues[i % len(queues)], tenant=f"tenant-{i}")
        for v in values:
            h.observe(v)
    ours_reader = InMemoryMetricReader()
    resource = Resource.create({})
    ours_provider = MeterProvider(resource=resource, metric_readers=[ours_reader])
    attach(ours_reader, resource=resource, registry=registry)

    # SDK: the same 100 series recorded through its own histogram.
    sdk_reader = InMemoryMetricReader()
    sdk_provider = MeterProvider(metric_readers=[sdk_reader], views=[_VIEW])
    hist = sdk_provider.get_meter("bench").create_histogram("bench.latency", unit="ms")
    for i in range(series):
        attrs = {
            "scheduler.name": "bench",
            "scheduler.kind": "custom",
            "scheduler.queue": queues[i % len(queues)],
            "scheduler.tenant": f"tenant-{i}",
        }
        for v in values:
            hist.record(v, attrs)

    def ours() -> None:
        ours_reader.get_metrics_data()

    def sdk() -> None:
        sdk_reader.get_metrics_data()

    ours()
    sdk()
    result = {
        f"schedobs collection, {series} series": statistics.median(
            timeit.repeat(ours, number=1, repeat=repeats)
        )
        * 1e6,
        f"SDK collection, {series} series": statistics.median(
            timeit.repeat(sdk, number=1, repeat=repeats)
        )
        * 1e6,
    }
    ours_provider.shutdown()
    sdk_provider.shutdown()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke test)")
    args = parser.parse_args(argv)
    repeats, loops = (3, 10) if args.quick else (15, 200)

    print(f"python {sys.version.split()[0]}; medians of {repeats} repeats")
    print("\nHot path: one schedule-latency observation (ns per call, loop overhead included)")
    hot = bench_hot_path(repeats, loops)
    width = max(len(k) for k in hot)
    for name, ns in hot.items():
        print(f"  {name:<{width}}  {ns:8.0f} ns")
    ours = hot["schedobs LatencyHistogram.observe"]
    convenience = hot["schedobs SchedulerMetrics.observe_latency"]
    sdk1 = hot["SDK Histogram.record, 1 reader"]
    sdk2 = hot["SDK Histogram.record, 2 readers"]
    print(f"  ratio SDK(1 reader) / schedobs handle     = {sdk1 / ours:6.1f}x")
    print(f"  ratio SDK(2 readers) / schedobs handle    = {sdk2 / ours:6.1f}x")
    print(f"  ratio SDK(1 reader) / schedobs convenience = {sdk1 / convenience:6.1f}x")
    verdict = "meets" if sdk1 / ours >= GOAL_RATIO else "MISSES"
    print(
        f"  goal: SDK call >= {GOAL_RATIO:.0f}x the schedobs call (1 reader) -> {verdict} the goal"
    )

    print("\nExemplars on the hot path (ns per observation; off and on alternate)")
    ex = bench_exemplars(repeats, loops)
    ex_width = max(len(k) for k in ex)
    for name, ns in ex.items():
        print(f"  {name:<{ex_width}}  {ns:8.1f} ns")
    cost = ex["cost, no span (median of paired differences)"]
    verdict = "meets" if cost <= 50 else "MISSES"
    print(f"  goal: <= 50 ns per observation without a sampled span -> {verdict} the goal")

    print("\nCollection of pre-aggregated vs SDK-aggregated histograms (µs per collection)")
    coll = bench_collection(repeats)
    for name, us in coll.items():
        print(f"  {name:<{width}}  {us:8.0f} µs")
    values = list(coll.values())
    print(f"  ratio SDK / schedobs                      = {values[1] / values[0]:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
