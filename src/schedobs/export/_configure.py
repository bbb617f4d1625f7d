"""``configure()``: one call that wires the OpenTelemetry SDK for schedobs."""

from __future__ import annotations

import atexit
import importlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
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

from ._accounting import CountingSpanExporter, SpanAccounting
from ._bridge import attach
from ._clock import DEFAULT_INTERVAL, DEFAULT_MAX_ADJUST, ClockCompensation
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
        aborts: Sequence[Callable[[], None]] = (),
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
        # Stop the OTLP exporters' retries once shutdown's bound has passed.
        self._aborts = tuple(aborts)

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
        is lost, and said so, rather than holding the application); an export still
        retrying then is stopped, not left to retry in the background.
        """
        with self._shutdown_lock:
            if self._is_shutdown:
                return True
            self._is_shutdown = True
        atexit.unregister(self._shutdown_at_exit)
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
        if not done:
            # An export still retrying against a dead collector would go on for its
            # whole export timeout in the background, logging as it goes; what it
            # holds was just reported as not exported, so it is stopped instead.
            for abort in self._aborts:
                abort()
        # The scrape endpoint goes last, so a scrape during shutdown still works.
        if self._prometheus is not None:
            self._prometheus.close()
        return done

    def _shutdown_at_exit(self) -> None:
        # configure() registers this in place of the SDK providers' own exit handlers
        # (they are made with shutdown_on_exit=False): a Telemetry that was never
        # shut down is shut down at interpreter exit as shutdown() does, within its
        # bound and with its one-line report, instead of by the SDK with no bound
        # (a dead collector held the exit for the exporters' whole timeout).  Plain
        # atexit runs after threading's exit hooks, so the runtime has drained and
        # the standard pools have joined: what their last tasks recorded goes too.
        self.shutdown()

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
        # A step that fails is reported by the caller, if it ended in time; one that
        # ends after the bound was reported as late already and says no more.
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
    running = []
    for thread in threads:
        try:
            thread.start()
        except RuntimeError:
            # No thread can start (Python 3.12 refuses them in atexit handlers, where
            # the shutdown at exit runs): the step runs here, without the bound, as
            # the SDK's own exit handler would have run it.
            thread.run()
        else:
            running.append(thread)
    for thread in running:
        thread.join(max(deadline - time.monotonic(), 0.0))
    late = [n for n in steps if n not in results]
    failed = [n for n, ok in list(results.items()) if not ok]
    # One line, whatever happened to each part: a part may fail in time while
    # another is still late (the SDK's errors can span lines; they are joined).
    problems = [f"{n} failed: {' '.join(errors[n].split())}" for n in failed if n in errors]
    if late:
        problems.insert(0, f"did not finish within {timeout:.1f} s for {', '.join(late)}")
    if problems:
        _log.warning(
            "telemetry %s %s; data still pending there may not be exported",
            what, "; ".join(problems),
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


#: ``configure()`` keywords of 0.1.0 that ``clock=`` replaced: still accepted, with a
#: DeprecationWarning, and mapped onto ``clock=``.
_CLOCK_KEYWORDS = (
    "clock_reference",
    "clock_key",
    "clock_interval",
    "clock_max_adjust",
    "timestamp_rewriter",
)

#: What ``configure(clock=...)`` takes.
ClockOption = str | ClockCompensation | TimestampRewriter


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
    clock: ClockOption | None = None,
    registry: Registry | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    metric_readers: Sequence[MetricReader] = (),
    set_global: bool = True,
    exemplars: bool = True,
    sampler: Sampler | None = None,
    span_processors: Sequence[SpanProcessor] = (),
    **deprecated: Any,
) -> Telemetry:
    """Set up OpenTelemetry export of the scheduler contract in one call.

    >>> import schedobs
    >>> telemetry = schedobs.configure(                      # doctest: +SKIP
    ...     "checkout", zone="eu-west-1a", otlp_endpoint="http://127.0.0.1:4317",
    ...     clock="ntp://169.254.169.123")
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
        clock: clock compensation — every span and metric timestamp is corrected
            before OTLP export.  A reference: ``"ntp://host[:port]"`` for any NTP
            server (chrony, ntpd, a cloud's time service such as
            ``ntp://169.254.169.123``), ``"redis://[:password@]host[:port]"`` for a
            Redis server's ``TIME`` (a task queue's broker; a Celery ``broker_url``
            as it is), or ``"host:port"`` of ``schedobs clock serve``; probed every
            5 s, corrections clamped at 1 s.  For a key, another interval or clamp,
            a :class:`ClockCompensation` from :meth:`ClockCompensation.create`.  Or
            any :class:`TimestampRewriter` (``rewrite_spans``/``rewrite_metrics``),
            run on every batch just before OTLP export.  The compensation is started
            here and stopped by :meth:`Telemetry.shutdown`.  ``None``: timestamps
            leave as the host's clock reads them.
        registry: the registry of :class:`~schedobs.contract.SchedulerMetrics`
            to export (default: the process-wide one).
        resource_attributes: further resource attributes.
        metric_readers: additional readers (for example an in-memory reader in
            tests); they get the contract metrics too.
        set_global: install the providers as the OpenTelemetry globals.
        exemplars: keep, per latency bucket, the latest observation made while a
            sampled span was current (trace and span id), and export it: on OTLP
            histogram points, and in the Prometheus scrape when the scraper asks
            for OpenMetrics.  Process-wide (the last ``configure()`` decides).
        sampler: the ``TracerProvider``'s sampler (the SDK's default when ``None``:
            parent-based, always on).
        span_processors: more span processors for the ``TracerProvider``, after the
            batch export processor (a processor that enriches spans, a second export).
        deprecated: the 0.1.0 keywords ``clock_reference``, ``clock_key``,
            ``clock_interval``, ``clock_max_adjust`` and ``timestamp_rewriter``, still
            accepted (with a :class:`DeprecationWarning`) and read as ``clock=``.

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
    compensation, rewriter = _clock_option(clock, deprecated)
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

    # Every part started is stopped again, in reverse, if a later one fails.
    with ExitStack() as started:
        endpoint = _start_prometheus(started, settings)
        span_export = _start_traces(started, settings, rewriter)
        guarded = _start_metric_export(started, settings, rewriter)
        readers = [*metric_readers, *([guarded.reader] if guarded else [])]
        meter_provider = _start_meter_provider(
            started, resource, source, readers, endpoint, exemplars=exemplars
        )
        tracer_provider = TracerProvider(resource=resource, sampler=sampler, shutdown_on_exit=False)
        _undo_quietly(started, tracer_provider.shutdown)
        if span_export is not None:
            span_export.accounting.register_metrics(meter_provider)
            tracer_provider.add_span_processor(span_export.processor())
        for processor in processors:
            tracer_provider.add_span_processor(processor)
        if guarded is not None:
            guarded.exporter.register_metrics(meter_provider)
        if compensation is not None:
            compensation.register_metrics(meter_provider)
            compensation.start()
            _undo_quietly(started, compensation.close)
        handle = Telemetry(
            settings=settings,
            resource=resource,
            registry=source,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            prometheus=endpoint,
            clock=compensation,
            accounting=None if span_export is None else span_export.accounting,
            aborts=[
                *([span_export.exporter.abort] if span_export is not None else []),
                *([guarded.exporter.abort] if guarded is not None else []),
            ],
        )
        if set_global:
            _install_global(handle)
        enable_exemplars(exemplars)
        started.pop_all()  # all started: the handle's shutdown() stops them from now on
    atexit.register(handle._shutdown_at_exit)
    return handle


