"""Clock compensation wired into export: estimator, prober, corrector and clock metrics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider

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

__all__ = ["ClockCompensation"]


@dataclass
class ClockCompensation:
    """The parts :func:`schedobs.configure` builds for ``clock_reference``."""

    estimator: OffsetEstimator
    prober: ClockProber
    corrector: ClockCorrector

    @classmethod
    def create(
        cls,
        reference: str,
        *,
        key: bytes | NtpKey | str | None,
        interval: float,
        max_adjust: float,
    ) -> ClockCompensation:
        if not (isinstance(max_adjust, (int, float)) and max_adjust > 0):
            raise ValueError(
                f"clock_max_adjust must be a number of seconds > 0, got {max_adjust!r}"
            )
        estimator = estimator_for(reference)
        prober = ClockProber(reference, estimator, interval=interval, key=key)
        corrector = ClockCorrector(estimator, max_adjust_ns=int(max_adjust * 1e9))
        return cls(estimator, prober, corrector)

    def start(self) -> None:
        self.prober.start()

    def close(self) -> None:
        self.prober.close()

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
