"""Real OTLP receivers on loopback, for tests: gRPC (from the proto service stubs) and HTTP.

They decode what an exporter sends into ``opentelemetry-proto`` messages and
keep them, so a test can compare names, units, attributes and values with
what it recorded.  Waiting uses a condition variable, never ``sleep``.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

__all__ = ["Fault", "GrpcOtlpReceiver", "HttpOtlpReceiver", "OtlpReceiver"]

MetricsRequest = metrics_service_pb2.ExportMetricsServiceRequest
TraceRequest = trace_service_pb2.ExportTraceServiceRequest
_T = TypeVar("_T")


@dataclass
class Fault:
    """A fault a receiver injects into every export call until cleared.

    ``status``: a gRPC status name (``"UNAVAILABLE"``) for the gRPC receiver, an
    HTTP status (503, 429) for the HTTP one; ``None`` answers normally.
    ``delay``: seconds to wait before answering (a slow collector).
    """

    status: str | int | None = None
    delay: float = 0.0


class OtlpReceiver:
    """What both receivers share: the received requests and a way to wait for them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.metrics_requests: list[MetricsRequest] = []
        self.trace_requests: list[TraceRequest] = []
        #: Set to inject a fault into every export call (``None``: healthy).
        self.fault: Fault | None = None
        #: Export calls answered with an injected error status.
        self.faulted = 0

    def _inject(self) -> Fault | None:
        """Apply the fault's delay; return it if the call must fail."""
        fault = self.fault
        if fault is None:
            return None
        if fault.delay:
            time.sleep(fault.delay)  # a slow collector, on the receiver's own thread
        if fault.status is None:
            return None
        with self._cond:
            self.faulted += 1
        return fault

    @property
    def endpoint(self) -> str:
        """Base URL to give an exporter (``configure(otlp_endpoint=...)``)."""
        raise NotImplementedError

    def _received(self, sink: list[Any], message: Any) -> None:
        with self._cond:
            sink.append(message)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[OtlpReceiver], _T], timeout: float = 10.0) -> _T:
        """Wait until ``predicate(self)`` is truthy and return its value.

        Raises ``TimeoutError`` with the last value seen if it does not happen in time.
        """
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self), timeout=timeout)
            if not ok:
                raise TimeoutError(
                    f"OTLP receiver: condition not met within {timeout} s "
                    f"({len(self.metrics_requests)} metric and "
                    f"{len(self.trace_requests)} trace requests received)"
                )
            result = predicate(self)
        return result

    def close(self) -> None:
        """Stop listening."""
        raise NotImplementedError

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_R = TypeVar("_R", bound=OtlpReceiver)


class GrpcOtlpReceiver(OtlpReceiver):
    """An OTLP/gRPC receiver (metrics and traces services) on ``host`` and a free port
    (or ``port``, to come back where a stopped one was)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        receiver = self

        def fail(context: Any) -> bool:
            fault = receiver._inject()
            if fault is None:
                return False
            context.abort(getattr(grpc.StatusCode, str(fault.status)), "injected fault")
            return True

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: MetricsRequest, context: Any) -> Any:  # noqa: N802
                if not fail(context):
                    receiver._received(receiver.metrics_requests, request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: TraceRequest, context: Any) -> Any:  # noqa: N802
                if not fail(context):
                    receiver._received(receiver.trace_requests, request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        # The generated stubs are untyped.
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            Metrics(), self._server
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            Traces(), self._server
        )
        self._host = host
        self.port: int = self._server.add_insecure_port(f"{host}:{port}")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"http://{self._host}:{self.port}"

    def close(self) -> None:
        self._server.stop(grace=None).wait(5)


class HttpOtlpReceiver(OtlpReceiver):
    """An OTLP/HTTP (protobuf) receiver serving ``/v1/metrics`` and ``/v1/traces``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        receiver = self
        #: Paths that were posted to but are not OTLP routes (answered 404).
        self.unrouted: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                routes: dict[str, tuple[type[Any], list[Any], Any]] = {
                    "/v1/metrics": (
                        MetricsRequest,
                        receiver.metrics_requests,
                        metrics_service_pb2.ExportMetricsServiceResponse(),
                    ),
                    "/v1/traces": (
                        TraceRequest,
                        receiver.trace_requests,
                        trace_service_pb2.ExportTraceServiceResponse(),
                    ),
                }
                route = routes.get(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if route is None:
                    receiver.unrouted.append(self.path)
                    self.send_error(404)
                    return
                fault = receiver._inject()
                if fault is not None:
                    self.send_response(int(fault.status))  # type: ignore[arg-type]
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                message_type, sink, response = route
                message = message_type()
                message.ParseFromString(body)
                receiver._received(sink, message)
                payload = response.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-http-receiver", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host!s}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
