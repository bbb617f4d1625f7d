"""Settings: argument > OTEL_* environment > default, and clear errors for bad values."""

from __future__ import annotations

from typing import Any

import pytest

from schedobs.export._settings import DEFAULT, resolve_settings


def _resolve(env: dict[str, str] | None = None, **kwargs: Any):
    args: dict[str, Any] = {
        "service_name": None,
        "zone": None,
        "otlp_endpoint": None,
        "otlp_protocol": None,
        "export_interval": None,
        "export_timeout": None,
        "prometheus": DEFAULT,
    }
    args.update(kwargs)
    return resolve_settings(env=env or {}, **args)


def _url(s, signal: str) -> str | None:  # type: ignore[no-untyped-def]
    sig = s.signal(signal)
    return None if sig is None else sig.endpoint


def test_defaults() -> None:
    s = _resolve()
    assert s.prometheus == ("127.0.0.1", 9464)
    assert s.export_interval_s == 10.0
    assert not s.otlp_enabled and s.traces is None and s.metrics is None


def test_environment_is_honoured() -> None:
    s = _resolve(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "2500",
            "OTEL_METRIC_EXPORT_TIMEOUT": "700",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "::1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "9999",
        }
    )
    assert s.traces is not None and s.metrics is not None
    assert s.traces.protocol == s.metrics.protocol == "http/protobuf"
    assert s.export_interval_s == 2.5
    assert s.export_timeout_s == 0.7
    assert s.prometheus == ("::1", 9999)


def test_arguments_win_over_environment() -> None:
    s = _resolve(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_METRIC_EXPORT_INTERVAL": "1",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://elsewhere:4318/v1/traces",
        },
        otlp_endpoint="http://127.0.0.1:4318/",
        otlp_protocol="http/protobuf",
        export_interval=3,
        prometheus=None,
    )
    assert _url(s, "metrics") == "http://127.0.0.1:4318/v1/metrics"
    assert _url(s, "traces") == "http://127.0.0.1:4318/v1/traces"
    assert s.traces is not None and s.traces.source == "otlp_endpoint"
    assert s.export_interval_s == 3.0
    assert s.prometheus is None


def test_grpc_endpoint_is_passed_as_is() -> None:
    s = _resolve(otlp_endpoint="http://127.0.0.1:4317")
    assert _url(s, "traces") == _url(s, "metrics") == "http://127.0.0.1:4317"


# --- OTEL_* exporter variables, one by one, as the specification says -------------


def test_the_generic_endpoint_gets_the_signal_path_for_http() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base/", "OTEL_EXPORTER_OTLP_PROTOCOL":
           "http/protobuf"}  # fmt: skip
    s = _resolve(env)
    assert _url(s, "traces") == "http://c:4318/base/v1/traces"
    assert _url(s, "metrics") == "http://c:4318/base/v1/metrics"


