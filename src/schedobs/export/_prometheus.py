"""The Prometheus scrape endpoint: an SDK Prometheus reader behind its own HTTP server."""

from __future__ import annotations

import errno
import inspect
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import Metric

from ._sdk import UnsupportedSdkError

__all__ = ["PrometheusEndpoint"]


class _PullReader(PrometheusMetricReader):
    """The SDK's Prometheus reader, minus one trap.

    ``MeterProvider.force_flush()`` calls ``force_flush`` on every reader; the
    SDK's Prometheus reader then collects and queues a snapshot that the next
    scrape exposes *beside* its own, so every series appears twice (Prometheus
    rejects the scrape's duplicates).  A pull reader has nothing to flush.
    """

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if getattr(self, "_schedobs_moved", False):
            return  # its collector is in our registry, not the global one it would leave
        super().shutdown(timeout_millis=timeout_millis, **kwargs)


class _SerializedCollector:
    """Serves one scrape at a time, one family per metric name.

    Each scrape makes the reader collect and queue a snapshot, then drains the
    queue; two concurrent scrapes could each drain the other's snapshot
    (duplicates in one, nothing in the other).  Scrapes are rare and cheap, so
    a lock costs nothing that matters.

    Exporter releases before 0.63b0 emit one family per *attribute set*, so a
    metric with an optional attribute (``scheduler.tenant``) appears twice under
    the same name, which the Prometheus server refuses.  Such families are
    merged into one, with the missing labels empty (Prometheus reads an empty
    label as an absent one), as later releases do themselves.
    """

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        #: Adds exemplars to the families (set by configure(); None: none).
        self.exemplars: Callable[[list[Any]], list[Any]] | None = None

    def collect(self) -> list[Any]:
        with self._lock:
            families = list(self._inner.collect())
        if self.exemplars is not None:
            families = self.exemplars(families)
        by_name: dict[str, list[Any]] = {}
        for family in families:
            by_name.setdefault(family.name, []).append(family)
        if all(len(group) == 1 for group in by_name.values()):
            return families
        return [group[0] if len(group) == 1 else _merged(group) for group in by_name.values()]


def _merged(group: list[Any]) -> Metric:
    first = group[0]
    keys = {key for family in group for sample in family.samples for key in sample.labels}
    keys -= {"le", "quantile"}  # per-sample labels of histograms and summaries
    merged = Metric(first.name, first.documentation, first.type, first.unit)
    for family in group:
        for sample in family.samples:
            labels = dict.fromkeys(keys, "") | dict(sample.labels)
            merged.samples.append(sample._replace(labels=labels))
    return merged


def _private_reader(private: CollectorRegistry) -> _PullReader:
    """A reader whose collector lives in ``private``, not in ``prometheus_client``'s global.

    Releases from 0.63b0 take ``registry=``; older ones (0.51b0 with SDK 1.30 to 0.62b0)
    register their collector (``_collector``) in the global registry, from which
    it is moved here.
    """
    if "registry" in inspect.signature(PrometheusMetricReader.__init__).parameters:
        return _PullReader(registry=private)  # type: ignore[call-arg, unused-ignore]
    reader = _PullReader()
    collector = getattr(reader, "_collector", None)
    if collector is None:
        raise UnsupportedSdkError(
            "opentelemetry-exporter-prometheus has neither a registry= argument nor the "
            "_collector schedobs moves out of the global registry; schedobs supports "
            ">=0.51b0,<1 (tested at both ends)"
        )
    REGISTRY.unregister(collector)
    private.register(collector)
    reader._schedobs_moved = True  # type: ignore[attr-defined]
    return reader


class PrometheusEndpoint:
    """A ``PrometheusMetricReader`` served on ``http://host:port/metrics``.

    Each endpoint has its own ``CollectorRegistry`` rather than
    ``prometheus_client``'s global one, so two configurations in one process
    (tests, or a library and its host) never collide.
    """

    def __init__(
        self,
        reader: PrometheusMetricReader,
        server: Any,
        thread: threading.Thread,
        collector: _SerializedCollector,
    ):
        self.reader = reader
        self.collector = collector
        #: Whether the exporter release needs every point of a metric to carry the
        #: same attribute keys (before 0.63b0: see ``attach(uniform_attributes=)``).
        self.uniform_attributes = bool(getattr(reader, "_schedobs_moved", False))
        self._server = server
        self._thread = thread

    @classmethod
    def start(cls, host: str, port: int) -> PrometheusEndpoint:
        """Listen on ``host:port`` (port 0: a free port) and serve in a daemon thread."""
        private = CollectorRegistry(auto_describe=False)
        reader = _private_reader(private)
        registry = CollectorRegistry(auto_describe=False)
        collector = _SerializedCollector(private)
        registry.register(collector)
        try:
            server, thread = _serve(host, port, registry)
        except OSError as exc:
            hint = (
                " (address in use: another process serves it; choose another port or "
                "prometheus='127.0.0.1:0')"
                if exc.errno == errno.EADDRINUSE
                else ""
            )
            raise OSError(
                exc.errno, f"cannot serve Prometheus metrics on {host}:{port}: {exc.strerror}{hint}"
            ) from exc
        return cls(reader, server, thread, collector)

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The scrape URL."""
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


# The scrape server: prometheus_client's WSGI app on our own server loop, which notices
# a shutdown request within _POLL_S (prometheus_client's start_http_server polls every
# 0.5 s, which made Telemetry.shutdown(timeout) overrun its bound by that much).
_POLL_S = 0.02


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's name
        """No access log on stderr for every scrape."""


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def _serve(
    host: str, port: int, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread]:
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, make_wsgi_app(registry), server_class, _Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(_POLL_S,), name="schedobs-prometheus", daemon=True
    )
    thread.start()
    return server, thread
