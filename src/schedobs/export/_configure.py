"""``configure()``: one call that wires the OpenTelemetry SDK for schedobs."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from schedobs.clock import NtpKey
from schedobs.contract import REGISTRY, Registry

from ._accounting import SpanAccounting
from ._bridge import attach
from ._clock import ClockCompensation
from ._exemplars import OpenMetricsExemplars, enable_exemplars
from ._guard import GuardedMetricExporter
from ._prometheus import PrometheusEndpoint
from ._rewrite import RewritingMetricExporter, RewritingSpanExporter, TimestampRewriter
from ._sdk import check_sdk
from ._settings import DEFAULT, ExportSettings, OtlpSignal, _Default, resolve_settings

__all__ = ["Telemetry", "configure"]

_log = logging.getLogger("schedobs")
_global_lock = threading.Lock()
_global_handle: Telemetry | None = None


class Telemetry:
    """What :func:`configure` set up; use it to flush and to shut down.

    ``shutdown(timeout)`` and ``force_flush(timeout)`` return within their bound
    even when the collector is unreachable; they return ``False`` (and log
    what did not finish) instead of waiting longer.
    """

    def __init__(
        self,
        *,
        settings: ExportSettings,
        resource: Resource,
        registry: Registry,
        meter_provider: MeterProvider,
        tracer_provider: TracerProvider,
        prometheus: PrometheusEndpoint | None,
        clock: ClockCompensation | None = None,
        accounting: SpanAccounting | None = None,
    ) -> None:
        self.settings = settings
        self.resource = resource
        self.registry = registry
        self.meter_provider = meter_provider
        self.tracer_provider = tracer_provider
        self._prometheus = prometheus
        #: Clock compensation (estimator, prober, corrector), if enabled.
        self.clock = clock
        #: Lost spans, by reason (``None`` without OTLP).
        self.accounting = accounting
        self._shutdown_lock = threading.Lock()
        self._is_shutdown = False

    @property
    def prometheus_address(self) -> tuple[str, int] | None:
        """``(host, port)`` the Prometheus endpoint listens on, or ``None``."""
        return None if self._prometheus is None else self._prometheus.address

    @property
    def prometheus_url(self) -> str | None:
        """The scrape URL, such as ``http://127.0.0.1:9464/metrics``, or ``None``."""
        return None if self._prometheus is None else self._prometheus.url

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Collect and export now.  ``True`` if everything finished within ``timeout`` s."""
        millis = timeout * 1000.0
        return _run_bounded(
            {
                "metrics": lambda: self.meter_provider.force_flush(timeout_millis=millis),
                "traces": lambda: self.tracer_provider.force_flush(timeout_millis=int(millis)),
            },
            timeout,
            "force_flush",
        )

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Export what is pending, then stop everything.  Idempotent.

        Returns ``True`` if the final exports finished within ``timeout`` seconds;
        otherwise logs which did not and returns ``False`` (data still pending then
        is lost, and said so, rather than holding the application).
        """
        with self._shutdown_lock:
            if self._is_shutdown:
                return True
            self._is_shutdown = True
        millis = timeout * 1000.0
        if self.clock is not None:
            self.clock.close()
        done = _run_bounded(
            {
                "metrics": lambda: self.meter_provider.shutdown(timeout_millis=millis),
                "traces": self.tracer_provider.shutdown,
            },
            timeout,
            "shutdown",
        )
        # The scrape endpoint goes last, so a scrape during shutdown still works.
        if self._prometheus is not None:
            self._prometheus.close()
        return done

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (
            f"Telemetry(service={self.resource.attributes.get('service.name')!r}, "
            f"otlp={self.settings.otlp_enabled}, prometheus={self.prometheus_url!r})"
        )


