"""Check a Prometheus text exposition (or a live scrape endpoint) against the contract."""

from __future__ import annotations

import itertools
import math
import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from schedobs.contract import CONTRACT, Contract, InstrumentKind, MetricSpec

from ._report import Report
from ._rules import Findings, attribute_problems, close_match

__all__ = ["check_prometheus_endpoint", "check_prometheus_text"]

#: Families in these namespaces belong to the contract; anything else is ignored.
_NAMESPACES = ("scheduler_", "schedobs_", "clock_")
#: Labels that exporters and scrapers add and the contract does not govern.
_IGNORED_LABEL_PREFIXES = ("otel_scope_",)
_IGNORED_LABELS = frozenset({"job", "instance"})


#: Resource attributes per (job, instance), read from the exposition's ``target_info``.
Resources = dict[tuple[str, str], dict[str, str]]


def _resources(families: list) -> Resources:  # type: ignore[type-arg]
    """The resource attributes each producer declared in ``target_info``.

    A Collector's Prometheus exporter (``resource_constant_labels``,
    ``resource_to_telemetry_conversion``) copies resource attributes onto every
    series; such a label belongs to the producer, not to the contract, and is
    recognised by matching its producer's ``target_info`` (or, for the service
    identity that the OpenTelemetry mapping turns into ``job`` and
    ``instance``, by matching those).
    """
    found: Resources = {}
    for family in families:
        if family.name == "target_info":
            for sample in family.samples:
                labels = dict(sample.labels)
                key = (labels.pop("job", ""), labels.pop("instance", ""))
                found[key] = labels
    return found


def _is_resource_label(key: str, value: str, labels: dict[str, str], resources: Resources) -> bool:
    job, instance = labels.get("job", ""), labels.get("instance", "")
    if key == "service_name":
        return job == value or job.endswith("/" + value)
    if key == "service_namespace":
        return job.startswith(value + "/")
    if key == "service_instance_id":
        return instance == value
    return resources.get((job, instance), {}).get(key) == value


def _labels(labels: dict[str, str], resources: Resources | None = None) -> dict[str, str]:
    # An empty label value is the same as an absent label in Prometheus; the
    # OTel exporter writes one for every attribute another series of the family has.
    return {
        k: v
        for k, v in labels.items()
        if v
        and k not in _IGNORED_LABELS
        and not k.startswith(_IGNORED_LABEL_PREFIXES)
        and k != "le"
        and not (resources is not None and _is_resource_label(k, v, labels, resources))
    }


def _parse_le(text: str) -> float:
    return math.inf if text == "+Inf" else float(text)


def check_prometheus_text(
    text: str,
    *,
    contract: Contract = CONTRACT,
    strict: bool = False,
    source: str = "exposition",
    allow_empty: bool = False,
) -> Report:
    """Validate Prometheus text exposition ``text`` against ``contract``.

    Checks every family in the ``scheduler_``/``schedobs_`` namespaces: that it is
    a contract metric (name with the unit suffix), its type, its label keys and
    closed values, its bucket boundaries and histogram consistency, and value
    ranges.  Absent required metrics are warnings, or violations if ``strict``;
    an exposition with no contract metric at all (the wrong port, another
    exporter's page) is a violation unless ``allow_empty``.
    """
    found = Findings()
    by_name = contract.by_prometheus_name()
    key_of = {attr.prometheus_label: key for key, attr in contract.attributes.items()}
    seen: list[str] = []
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises ValueError and friends, with the line
        found.violation("(exposition)", "unparseable", f"not valid Prometheus text: {exc}")
        return found.report(source, contract)
    resources = _resources(families)
    for family in families:
        exposed = family.name + "_total" if family.type == "counter" else family.name
        if not exposed.startswith(_NAMESPACES):
            continue
        spec = by_name.get(exposed)
        if spec is None:
            # An untyped sample such as `foo_total` keeps its suffix in family.name.
            found.violation(
                exposed,
                "unknown-metric",
                "this name is in the contract's namespace but is not a contract metric"
                + close_match(exposed, by_name),
            )
            continue
        seen.append(exposed)
        if family.type != spec.instrument.prometheus_type:
            found.violation(
                exposed,
                "wrong-type",
                f"exposed as {family.type}, the contract says {spec.instrument.prometheus_type}",
            )
            continue
        _check_duplicates(family.samples, exposed, found)
        if spec.instrument is InstrumentKind.HISTOGRAM:
            _check_histogram(family.samples, spec, exposed, contract, key_of, found, resources)
        else:
            for sample in family.samples:
                labels = _labels(sample.labels, resources)
                _check_labels(spec, exposed, labels, contract, key_of, found)
                if (sample.value < 0 and not spec.signed) or not math.isfinite(sample.value):
                    found.violation(
                        exposed, "bad-value", f"value {sample.value} is not >= 0", labels
                    )
                found.count_series(spec)
    found.missing(contract, seen, strict, "prometheus", allow_empty)
    return found.report(source, contract)