def _clock_option(
    clock: object, deprecated: dict[str, Any]
) -> tuple[ClockCompensation | None, TimestampRewriter | None]:
    """``configure(clock=...)`` (or its 0.1.0 keywords) → the compensation to start, if
    any, and the rewriter to put in front of the OTLP exporters."""
    unknown = sorted(set(deprecated) - set(_CLOCK_KEYWORDS))
    if unknown:
        raise TypeError(f"configure() got an unexpected keyword argument {unknown[0]!r}")
    if deprecated:
        if clock is not None:
            raise ValueError(f"clock= replaces {', '.join(sorted(deprecated))}: give only clock=")
        warnings.warn(
            f"configure({', '.join(f'{k}=' for k in sorted(deprecated))}) is deprecated: pass "
            "clock= a reference string, a ClockCompensation.create(...) or a TimestampRewriter",
            DeprecationWarning,
            stacklevel=3,
        )
        probing = sorted(set(deprecated) & {"clock_key", "clock_interval", "clock_max_adjust"})
        if probing and deprecated.get("clock_reference") is None:
            # 0.1.0 ignored these without a reference; a setting that does nothing is a mistake.
            raise ValueError(
                f"{', '.join(f'{k}=' for k in probing)} set how clock_reference= is probed, "
                "but no clock_reference= was given"
            )
        clock = _legacy_clock(**deprecated)
    if clock is None:
        return None, None
    if isinstance(clock, str):
        clock = ClockCompensation.create(clock)
    if isinstance(clock, ClockCompensation):
        return clock, clock.corrector
    if isinstance(clock, TimestampRewriter):
        return None, clock
    raise TypeError(
        "clock must be a reference string ('ntp://host', 'redis://host:6379', 'host:port'), a "
        f"ClockCompensation or a TimestampRewriter, got {type(clock).__name__}"
    )


