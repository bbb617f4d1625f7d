"""The Prometheus scrape endpoint: an SDK Prometheus reader behind its own HTTP server."""

from __future__ import annotations

import errno
import threading
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, start_http_server

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


class _SerializedCollector:
    """Serves one scrape at a time.

    Each scrape makes the reader collect and queue a snapshot, then drains the
    queue; two concurrent scrapes could each drain the other's snapshot
    (duplicates in one, nothing in the other).  Scrapes are rare and cheap, so
    a lock costs nothing that matters.
    """

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def collect(self) -> list[Any]:
        with self._lock:
            return list(self._inner.collect())


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
        private = CollectorRegistry(auto_describe=False)
        reader = _PullReader(registry=private)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_SerializedCollector(private))
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