def _run_bounded(steps: Mapping[str, Callable[[], Any]], timeout: float, what: str) -> bool:
    """Run ``steps`` concurrently on daemon threads; wait at most ``timeout`` seconds.

    The SDK's own timeouts are not a hard bound when an exporter is retrying
    against a dead collector, so the bound is enforced here.
    """
    results: dict[str, bool] = {}
    errors: dict[str, str] = {}

    def run(name: str, step: Callable[[], Any]) -> None:
        # A step that fails is reported in one line, by the caller, if it ended in time;
        # one that ends after the bound was reported as late already and says no more.
        try:
            outcome = step()
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            outcome = False
        results[name] = outcome is not False

    threads = [
        threading.Thread(target=run, args=(n, s), name=f"schedobs-{what}-{n}", daemon=True)
        for n, s in steps.items()
    ]
    deadline = time.monotonic() + max(timeout, 0.0)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    late = [n for n in steps if n not in results]
    failed = [n for n, ok in list(results.items()) if not ok]
    for name in failed:
        if name in errors:
            _log.warning("telemetry %s of %s failed: %s", what, name, errors[name])
    if late:
        _log.warning(
            "telemetry %s did not finish within %.1f s for %s; data still pending there "
            "may not be exported",
            what, timeout, ", ".join(late),
        )  # fmt: skip
    return not late and not failed


# Imported lazily: the gRPC stack is heavy, and services that only scrape
# should not pay for it.
_EXPORTERS = {
    ("traces", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter",
    ),
    ("traces", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter",
    ),
    ("metrics", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter",
    ),
    ("metrics", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter",
    ),
}  # fmt: skip


def _exporter(name: str, signal: OtlpSignal) -> Any:
    """The SDK's OTLP exporter of signal ``name`` for ``signal``'s protocol and endpoint."""
    module, cls = _EXPORTERS[(name, signal.protocol)]
    return getattr(importlib.import_module(module), cls)(endpoint=signal.endpoint)