def test_the_generic_endpoint_is_taken_as_is_for_grpc() -> None:
    s = _resolve({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert _url(s, "traces") == _url(s, "metrics") == "http://c:4317"


def test_a_per_signal_endpoint_is_used_as_given() -> None:
    # Before: /v1/traces was appended to a URL that already ended in it.
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://phoenix:6006/v1/traces",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://vm:8428/opentelemetry/v1/metrics",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    s = _resolve(env)
    assert _url(s, "traces") == "http://phoenix:6006/v1/traces"
    assert _url(s, "metrics") == "http://vm:8428/opentelemetry/v1/metrics"
    assert s.traces is not None and s.traces.source == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def test_only_a_traces_endpoint_creates_no_metric_exporter() -> None:
    # Before: the metric exporter was created too, aimed at the SDK's guess (localhost:4317).
    s = _resolve({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://phoenix:6006/v1/traces"})
    assert s.traces is not None and s.metrics is None


def test_per_signal_protocols_apply_to_their_own_signal() -> None:
    # Before: the metrics protocol variable won for both signals.
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    s = _resolve(env)
    assert s.traces is not None and s.metrics is not None
    assert (s.traces.protocol, s.metrics.protocol) == ("http/protobuf", "grpc")
    assert _url(s, "traces") == "http://c:4318/v1/traces"
    assert _url(s, "metrics") == "http://c:4318"
    s = _resolve({**env, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"})
    assert s.metrics is not None and s.metrics.protocol == "http/protobuf"


@pytest.mark.parametrize(
    ("variable", "value", "traces", "metrics", "prometheus"),
    [
        ("OTEL_TRACES_EXPORTER", "none", False, True, True),
        ("OTEL_TRACES_EXPORTER", "otlp", True, True, True),
        ("OTEL_METRICS_EXPORTER", "none", True, False, False),
        ("OTEL_METRICS_EXPORTER", "otlp", True, True, False),
        ("OTEL_METRICS_EXPORTER", "prometheus", True, False, True),
        ("OTEL_METRICS_EXPORTER", "otlp, Prometheus", True, True, True),
    ],
)
def test_exporter_variables_switch_a_signal(
    variable: str, value: str, traces: bool, metrics: bool, prometheus: bool
) -> None:
    s = _resolve({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", variable: value})
    assert (s.traces is not None, s.metrics is not None, s.prometheus is not None) == (
        traces, metrics, prometheus,
    )  # fmt: skip


def test_arguments_switch_signals_over_the_variables() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_METRICS_EXPORTER": "none"}
    s = _resolve(env, otlp_metrics=True, otlp_traces=False)
    assert s.traces is None and s.metrics is not None
    # An explicit prometheus argument wins over OTEL_METRICS_EXPORTER.
    assert _resolve(env, prometheus="127.0.0.1:0").prometheus == ("127.0.0.1", 0)


@pytest.mark.parametrize(
    ("kwargs", "env", "error", "match"),
    [
        ({"otlp_endpoint": "127.0.0.1:4317"}, {}, ValueError, "http or https scheme"),
        ({"otlp_endpoint": "http://127.0.0.1:99999"}, {}, ValueError, "invalid port"),
        ({"otlp_endpoint": 4317}, {}, TypeError, "otlp_endpoint must be a str"),
        ({"otlp_protocol": "http/json"}, {}, ValueError, "otlp_protocol must be one of grpc"),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}, ValueError, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"export_interval": 0}, {}, ValueError, "export_interval must be a finite"),
        ({"export_interval": float("nan")}, {}, ValueError, "export_interval"),
        ({"export_interval": "10"}, {}, TypeError, "export_interval must be a number"),
        ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, ValueError, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"prometheus": "9464"}, {}, ValueError, "prometheus must look like"),
        ({"prometheus": "127.0.0.1:70000"}, {}, ValueError, r"\(port 0..65535"),
        ({}, {"OTEL_EXPORTER_PROMETHEUS_PORT": "x"}, ValueError, "OTEL_EXPORTER_PROMETHEUS_PORT"),
        ({"service_name": ""}, {}, ValueError, "service_name must not be empty"),
        ({"zone": 3}, {}, TypeError, "zone must be a str"),
        ({"otlp_endpoint": "http://c:4318/v1/traces"}, {}, ValueError, "already ends in /v1/t"),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c/v1/metrics"}, ValueError, "base URL"),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "c:4318"}, ValueError, "TRACES_ENDPOINT"),
        ({}, {"OTEL_TRACES_EXPORTER": "zipkin"}, ValueError, "OTEL_TRACES_EXPORTER='zipkin'"),
        ({}, {"OTEL_METRICS_EXPORTER": "none,otlp"}, ValueError, "cannot be combined"),
        ({"otlp_traces": True}, {}, ValueError, "otlp_traces=True but no OTLP endpoint"),
        ({"otlp_metrics": "yes"}, {}, TypeError, "otlp_metrics must be a bool"),
        (
            {},
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "json",
            },
            ValueError,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
    ],
)
def test_bad_settings_are_clear_errors(
    kwargs: dict[str, Any], env: dict[str, str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _resolve(env, **kwargs)


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc", "OTEL_EXPORTER_OTLP_TIMEOUT must be a number"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-3", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT must be"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "nan", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT must be"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zip", "OTEL_EXPORTER_OTLP_COMPRESSION must be one of"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "br", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "OTEL_METRIC_EXPORT_INTERVAL must be a number"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "http", "OTEL_EXPORTER_PROMETHEUS_PORT must be a port"),
    ],
)  # fmt: skip
def test_every_otel_parse_error_names_its_variable(var: str, value: str, message: str) -> None:
    """OTEL_EXPORTER_OTLP_TIMEOUT=abc failed in the gRPC exporter with "could not convert
    string to float: 'abc'", naming nothing."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", var: value}
    with pytest.raises(ValueError, match=message):
        _resolve(env)


def test_exporter_variables_of_a_signal_that_is_off_are_not_read() -> None:
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317/v1/traces",
           "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "abc"}  # fmt: skip
    assert _resolve(env).metrics is None


def test_otel_sdk_disabled_turns_off_every_export_and_the_prometheus_endpoint() -> None:
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    settings = _resolve(env, prometheus="127.0.0.1:0")
    assert (settings.traces, settings.metrics, settings.prometheus) == (None, None, None)
    assert _resolve({"OTEL_SDK_DISABLED": "false"}, prometheus="127.0.0.1:0").prometheus
