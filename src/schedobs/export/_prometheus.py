"""The Prometheus scrape endpoint: an SDK Prometheus reader behind its own HTTP server."""

from __future__ import annotations

import errno
import threading
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["PrometheusEndpoint"]


class PrometheusEndpoint:
    """A ``PrometheusMetricReader`` served on ``http://host:port/metrics``.

    Each endpoint has its own ``CollectorRegistry`` rather than
    ``prometheus_client``'s global one, so two configurations in one process
    (tests, or a library and its host) never collide.
    """

    def __init__(self, reader: PrometheusMetricReader, server: Any, thread: threading.Thread):
        self.reader = reader
        self._server = server
        self._thread = thread

    @classmethod
    def start(cls, host: str, port: int) -> PrometheusEndpoint:
        """Listen on ``host:port`` (port 0: a free port) and serve in a daemon thread."""
        registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(registry=registry)
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
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
        return cls(reader, server, thread)

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
