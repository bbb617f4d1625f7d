"""Render the contract as a Markdown reference or as JSON (``schedobs contract``)."""

from __future__ import annotations

import json
from typing import Any

from ._spec import CONTRACT, Contract, InstrumentKind, MetricSpec

__all__ = ["contract_as_dict", "render_json", "render_markdown"]


def _fmt_bound(bound: float) -> str:
    return f"{bound:g}"


def _metric_dict(spec: MetricSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": spec.name,
        "instrument": spec.instrument.value,
        "unit": spec.unit,
        "description": spec.description,
        "required": spec.required,
        "required_attributes": list(spec.required_attributes),
        "optional_attributes": list(spec.optional_attributes),
        "prometheus": {
            "name": spec.prometheus_name,
            "type": spec.instrument.prometheus_type,
            "samples": _samples(spec),
        },
    }
    if spec.boundaries is not None:
        out["boundaries"] = list(spec.boundaries)
    return out


def _samples(spec: MetricSpec) -> list[str]:
    name = spec.prometheus_name
    if spec.instrument is InstrumentKind.HISTOGRAM:
        return [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
    return [name]


def contract_as_dict(contract: Contract = CONTRACT) -> dict[str, Any]:
    """The contract as JSON-ready data."""
    return {
        "version": contract.version,
        "metrics": [_metric_dict(spec) for spec in contract.metrics],
        "attributes": [
            {
                "key": attr.key,
                "prometheus_label": attr.prometheus_label,
                "description": attr.description,
                "values": list(attr.values) if attr.values is not None else None,
            }
            for attr in contract.attributes.values()
        ],
    }


def render_json(contract: Contract = CONTRACT) -> str:
    """The contract as an indented JSON document."""
    return json.dumps(contract_as_dict(contract), indent=2)


def render_markdown(contract: Contract = CONTRACT) -> str:
    """The contract as a Markdown reference page."""
    lines = [
        f"# schedobs metric contract v{contract.version}",
        "",
        "| OTel name | instrument | unit | Prometheus name | required | attributes |",
        "|---|---|---|---|---|---|",
    ]
    for spec in contract.metrics:
        attrs = ", ".join(f"`{a}`" for a in spec.required_attributes)
        if spec.optional_attributes:
            attrs += " (optional: " + ", ".join(f"`{a}`" for a in spec.optional_attributes) + ")"
        lines.append(
            f"| `{spec.name}` | {spec.instrument.value} | `{spec.unit}` "
            f"| `{'`, `'.join(_samples(spec))}` | {'yes' if spec.required else 'no'} | {attrs} |"
        )
    lines += ["", "## Metrics", ""]
    for spec in contract.metrics:
        lines += [f"### `{spec.name}`", "", spec.description, ""]
        if spec.boundaries is not None:
            bounds = " ".join(_fmt_bound(b) for b in spec.boundaries)
            lines += [f"Bucket upper bounds ({spec.unit}, inclusive): {bounds}, +Inf.", ""]
    lines += [
        "## Attributes",
        "",
        "| key | Prometheus label | values | meaning |",
        "|---|---|---|---|",
    ]
    for attr in contract.attributes.values():
        values = ", ".join(f"`{v}`" for v in attr.values) if attr.values else "open (bounded)"
        lines.append(
            f"| `{attr.key}` | `{attr.prometheus_label}` | {values} | {attr.description} |"
        )
    lines += [
        "",
        "## Prometheus names",
        "",
        "Prometheus names follow the standard OpenTelemetry translation: dots become `_`, the "
        "unit is spelled as a word suffix (`ms` → `_milliseconds`, `{task}` annotations vanish) "
        "and counters end in `_total`. The same names appear on the scrape endpoint and after "
        "Prometheus' own OTLP ingestion, so one name always means one thing. The exporter also "
        "adds `otel_scope_*` labels; the scrape adds `job` and `instance`. Series that lack an "
        "optional attribute show it as an empty label value, which Prometheus treats as absent.",
        "",
        "The seed contract named the metrics `scheduler_queue_length`, "
        "`scheduler_schedule_latency_ms` and `scheduler_rejected_tasks_total`. The first and "
        "third are exactly the standard translation. For the histogram the translation spells "
        "the unit `milliseconds`, on the scrape path and after OTLP ingestion alike, so the "
        "contract uses `scheduler_schedule_latency_milliseconds`; `schedobs check` flags the "
        "seed spelling and names the right one.",
        "",
    ]
    return "\n".join(lines)
