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


def test_defaults() -> None:
    s = _resolve()
    assert s.prometheus == ("127.0.0.1", 9464)
    assert s.export_interval_s == 10.0
    assert s.otlp_protocol == "grpc"
    assert not s.otlp_enabled


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
    assert s.otlp_enabled and s.otlp_from_env and s.otlp_endpoint is None
    assert s.signal_endpoint("metrics") is None  # the exporter reads the env itself
    assert s.otlp_protocol == "http/protobuf"
    assert s.export_interval_s == 2.5
    assert s.export_timeout_s == 0.7
    assert s.prometheus == ("::1", 9999)


def test_arguments_win_over_environment() -> None:
    s = _resolve(
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_METRIC_EXPORT_INTERVAL": "1"},
        otlp_endpoint="http://127.0.0.1:4318/",
        otlp_protocol="http/protobuf",
        export_interval=3,
        prometheus=None,
    )
    assert s.otlp_endpoint == "http://127.0.0.1:4318/"
    assert s.signal_endpoint("metrics") == "http://127.0.0.1:4318/v1/metrics"
    assert s.signal_endpoint("traces") == "http://127.0.0.1:4318/v1/traces"
    assert s.export_interval_s == 3.0
    assert s.prometheus is None


def test_grpc_endpoint_is_passed_as_is() -> None:
    s = _resolve(otlp_endpoint="http://127.0.0.1:4317")
    assert s.signal_endpoint("traces") == "http://127.0.0.1:4317"


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
        ({"prometheus": "127.0.0.1:70000"}, {}, ValueError, "port must be 0..65535"),
        ({}, {"OTEL_EXPORTER_PROMETHEUS_PORT": "x"}, ValueError, "OTEL_EXPORTER_PROMETHEUS_PORT"),
        ({"service_name": ""}, {}, ValueError, "service_name must not be empty"),
        ({"zone": 3}, {}, TypeError, "zone must be a str"),
    ],
)
def test_bad_settings_are_clear_errors(
    kwargs: dict[str, Any], env: dict[str, str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _resolve(env, **kwargs)