def configure(
    service_name: str | None = None,
    *,
    zone: str | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    otlp_traces: bool | None = None,
    otlp_metrics: bool | None = None,
    export_interval: float | None = None,
    export_timeout: float | None = None,
    prometheus: str | _Default | None = DEFAULT,
    registry: Registry | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    timestamp_rewriter: TimestampRewriter | None = None,
    metric_readers: Sequence[MetricReader] = (),
    clock_reference: str | None = None,
    clock_key: bytes | NtpKey | str | None = None,
    clock_interval: float = 5.0,
    clock_max_adjust: float = 1.0,
    set_global: bool = True,
    exemplars: bool = True,
    sampler: Sampler | None = None,
    span_processors: Sequence[SpanProcessor] = (),
) -> Telemetry:
    """Set up OpenTelemetry export of the scheduler contract in one call.

    >>> import schedobs
    >>> telemetry = schedobs.configure(                      # doctest: +SKIP
    ...     "checkout", zone="eu-west-1a", otlp_endpoint="http://127.0.0.1:4317")
    >>> metrics = schedobs.SchedulerMetrics("ingest")       # doctest: +SKIP
    >>> telemetry.shutdown(timeout=5)                        # doctest: +SKIP

    Args:
        service_name: ``service.name`` resource attribute (else ``OTEL_SERVICE_NAME``).
        zone: ``cloud.availability_zone`` resource attribute.
        otlp_endpoint: base OTLP URL for both signals (``http://host:4317`` for
            gRPC, ``http://host:4318`` for HTTP, whose ``/v1/metrics`` and
            ``/v1/traces`` paths are appended; a URL already ending in one is an
            error).  Else, per signal, ``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT``
            (used as given), else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL).
            A signal with no endpoint is not sent (schedobs never guesses a
            collector address).
        otlp_protocol: ``grpc`` (default) or ``http/protobuf`` for both signals;
            else, per signal, ``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL``, else
            ``OTEL_EXPORTER_OTLP_PROTOCOL``.
        otlp_traces, otlp_metrics: send this signal over OTLP (``True`` needs an
            endpoint) or not; else ``OTEL_TRACES_EXPORTER`` /
            ``OTEL_METRICS_EXPORTER`` (``otlp``, ``none``, and ``prometheus`` for
            metrics), else on whenever the signal has an endpoint.  A traces-only
            backend: ``otlp_metrics=False`` or ``OTEL_METRICS_EXPORTER=prometheus``.
        export_interval: seconds between metric exports (else
            ``OTEL_METRIC_EXPORT_INTERVAL``, else 10 — the SDK's reader would take
            60: a scheduler's picture changes within seconds, and alerts held
            ``for: 1m`` need several points a minute).
        export_timeout: seconds one metric export may take (else
            ``OTEL_METRIC_EXPORT_TIMEOUT``, else 10).
        prometheus: ``"host:port"`` of the scrape endpoint (else
            ``OTEL_EXPORTER_PROMETHEUS_HOST``/``_PORT``, else ``127.0.0.1:9464``;
            when ``OTEL_METRICS_EXPORTER`` is set without ``prometheus``, none);
            port ``0`` picks a free one; ``None`` disables it.
        registry: the registry of :class:`~schedobs.contract.SchedulerMetrics`
            to export (default: the process-wide one).
        resource_attributes: further resource attributes.
        timestamp_rewriter: a stage run on every span and metric batch just
            before OTLP export (clock compensation plugs in here).
        metric_readers: additional readers (for example an in-memory reader in
            tests); they get the contract metrics too.
        clock_reference: the reference clock: ``"ntp://host[:port]"`` for any NTP
            server (chrony, ntpd, a cloud's time service such as
            ``ntp://169.254.169.123``), ``"redis://[:password@]host[:port]"``
            for a Redis server's ``TIME`` (a task queue's broker, which every
            producer and worker reaches; a Celery ``broker_url`` as it is), or
            ``"host:port"`` of ``schedobs clock serve``.  Enables clock
            compensation: a background prober estimates this host's offset
            and drift, and every span and metric
            timestamp is corrected before OTLP export.  Exclusive with
            ``timestamp_rewriter``.
        clock_key: authenticates probes and replies: for NTP an
            :class:`~schedobs.clock.NtpKey` or a key line as in chrony's keyfile
            (``"1 SHA256 HEX:…"``); for ``host:port`` a shared key (>= 16 bytes);
            none for Redis (its password is part of the URL).
        clock_interval: seconds between probe bursts.
        clock_max_adjust: largest correction applied, in seconds (clamped beyond).
        set_global: install the providers as the OpenTelemetry globals.
        exemplars: keep, per latency bucket, the latest observation made while a
            sampled span was current (trace and span id), and export it: on OTLP
            histogram points, and in the Prometheus scrape when the scraper asks
            for OpenMetrics.  Process-wide (the last ``configure()`` decides).
        sampler: the ``TracerProvider``'s sampler (the SDK's default when ``None``:
            parent-based, always on).
        span_processors: more span processors for the ``TracerProvider``, after the
            batch export processor (a processor that enriches spans, a second export).

    Raises:
        ValueError, TypeError: a setting is invalid (nothing has been started).
        OSError: the Prometheus endpoint cannot listen on its address.
        RuntimeError: ``set_global`` while another global configuration is live.
    """
    settings = resolve_settings(
        service_name=service_name,
        zone=zone,
        otlp_endpoint=otlp_endpoint,
        otlp_protocol=otlp_protocol,
        otlp_traces=otlp_traces,
        otlp_metrics=otlp_metrics,
        export_interval=export_interval,
        export_timeout=export_timeout,
        prometheus=prometheus,
    )
    if timestamp_rewriter is not None and not isinstance(timestamp_rewriter, TimestampRewriter):
        raise TypeError("timestamp_rewriter must have rewrite_spans() and rewrite_metrics()")
    clock: ClockCompensation | None = None
    if clock_reference is not None:
        if timestamp_rewriter is not None:
            raise ValueError("clock_reference and timestamp_rewriter are exclusive")
        clock = ClockCompensation.create(
            clock_reference, key=clock_key, interval=clock_interval, max_adjust=clock_max_adjust
        )
        timestamp_rewriter = clock.corrector
    attributes: dict[str, str] = dict(resource_attributes or {})
    if settings.service_name is not None:
        attributes["service.name"] = settings.service_name
    if settings.zone is not None:
        attributes["cloud.availability_zone"] = settings.zone
    resource = Resource.create(attributes)
    source = REGISTRY if registry is None else registry

    check_sdk()  # a release without a hook we need fails here, naming it
    if not isinstance(exemplars, bool):
        raise TypeError(f"exemplars must be a bool, got {exemplars!r}")
    if sampler is not None and not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be an OpenTelemetry Sampler, got {type(sampler).__name__}")
    processors = tuple(span_processors)
    for processor in processors:
        if not isinstance(processor, SpanProcessor):
            raise TypeError(
                f"span_processors must hold SpanProcessor instances, got {type(processor).__name__}"
            )
    if set_global:
        _check_global_free()
    started: list[Callable[[], object]] = []  # undone in reverse if anything below raises
    try:
        return _start(
            settings, resource, source, timestamp_rewriter, metric_readers, clock, set_global,
            exemplars, started, TracerProvider(resource=resource, sampler=sampler), processors,
        )  # fmt: skip
    except BaseException:
        for undo in reversed(started):
            try:
                undo()
            except Exception:  # the original error is the one to report
                _log.debug("cleanup after a failed configure() raised", exc_info=True)
        raise


