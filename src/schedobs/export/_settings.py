"""Validated export settings: ``configure(...)`` arguments merged with ``OTEL_*`` variables.

Precedence, as in the OTel SDK: an explicit argument wins, then the standard
environment variable, then the schedobs default.  Every problem is reported
here, before anything is started, with the name of the offending setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = ["DEFAULT", "DEFAULT_PROMETHEUS", "ExportSettings", "resolve_settings"]


class _Default:
    """Marker for "argument not given" where ``None`` means "disabled"."""

    _instance: _Default | None = None

    def __new__(cls) -> _Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
DEFAULT_PROMETHEUS = "127.0.0.1:9464"
DEFAULT_EXPORT_INTERVAL_S = 10.0
DEFAULT_EXPORT_TIMEOUT_S = 10.0

Protocol_ = Literal["grpc", "http/protobuf"]
_PROTOCOLS: tuple[Protocol_, ...] = ("grpc", "http/protobuf")
_ENDPOINT_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@dataclass(frozen=True)
class ExportSettings:
    """Everything :func:`schedobs.configure` needs, validated."""

    service_name: str | None
    zone: str | None
    #: Base OTLP endpoint given as an argument (``None``: see ``otlp_from_env``).
    otlp_endpoint: str | None
    #: OTLP enabled by ``OTEL_EXPORTER_OTLP_*ENDPOINT``; the exporters read those themselves.
    otlp_from_env: bool
    otlp_protocol: Protocol_
    export_interval_s: float
    export_timeout_s: float
    prometheus: tuple[str, int] | None

    @property
    def otlp_enabled(self) -> bool:
        """Whether spans and metrics are sent over OTLP."""
        return self.otlp_endpoint is not None or self.otlp_from_env

    def signal_endpoint(self, signal: Literal["metrics", "traces"]) -> str | None:
        """The endpoint to hand the exporter of ``signal`` (``None``: let it read the env)."""
        if self.otlp_endpoint is None:
            return None
        if self.otlp_protocol == "grpc":
            return self.otlp_endpoint
        # OTLP/HTTP: a base endpoint gets the per-signal path, as
        # OTEL_EXPORTER_OTLP_ENDPOINT does in the specification.
        return self.otlp_endpoint.rstrip("/") + f"/v1/{signal}"


def _optional_text(what: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, got {type(value).__name__}: {value!r}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value


def _seconds(
    what: str, value: object, env_var: str, default: float, env: Mapping[str, str]
) -> float:
    if value is None:
        raw = env.get(env_var)
        if raw is None or not raw.strip():
            return default
        try:
            millis = float(raw)
        except ValueError:
            raise ValueError(f"{env_var} must be a number of milliseconds, got {raw!r}") from None
        value = millis / 1000.0
        what = env_var
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{what} must be a number of seconds, got {type(value).__name__}: {value!r}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _endpoint(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"otlp_endpoint must be a str or None, got {type(value).__name__}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"otlp_endpoint must be a URL with an http or https scheme and a host, "
            f"such as 'http://127.0.0.1:4317'; got {value!r}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"otlp_endpoint has an invalid port: {value!r} ({exc})") from None
    return value


def _protocol(value: object, env: Mapping[str, str]) -> Protocol_:
    source = "otlp_protocol"
    if value is None:
        for var in (
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ):
            if env.get(var, "").strip():
                value, source = env[var].strip(), var
                break
        else:
            return "grpc"
    for proto in _PROTOCOLS:
        if value == proto:
            return proto
    raise ValueError(f"{source} must be one of {', '.join(_PROTOCOLS)}; got {value!r}")


def parse_host_port(what: str, value: object) -> tuple[str, int]:
    """Parse ``"host:port"`` (``"[::1]:9464"`` for IPv6); port 0 picks a free port."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a 'host:port' str or None, got {type(value).__name__}")
    host, sep, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{what} must look like '127.0.0.1:9464', got {value!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{what} port must be 0..65535, got {port}")
    return host, port


def _prometheus(value: object, env: Mapping[str, str]) -> tuple[str, int] | None:
    if value is None:
        return None
    if value is DEFAULT:
        host = env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "").strip()
        port = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "").strip()
        default_host, default_port = parse_host_port("prometheus", DEFAULT_PROMETHEUS)
        if port and not port.isdigit():
            raise ValueError(f"OTEL_EXPORTER_PROMETHEUS_PORT must be a port number, got {port!r}")
        value = f"{host or default_host}:{port or default_port}"
    return parse_host_port("prometheus", value)


def resolve_settings(
    *,
    service_name: object,
    zone: object,
    otlp_endpoint: object,
    otlp_protocol: object,
    export_interval: object,
    export_timeout: object,
    prometheus: object,
    env: Mapping[str, str] | None = None,
) -> ExportSettings:
    """Merge arguments with the environment and validate them all."""
    env = os.environ if env is None else env
    endpoint = None if otlp_endpoint is None else _endpoint(otlp_endpoint)
    return ExportSettings(
        service_name=_optional_text("service_name", service_name),
        zone=_optional_text("zone", zone),
        otlp_endpoint=endpoint,
        otlp_from_env=endpoint is None and any(env.get(v, "").strip() for v in _ENDPOINT_VARS),
        otlp_protocol=_protocol(otlp_protocol, env),
        export_interval_s=_seconds(
            "export_interval", export_interval, "OTEL_METRIC_EXPORT_INTERVAL",
            DEFAULT_EXPORT_INTERVAL_S, env,
        ),
        export_timeout_s=_seconds(
            "export_timeout", export_timeout, "OTEL_METRIC_EXPORT_TIMEOUT",
            DEFAULT_EXPORT_TIMEOUT_S, env,
        ),
        prometheus=_prometheus(prometheus, env),
    )  # fmt: skip
