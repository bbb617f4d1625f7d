"""Clock compensation wired into export: estimator, prober, corrector and clock metrics.

:func:`schedobs.configure` builds one from a ``clock=`` reference, or takes one made
here; a service whose OpenTelemetry was set up elsewhere builds one itself and
wraps its own exporters (:meth:`ClockCompensation.wrap_span_exporter`) or lets
:func:`attach_clock` wrap those its providers already have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from schedobs._checks import is_number
from schedobs.clock import (
    ClockCorrector,
    ClockProber,
    NtpKey,
    OffsetEstimator,
    estimator_for,
)
from schedobs.contract import (
    CLOCK_LAST_SAMPLE,
    CLOCK_OFFSET,
    CLOCK_PROBE_OUTCOME,
    CLOCK_PROBE_RTT,
    CLOCK_PROBES,
    CLOCK_UNCERTAINTY,
)

from ._rewrite import RewritingMetricExporter, RewritingSpanExporter

__all__ = ["ClockCompensation"]

#: The defaults :func:`schedobs.configure` uses for a ``clock=`` reference string.
DEFAULT_INTERVAL = 5.0
DEFAULT_MAX_ADJUST = 1.0


@dataclass
class ClockCompensation:
    """Clock compensation against one reference: its estimator, prober and corrector.

    Build it with :meth:`create`, :meth:`start` it, and put :attr:`corrector`
    in front of the exporters (:meth:`wrap_span_exporter`,
    :meth:`wrap_metric_exporter`) — or let :func:`attach_clock` do both for
    providers that already exist.  :meth:`close` stops the prober.

    Example (a service that builds its own ``TracerProvider``)::

        clock = ClockCompensation.create("ntp://time.internal").start()
        exporter = clock.wrap_span_exporter(OTLPSpanExporter())
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    """

    estimator: OffsetEstimator
    prober: ClockProber
    corrector: ClockCorrector
    _started: bool = field(default=False, init=False, repr=False)

    @classmethod
    def create(
        cls,
        reference: str,
        *,
        key: bytes | NtpKey | str | None = None,
        interval: float = DEFAULT_INTERVAL,
        max_adjust: float = DEFAULT_MAX_ADJUST,
    ) -> ClockCompensation:
        """``reference``: ``"ntp://host[:port]"``, ``"redis://host:port"`` or the
        ``"host:port"`` of ``schedobs clock serve``; ``key``: authenticates probes
        (NTP: an :class:`NtpKey` or a chrony key line; ``host:port``: a shared secret
        of >= 16 bytes; Redis: none, its password is in the URL); ``interval``: seconds
        between probe bursts; ``max_adjust``: the largest correction applied, in seconds."""
        if not (is_number(max_adjust) and max_adjust > 0):
            raise ValueError(f"max_adjust must be a number of seconds > 0, got {max_adjust!r}")
        estimator = estimator_for(reference)
        prober = ClockProber(reference, estimator, interval=interval, key=key)
        corrector = ClockCorrector(estimator, max_adjust_ns=int(max_adjust * 1e9))
        return cls(estimator, prober, corrector)

    def start(self) -> ClockCompensation:
        """Start probing the reference (a background thread); returns ``self``.

        A second call does nothing."""
        if not self._started:
            self._started = True
            self.prober.start()
        return self

    def close(self) -> None:
        """Stop probing.  Corrections stay at the last estimate."""
        self.prober.close()

    def wrap_span_exporter(self, exporter: SpanExporter) -> SpanExporter:
        """``exporter`` behind the corrector: spans leave with corrected times."""
        if isinstance(exporter, RewritingSpanExporter):
            raise ValueError("this span exporter already rewrites timestamps")
        return RewritingSpanExporter(exporter, self.corrector)

    def wrap_metric_exporter(self, exporter: MetricExporter) -> MetricExporter:
        """``exporter`` behind the corrector: data points leave with corrected times."""
        if isinstance(exporter, RewritingMetricExporter):
            raise ValueError("this metric exporter already rewrites timestamps")
        return RewritingMetricExporter(exporter, self.corrector)

    def register_metrics(self, provider: MeterProvider) -> None:
        """The optional clock metrics of the contract, read at collection."""
        meter = provider.get_meter("schedobs.clock")

        def offset(_: CallbackOptions) -> Iterable[Observation]:
            est = self.estimator.estimate()
            return [] if est is None else [Observation(est.offset_ns)]

        def uncertainty(_: CallbackOptions) -> Iterable[Observation]:
            est = self.estimator.estimate()
            return [] if est is None else [Observation(est.uncertainty_ns)]

        def rtt(_: CallbackOptions) -> Iterable[Observation]:
            value = self.prober.last_rtt_ns
            return [Observation(value)] if value else []

        def last_sample(_: CallbackOptions) -> Iterable[Observation]:
            at = self.prober.last_sample_at
            return [] if at is None else [Observation(at)]

        def probes(_: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(count, {CLOCK_PROBE_OUTCOME: outcome})
                for outcome, count in self.prober.outcomes().items()
            ]

        for spec, callback in (
            (CLOCK_OFFSET, offset),
            (CLOCK_UNCERTAINTY, uncertainty),
            (CLOCK_PROBE_RTT, rtt),
            (CLOCK_LAST_SAMPLE, last_sample),
        ):
            meter.create_observable_gauge(
                spec.name, callbacks=[callback], unit=spec.unit, description=spec.description
            )
        meter.create_observable_counter(
            CLOCK_PROBES.name,
            callbacks=[probes],
            unit=CLOCK_PROBES.unit,
            description=CLOCK_PROBES.description,
        )