def _start(
    settings: ExportSettings,
    resource: Resource,
    source: Registry,
    timestamp_rewriter: TimestampRewriter | None,
    metric_readers: Sequence[MetricReader],
    clock: ClockCompensation | None,
    set_global: bool,
    exemplars: bool,
    started: list[Callable[[], object]],
    tracer_provider: TracerProvider,
    span_processors: tuple[SpanProcessor, ...],
) -> Telemetry:
    """The part of :func:`configure` that starts things; each is recorded in ``started``
    with the call that stops it."""
    endpoint = (
        None if settings.prometheus is None else PrometheusEndpoint.start(*settings.prometheus)
    )
    if endpoint is not None:
        started.append(endpoint.close)

    readers: list[MetricReader] = list(metric_readers)
    guarded: GuardedMetricExporter | None = None
    span_exporter: SpanExporter | None = None
    accounting: SpanAccounting | None = None
    if settings.traces is not None:
        span_exporter = _exporter("traces", settings.traces)
        started.append(span_exporter.shutdown)
        if timestamp_rewriter is not None:
            span_exporter = RewritingSpanExporter(span_exporter, timestamp_rewriter)
        accounting = SpanAccounting()
        span_exporter = accounting.wrap(span_exporter)
    if settings.metrics is not None:
        metric_exporter: MetricExporter = _exporter("metrics", settings.metrics)
        if timestamp_rewriter is not None:
            metric_exporter = RewritingMetricExporter(metric_exporter, timestamp_rewriter)
        guarded = GuardedMetricExporter(metric_exporter, settings.metrics.endpoint)
        metric_exporter = guarded
        periodic = PeriodicExportingMetricReader(
            metric_exporter,
            export_interval_millis=settings.export_interval_s * 1000.0,
            export_timeout_millis=settings.export_timeout_s * 1000.0,
        )
        started.append(lambda: periodic.shutdown(timeout_millis=1000))  # starts a thread now
        readers.append(periodic)
    scrape_exemplars: OpenMetricsExemplars | None = None
    if endpoint is not None:
        readers.append(endpoint.reader)
        if exemplars:
            scrape_exemplars = OpenMetricsExemplars()
            endpoint.collector.exemplars = scrape_exemplars.apply

    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    started.append(lambda: meter_provider.shutdown(timeout_millis=1000))
    for reader in readers:
        scraped = endpoint is not None and reader is endpoint.reader
        attach(
            reader,
            resource=resource,
            registry=source,
            uniform_attributes=scraped and endpoint is not None and endpoint.uniform_attributes,
            observe=scrape_exemplars.observe if scraped and scrape_exemplars else None,
        )
    if clock is not None:
        clock.register_metrics(meter_provider)
        clock.start()
        started.append(clock.close)
    if accounting is not None:
        accounting.register_metrics(meter_provider)
    if guarded is not None:
        guarded.register_metrics(meter_provider)
    started.append(tracer_provider.shutdown)
    if span_exporter is not None and accounting is not None:
        tracer_provider.add_span_processor(accounting.processor(span_exporter))
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)

    handle = Telemetry(
        settings=settings,
        resource=resource,
        registry=source,
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
        prometheus=endpoint,
        clock=clock,
        accounting=accounting,
    )
    if set_global:
        _install_global(handle)
    enable_exemplars(exemplars)
    return handle


def _check_global_free() -> None:
    with _global_lock:
        if _global_handle is not None:
            raise RuntimeError(
                "schedobs.configure(set_global=True) was already called in this process "
                f"({_global_handle!r}); OpenTelemetry lets the global providers be set only "
                "once per process. Pass set_global=False and use the handle's providers."
            )


def _install_global(handle: Telemetry) -> None:
    global _global_handle
    with _global_lock:
        _global_handle = handle
    otel_metrics.set_meter_provider(handle.meter_provider)
    otel_trace.set_tracer_provider(handle.tracer_provider)
