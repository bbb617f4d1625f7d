"""Conformance checking: does an exporter's output follow the contract?

:func:`check_prometheus_text` and :func:`check_prometheus_endpoint` validate a
Prometheus exposition; :func:`check_otlp_metrics` validates an OTLP
``ExportMetricsServiceRequest``.  Each returns a :class:`Report` whose
violations name the metric, the series, the rule and what was expected.
``schedobs check URL`` is the command-line form.

Example::

    from schedobs.check import check_prometheus_endpoint

    report = check_prometheus_endpoint("http://127.0.0.1:9464/metrics")
    if not report.ok:
        print(report.render_text())
"""

from ._otlp import check_otlp_metrics
from ._prometheus import check_prometheus_endpoint, check_prometheus_text
from ._report import Finding, Report

__all__ = [
    "Finding",
    "Report",
    "check_otlp_metrics",
    "check_prometheus_endpoint",
    "check_prometheus_text",
]