def _check_duplicates(samples: list, exposed: str, found: Findings) -> None:  # type: ignore[type-arg]
    seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    for sample in samples:
        key = (sample.name, frozenset(sample.labels.items()))
        if key in seen:
            found.violation(
                exposed,
                "duplicate-sample",
                f"{sample.name} appears more than once with the same labels "
                "(Prometheus rejects such a scrape)",
                _labels(sample.labels),
            )
        seen.add(key)


def _check_labels(
    spec: MetricSpec,
    exposed: str,
    labels: dict[str, str],
    contract: Contract,
    key_of: dict[str, str],
    found: Findings,
) -> None:
    for rule, message in attribute_problems(spec, labels, contract, key_of):
        found.violation(exposed, rule, message, labels)


def _check_histogram(
    samples: list,  # type: ignore[type-arg]
    spec: MetricSpec,
    exposed: str,
    contract: Contract,
    key_of: dict[str, str],
    found: Findings,
    resources: Resources,
) -> None:
    expected = [*(spec.boundaries or ()), math.inf]
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = defaultdict(
        lambda: {"buckets": []}
    )
    for sample in samples:
        labels = _labels(sample.labels, resources)
        key = tuple(sorted(labels.items()))
        entry = series[key]
        suffix = sample.name[len(exposed) :]
        if suffix == "_bucket":
            try:
                le = _parse_le(sample.labels.get("le", ""))
            except ValueError:
                found.violation(
                    exposed, "bad-buckets", f"bad le={sample.labels.get('le')!r}", labels
                )
                continue
            entry["buckets"].append((le, sample.value))  # type: ignore[attr-defined]
        elif suffix in ("_count", "_sum"):
            entry[suffix] = sample.value
        elif suffix in ("_created", "_gsum", "_gcount"):
            continue
        else:
            found.violation(exposed, "unknown-sample", f"unexpected sample {sample.name}", labels)
    for key, entry in series.items():
        labels = dict(key)
        _check_labels(spec, exposed, labels, contract, key_of, found)
        found.count_series(spec)
        buckets = sorted(entry["buckets"])  # type: ignore[call-overload]
        bounds = [le for le, _ in buckets]
        if bounds != expected:
            extra = sorted(set(bounds) - set(expected))
            missing = sorted(set(expected) - set(bounds))
            found.violation(
                exposed,
                "bad-buckets",
                f"bucket boundaries differ from the contract: missing {_fmt(missing)}, "
                f"unexpected {_fmt(extra)}",
                labels,
            )
        counts = [c for _, c in buckets]
        if any(b < a for a, b in itertools.pairwise(counts)):
            found.violation(exposed, "bad-buckets", "bucket counts are not cumulative", labels)
        if "_count" not in entry or "_sum" not in entry:
            found.violation(exposed, "incomplete-histogram", "missing _count or _sum", labels)
        elif counts and counts[-1] != entry["_count"]:
            found.violation(
                exposed,
                "inconsistent-histogram",
                f"+Inf bucket {counts[-1]} != _count {entry['_count']}",
                labels,
            )


def _fmt(values: list[float]) -> str:
    return (
        "[" + ", ".join("+Inf" if v == math.inf else f"{v:g}" for v in values) + "]"
        if values
        else "none"
    )


def check_prometheus_endpoint(
    url: str,
    *,
    contract: Contract = CONTRACT,
    strict: bool = False,
    timeout: float = 10.0,
    allow_empty: bool = False,
) -> Report:
    """Scrape ``url`` once and check the exposition (see :func:`check_prometheus_text`).

    Raises ``OSError`` (``urllib.error.URLError``) when the endpoint cannot be scraped.
    """
    request = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode("utf-8")
    return check_prometheus_text(
        text, contract=contract, strict=strict, source=url, allow_empty=allow_empty
    )