def _legacy_clock(
    clock_reference: str | None = None,
    clock_key: bytes | NtpKey | str | None = None,
    clock_interval: float = DEFAULT_INTERVAL,
    clock_max_adjust: float = DEFAULT_MAX_ADJUST,
    timestamp_rewriter: object = None,
) -> object:
    """The 0.1.0 keywords as one ``clock=`` value (checked as they were)."""
    if timestamp_rewriter is not None:
        if not isinstance(timestamp_rewriter, TimestampRewriter):
            raise TypeError("timestamp_rewriter must have rewrite_spans() and rewrite_metrics()")
        if clock_reference is not None:
            raise ValueError("clock_reference and timestamp_rewriter are exclusive")
        return timestamp_rewriter
    if clock_reference is None:
        return None
    return ClockCompensation.create(
        clock_reference, key=clock_key, interval=clock_interval, max_adjust=clock_max_adjust
    )


def _undo_quietly(started: ExitStack, undo: Callable[[], object]) -> None:
    """Stop ``undo``'s part if a later one fails; a failure while stopping is logged, so
    that the error reported is the one that stopped ``configure()``."""

    def quietly() -> None:
        try:
            undo()
        except Exception:
            _log.debug("cleanup after a failed configure() raised", exc_info=True)

    started.callback(quietly)


def _start_prometheus(started: ExitStack, settings: ExportSettings) -> PrometheusEndpoint | None:
    """The scrape endpoint, listening (the one part that can fail on the network)."""
    if settings.prometheus is None:
        return None
    endpoint = PrometheusEndpoint.start(*settings.prometheus)
    _undo_quietly(started, endpoint.close)
    return endpoint


class _SpanExport:
    """Traces over OTLP: the exporter (behind the rewriter) and its accounting."""

    def __init__(self, exporter: CountingSpanExporter, accounting: SpanAccounting) -> None:
        self.exporter = exporter
        self.accounting = accounting

    def processor(self) -> SpanProcessor:
        return self.accounting.processor(self.exporter)


def _start_traces(
    started: ExitStack, settings: ExportSettings, rewriter: TimestampRewriter | None
) -> _SpanExport | None:
    if settings.traces is None:
        return None
    exporter: SpanExporter = _exporter("traces", settings.traces)
    _undo_quietly(started, exporter.shutdown)
    if rewriter is not None:
        exporter = RewritingSpanExporter(exporter, rewriter)
    accounting = SpanAccounting()
    return _SpanExport(accounting.wrap(exporter), accounting)


class _MetricExport:
    """Metrics over OTLP: the guarded exporter and the periodic reader that drives it."""

    def __init__(self, exporter: GuardedMetricExporter, reader: MetricReader) -> None:
        self.exporter = exporter
        self.reader = reader


def _start_metric_export(
    started: ExitStack, settings: ExportSettings, rewriter: TimestampRewriter | None
) -> _MetricExport | None:
    if settings.metrics is None:
        return None
    exporter: MetricExporter = _exporter("metrics", settings.metrics)
    if rewriter is not None:
        exporter = RewritingMetricExporter(exporter, rewriter)
    guarded = GuardedMetricExporter(exporter, settings.metrics.endpoint)
    reader = PeriodicExportingMetricReader(
        guarded,
        export_interval_millis=settings.export_interval_s * 1000.0,
        export_timeout_millis=settings.export_timeout_s * 1000.0,
    )
    _undo_quietly(started, lambda: reader.shutdown(timeout_millis=1000))  # its thread runs now
    return _MetricExport(guarded, reader)


def _start_meter_provider(
    started: ExitStack,
    resource: Resource,
    source: Registry,
    readers: list[MetricReader],
    endpoint: PrometheusEndpoint | None,
    *,
    exemplars: bool,
) -> MeterProvider:
    """The meter provider, every reader attached to the contract's registry."""
    scrape_exemplars: OpenMetricsExemplars | None = None
    if endpoint is not None:
        readers = [*readers, endpoint.reader]
        if exemplars:
            scrape_exemplars = OpenMetricsExemplars()
            endpoint.collector.exemplars = scrape_exemplars.apply
    # No exit handler of the SDK's: Telemetry shuts the provider down at exit, within
    # its bound.  (The SDK registers its handler before it checks the readers, so a
    # reader already registered elsewhere also left a half-made provider to shut
    # down that reader, and ours again, at exit.)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, shutdown_on_exit=False
    )
    _undo_quietly(started, lambda: meter_provider.shutdown(timeout_millis=1000))
    for reader in readers:
        scraped = endpoint is not None and reader is endpoint.reader
        attach(
            reader,
            resource=resource,
            registry=source,
            uniform_attributes=scraped and endpoint is not None and endpoint.uniform_attributes,
            observe=scrape_exemplars.observe if scraped and scrape_exemplars else None,
        )
    return meter_provider


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
