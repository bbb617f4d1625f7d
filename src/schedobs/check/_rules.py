"""Contract rules shared by the Prometheus and OTLP checkers."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from schedobs.contract import Contract, MetricSpec

from ._report import Finding, Report

__all__ = ["Findings", "attribute_problems", "close_match"]


class Findings:
    """Collects violations and warnings while a checker walks its input."""

    def __init__(self) -> None:
        self.violations: list[Finding] = []
        self.warnings: list[Finding] = []
        self.series: dict[str, int] = {}

    def violation(
        self, metric: str, rule: str, message: str, series: Mapping[str, str] | None = None
    ) -> None:
        self.violations.append(Finding(metric, rule, message, series))

    def warning(self, metric: str, rule: str, message: str) -> None:
        self.warnings.append(Finding(metric, rule, message))

    def report(self, source: str, contract: Contract) -> Report:
        """Freeze the findings into a :class:`Report`."""
        return Report(
            source=source,
            contract_version=contract.version,
            violations=tuple(self.violations),
            warnings=tuple(self.warnings),
            series=dict(self.series),
        )

    def count_series(self, spec: MetricSpec) -> None:
        self.series[spec.name] = self.series.get(spec.name, 0) + 1

    def missing(
        self,
        contract: Contract,
        seen: Iterable[str],
        strict: bool,
        name_of: str,
        allow_empty: bool = False,
    ) -> None:
        """Report required metrics that were not seen (``name_of``: 'otel' or 'prometheus').

        Output with no contract metric at all is a violation unless ``allow_empty``:
        pointed at the wrong port (another exporter, an empty page), a check must
        not pass.
        """
        seen_set = set(seen)
        if not seen_set and not allow_empty:
            self.violation(
                "(output)",
                "no-contract-metrics",
                "no metric of the contract (scheduler_*, clock_*, schedobs_*) is in this output: "
                "is it the right endpoint? (--allow-empty accepts a target that has none yet)",
            )
        for spec in contract.metrics:
            name = spec.name if name_of == "otel" else spec.prometheus_name
            if spec.required and name not in seen_set:
                message = "required contract metric is absent"
                if strict:
                    self.violation(name, "missing-metric", message)
                else:
                    self.warning(
                        name, "missing-metric", message + " (a metric may appear only after its "
                        "first event; use --strict to make this a violation)",
                    )  # fmt: skip


def attribute_problems(
    spec: MetricSpec,
    attributes: Mapping[str, str],
    contract: Contract,
    key_of: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """``(rule, message)`` for every way ``attributes`` break ``spec``.

    ``key_of`` maps the exposed key (a Prometheus label) back to the contract
    key; ``None`` means the keys are contract keys already (OTLP).
    """
    problems: list[tuple[str, str]] = []
    mapped: dict[str, str] = {}
    for exposed, value in attributes.items():
        key = exposed if key_of is None else key_of.get(exposed)
        if key is None or key not in spec.attributes:
            allowed = ", ".join(
                spec.attributes if key_of is None else
                (contract.attributes[a].prometheus_label for a in spec.attributes)
            )  # fmt: skip
            problems.append(
                (
                    "unknown-attribute",
                    f"attribute {exposed!r} is not allowed here (allowed: {allowed})",
                )
            )
            continue
        mapped[key] = value
    for key in spec.required_attributes:
        if key not in mapped:
            problems.append(("missing-attribute", f"required attribute {key!r} is missing"))
    for key, value in mapped.items():
        attr = contract.attributes.get(key)
        if attr is not None and attr.values is not None and value not in attr.values:
            problems.append(
                (
                    "bad-attribute-value",
                    f"{key}={value!r} is not one of {', '.join(attr.values)}",
                )
            )
        elif not value:
            problems.append(("bad-attribute-value", f"{key} is empty"))
    return problems


def close_match(name: str, candidates: Iterable[str]) -> str:
    """A 'did you mean' suffix for an unknown name, or ''."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""
