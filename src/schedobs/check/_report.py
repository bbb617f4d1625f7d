"""Conformance findings: violations (the output breaks the contract) and warnings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "Report"]


@dataclass(frozen=True)
class Finding:
    """One problem, tied to a metric and, where it applies, one series."""

    metric: str
    rule: str
    message: str
    series: Mapping[str, str] | None = None

    def __str__(self) -> str:
        where = self.metric
        if self.series:
            where += "{" + ",".join(f'{k}="{v}"' for k, v in sorted(self.series.items())) + "}"
        return f"[{self.rule}] {where}: {self.message}"


@dataclass(frozen=True)
class Report:
    """The result of checking one exposition or payload against the contract."""

    source: str
    contract_version: str
    violations: tuple[Finding, ...]
    warnings: tuple[Finding, ...] = ()
    #: Number of series checked per contract metric.
    series: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no contract rule was violated."""
        return not self.violations

    def render_text(self) -> str:
        """A human-readable report, one finding per line."""
        verdict = "conforms to" if self.ok else "VIOLATES"
        lines = [f"{self.source} {verdict} schedobs contract v{self.contract_version}"]
        for name, count in sorted(self.series.items()):
            lines.append(f"  checked {count} series of {name}")
        lines += [f"  violation {v}" for v in self.violations]
        lines += [f"  warning {w}" for w in self.warnings]
        summary = f"{len(self.violations)} violation(s), {len(self.warnings)} warning(s)"
        lines.append(summary)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""

        def item(f: Finding) -> dict[str, Any]:
            return {
                "metric": f.metric,
                "rule": f.rule,
                "message": f.message,
                "series": dict(f.series) if f.series else None,
            }

        return {
            "source": self.source,
            "contract_version": self.contract_version,
            "ok": self.ok,
            "series": dict(self.series),
            "violations": [item(v) for v in self.violations],
            "warnings": [item(w) for w in self.warnings],
        }
