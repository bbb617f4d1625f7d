"""Validated export settings: ``configure(...)`` arguments merged with ``OTEL_*`` variables.

Precedence, as in the OTel SDK: an explicit argument wins, then the standard
environment variable, then the schedobs default.  Every problem is reported
here, before anything is started, with the name of the offending setting.

OTLP is resolved per signal (traces, metrics), as the specification's
exporter variables say:

* endpoint: ``otlp_endpoint`` (a base URL) > ``OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT``
  (used as given) > ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL).  A base URL
  gets ``/v1/traces`` or ``/v1/metrics`` appended for ``http/protobuf``; gRPC
  takes it as it is.  With none of them the signal is not sent: schedobs
  never guesses a collector address.
* protocol: ``otlp_protocol`` > ``OTEL_EXPORTER_OTLP_{SIGNAL}_PROTOCOL`` >
  ``OTEL_EXPORTER_OTLP_PROTOCOL`` > ``grpc``.
* on or off: ``otlp_traces``/``otlp_metrics`` > ``OTEL_TRACES_EXPORTER`` /
  ``OTEL_METRICS_EXPORTER`` (``otlp``, ``none``; for metrics also
  ``prometheus``) > on when the signal has an endpoint.  When
  ``OTEL_METRICS_EXPORTER`` is set and the ``prometheus`` argument is not, the
  scrape endpoint is on exactly when the variable lists ``prometheus``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_COMPRESSION,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_COMPRESSION,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRIC_EXPORT_TIMEOUT,
    OTEL_SDK_DISABLED,
)

from schedobs._address import split_host_port
from schedobs._checks import is_number

__all__ = ["DEFAULT", "DEFAULT_PROMETHEUS", "ExportSettings", "OtlpSignal", "resolve_settings"]


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
#: Seconds between metric exports when neither the argument nor
#: ``OTEL_METRIC_EXPORT_INTERVAL`` says: 10, where the SDK's reader defaults to 60.
#: A scheduler's queue length and latency change within seconds, and dashboards and
#: the operations kit's alerts (``for: 1m``) need several points per minute; a
#: Prometheus scrape (usually every 15 s) is unaffected by it.
DEFAULT_EXPORT_INTERVAL_S = 10.0
#: Seconds an export may take: 10, as the SDK's 30 s default would let one slow
#: export hold the next interval's.
DEFAULT_EXPORT_TIMEOUT_S = 10.0

Protocol_ = Literal["grpc", "http/protobuf"]
Signal = Literal["traces", "metrics"]
_PROTOCOLS: tuple[Protocol_, ...] = ("grpc", "http/protobuf")
_EXPORTERS: dict[Signal, tuple[str, ...]] = {
    "traces": ("otlp", "none"),
    "metrics": ("otlp", "prometheus", "none"),
}


@dataclass(frozen=True)
class OtlpSignal:
    """Where and how one signal is sent over OTLP."""

    #: The URL handed to the exporter, per-signal path included for HTTP.
    endpoint: str
    protocol: Protocol_
    #: Where the endpoint came from (an argument or a variable name), for messages.
    source: str


@dataclass(frozen=True)
class ExportSettings:
    """Everything :func:`schedobs.configure` needs, validated."""

    service_name: str | None
    zone: str | None
    #: OTLP traces (``None``: not sent).
    traces: OtlpSignal | None
    #: OTLP metrics (``None``: not sent).
    metrics: OtlpSignal | None
    export_interval_s: float
    export_timeout_s: float
    prometheus: tuple[str, int] | None

    @property
    def otlp_enabled(self) -> bool:
        """Whether any signal is sent over OTLP."""
        return self.traces is not None or self.metrics is not None

    def signal(self, name: Signal) -> OtlpSignal | None:
        return self.traces if name == "traces" else self.metrics


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
    if not is_number(value):
        raise TypeError(
            f"{what} must be a number of seconds, got {type(value).__name__}: {value!r}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def _endpoint(value: object, what: str = "otlp_endpoint") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{what} must be a URL with an http or https scheme and a host, "
            f"such as 'http://127.0.0.1:4317'; got {value!r}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{what} has an invalid port: {value!r} ({exc})") from None
    return value


@dataclass(frozen=True)
class _SignalVariables:
    """The OpenTelemetry environment variables of one signal (the SDK's names)."""

    endpoint: str
    protocol: str
    exporter: str
    timeout: str
    compression: str


_VARIABLES: Final = {
    "traces": _SignalVariables(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
        OTEL_TRACES_EXPORTER,
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
        OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
    ),
    "metrics": _SignalVariables(
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
        OTEL_METRICS_EXPORTER,
        OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
        OTEL_EXPORTER_OTLP_METRICS_COMPRESSION,
    ),
}


def _base(value: str, what: str) -> str:
    """A base URL must not carry a signal's path: it would be appended twice."""
    path = urlsplit(value).path.rstrip("/")
    per_signal = {
        "traces": OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        "metrics": OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
        "logs": OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
    }
    for signal, variable in per_signal.items():
        if path.endswith(f"/v1/{signal}"):
            raise ValueError(
                f"{what} is a base URL (the per-signal paths /v1/traces and /v1/metrics are "
                f"appended to it for http/protobuf), but {value!r} already ends in "
                f"/v1/{signal}; give the base, or a per-signal URL in "
                f"{variable}"
            )
    return value


def _otlp_signal(
    signal: Signal, endpoint: str | None, protocol: object, switch: object,
    env: Mapping[str, str],
) -> OtlpSignal | None:  # fmt: skip
    """One signal's OTLP settings (see the module docstring for the precedence)."""
    names = _VARIABLES[signal]
    proto = _protocol(protocol, env, (names.protocol, OTEL_EXPORTER_OTLP_PROTOCOL))
    if endpoint is not None:
        url, source, base = endpoint, "otlp_endpoint", True
    elif env.get(names.endpoint, "").strip():
        var = names.endpoint
        url, source, base = _endpoint(env[var], var), var, False
    elif env.get(OTEL_EXPORTER_OTLP_ENDPOINT, "").strip():
        var = OTEL_EXPORTER_OTLP_ENDPOINT
        url, source, base = _base(_endpoint(env[var], var), var), var, True
    else:
        url, source, base = None, "", False
    switch_name = f"otlp_{signal}"
    if switch is None:
        wanted = _exporters(signal, env)
        on = url is not None and (wanted is None or "otlp" in wanted)
    elif isinstance(switch, bool):
        if switch and url is None:
            raise ValueError(
                f"{switch_name}=True but no OTLP endpoint is set for {signal}: pass "
                f"otlp_endpoint or set {names.endpoint} or {OTEL_EXPORTER_OTLP_ENDPOINT}"
            )
        on = switch
    else:
        raise TypeError(f"{switch_name} must be a bool or None, got {switch!r}")
    if not on or url is None:
        return None
    if base and proto == "http/protobuf":
        url = url.rstrip("/") + f"/v1/{signal}"
    return OtlpSignal(endpoint=url, protocol=proto, source=source)


def _exporters(signal: Signal, env: Mapping[str, str]) -> tuple[str, ...] | None:
    """``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` as a tuple, ``None`` if unset."""
    var = _VARIABLES[signal].exporter
    raw = env.get(var, "").strip()
    if not raw:
        return None
    names = tuple(name.strip().lower() for name in raw.split(",") if name.strip())
    supported = _EXPORTERS[signal]
    for name in names:
        if name not in supported:
            raise ValueError(
                f"{var}={raw!r}: schedobs sends {signal} with {', '.join(supported)}; "
                f"{name!r} is not one of them"
            )
    if "none" in names and len(names) > 1:
        raise ValueError(f"{var}={raw!r}: 'none' cannot be combined with other exporters")
    return names


def _protocol(value: object, env: Mapping[str, str], variables: tuple[str, ...]) -> Protocol_:
    source = "otlp_protocol"
    if value is None:
        for var in variables:
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
    address = split_host_port(value, allow_zero=True)
    if address is None:
        raise ValueError(
            f"{what} must look like '127.0.0.1:9464' (port 0..65535, 0: any free), got {value!r}"
        )
    return address


def _prometheus(value: object, env: Mapping[str, str]) -> tuple[str, int] | None:
    if value is None:
        return None
    if value is DEFAULT:
        wanted = _exporters("metrics", env)
        if wanted is not None and "prometheus" not in wanted:
            return None  # OTEL_METRICS_EXPORTER names the exporters; it did not name this one
        host = env.get(OTEL_EXPORTER_PROMETHEUS_HOST, "").strip()
        port = env.get(OTEL_EXPORTER_PROMETHEUS_PORT, "").strip()
        default_host, default_port = parse_host_port("prometheus", DEFAULT_PROMETHEUS)
        if port and not port.isdigit():
            raise ValueError(f"{OTEL_EXPORTER_PROMETHEUS_PORT} must be a port number, got {port!r}")
        value = f"{host or default_host}:{port or default_port}"
    return parse_host_port("prometheus", value)


#: OTEL_* variables the OpenTelemetry exporters read themselves when schedobs builds them;
#: checked first, so that a bad value is reported with its variable's name (the gRPC
#: exporter says only "could not convert string to float: 'abc'").
_COMPRESSIONS = ("gzip", "deflate", "none")


def _check_exporter_variables(signals: list[str], env: Mapping[str, str]) -> None:
    for signal in signals:
        names = _VARIABLES[signal]
        for var in (OTEL_EXPORTER_OTLP_TIMEOUT, names.timeout):
            raw = env.get(var, "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{var} must be a number of seconds, got {raw!r}") from None
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{var} must be a number of seconds > 0, got {raw!r}")
        for var in (OTEL_EXPORTER_OTLP_COMPRESSION, names.compression):
            raw = env.get(var, "").strip()
            if raw and raw.lower() not in _COMPRESSIONS:
                raise ValueError(f"{var} must be one of {', '.join(_COMPRESSIONS)}, got {raw!r}")


def sdk_disabled(env: Mapping[str, str] | None = None) -> bool:
    """``OTEL_SDK_DISABLED=true``: the specification's switch for every signal."""
    env = os.environ if env is None else env
    return env.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def resolve_settings(
    *,
    service_name: object,
    zone: object,
    otlp_endpoint: object,
    otlp_protocol: object,
    export_interval: object,
    export_timeout: object,
    prometheus: object,
    otlp_traces: object = None,
    otlp_metrics: object = None,
    env: Mapping[str, str] | None = None,
) -> ExportSettings:
    """Merge arguments with the environment and validate them all."""
    env = os.environ if env is None else env
    endpoint = None if otlp_endpoint is None else _base(_endpoint(otlp_endpoint), "otlp_endpoint")
    traces = _otlp_signal("traces", endpoint, otlp_protocol, otlp_traces, env)
    metrics = _otlp_signal("metrics", endpoint, otlp_protocol, otlp_metrics, env)
    _check_exporter_variables(
        [signal for signal, on in (("traces", traces), ("metrics", metrics)) if on is not None],
        env,
    )
    disabled = sdk_disabled(env)
    return ExportSettings(
        service_name=_optional_text("service_name", service_name),
        zone=_optional_text("zone", zone),
        # OTEL_SDK_DISABLED turns every export off, the Prometheus endpoint included.
        traces=None if disabled else traces,
        metrics=None if disabled else metrics,
        export_interval_s=_seconds(
            "export_interval", export_interval, OTEL_METRIC_EXPORT_INTERVAL,
            DEFAULT_EXPORT_INTERVAL_S, env,
        ),
        export_timeout_s=_seconds(
            "export_timeout", export_timeout, OTEL_METRIC_EXPORT_TIMEOUT,
            DEFAULT_EXPORT_TIMEOUT_S, env,
        ),
        prometheus=None if disabled else _prometheus(prometheus, env),
    )  # fmt: skip
