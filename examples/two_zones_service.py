"""Two services in two zones with skewed clocks, exchanging traced RPCs.

Pick a reference clock, then run a server and a client (each its own "host"):

    REF=ntp://169.254.169.123         # a zone's NTP service (here: Amazon Time Sync)
    REF=ntp://127.0.0.1:11123         # or any NTP server, chrony on loopback say
    REF=127.0.0.1:7123                # or `schedobs clock serve --port 7123`
    REF=none                          # or no compensation at all, to compare
    OTLP=http://127.0.0.1:4317
    python examples/two_zones_service.py server $OTLP $REF 37000000 40    # prints PORT n
    python examples/two_zones_service.py client $OTLP $REF -12000000 0 127.0.0.1:n

Usage: python two_zones_service.py ROLE OTLP REFERENCE OFFSET_NS DRIFT_PPM [TARGET]
                                   [--protocol grpc|http/protobuf] [--signals traces,metrics]

OTLP is a base URL (``http://host:4317`` for gRPC, ``http://host:4318`` for
HTTP), or ``env`` to take everything from the standard ``OTEL_EXPORTER_OTLP_*``
and ``OTEL_{TRACES,METRICS}_EXPORTER`` variables.  ``--signals traces`` sends
spans only, for a traces-only backend (Jaeger, Phoenix, Tempo) that would
answer metric exports with 404 or 405.

ROLE is ``server`` (prints ``PORT n``, serves ``/work`` and ``/quit``) or
``client`` (calls TARGET's ``/work`` 20 times; the server runs each on an
instrumented schedobs Runtime, so its latency carries an exemplar).  The skew is applied to
``time.time_ns`` before anything imports it, so the whole process — spans,
metrics and the clock prober — lives on the skewed clock, as a host would.
Each span carries ``e2e.real_start_ns``, the unskewed time read around its
start (``e2e.real_window_ns`` wide), so a test can judge the corrected times
against the truth rather than against the estimator's own ``clock.offset_ns``.
"""

from __future__ import annotations

import sys
import time

_real_time_ns = time.time_ns
_start_real = _real_time_ns()
_start_mono = time.monotonic_ns()
OFFSET_NS = int(sys.argv[4])
DRIFT = float(sys.argv[5]) * 1e-6


def _skewed_time_ns() -> int:
    # The monotonic clock keeps the drift smooth; wall = real + offset + drift·elapsed.
    elapsed = time.monotonic_ns() - _start_mono
    return _start_real + elapsed + OFFSET_NS + round(DRIFT * elapsed)


time.time_ns = _skewed_time_ns  # before OpenTelemetry binds it

import argparse  # noqa: E402
import http.server  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import urllib.request  # noqa: E402

from opentelemetry import propagate, trace  # noqa: E402

import schedobs  # noqa: E402
from schedobs.runtime import Runtime  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("otlp", help="base OTLP URL, or 'env' for the OTEL_* variables")
    parser.add_argument("reference", help="ntp://host[:port], host:port, or none")
    parser.add_argument("offset_ns", type=int)
    parser.add_argument("drift_ppm", type=float)
    parser.add_argument("target", nargs="?", help="the server's host:port (client)")
    parser.add_argument("--protocol", choices=["grpc", "http/protobuf"], default=None)
    parser.add_argument("--signals", default="traces,metrics", help="what to send over OTLP")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    role, reference = args.role, args.reference
    signals = {s.strip() for s in args.signals.split(",") if s.strip()}
    if not signals <= {"traces", "metrics"}:
        raise SystemExit(f"--signals takes traces and/or metrics, got {args.signals!r}")
    env = args.otlp == "env"
    telemetry = schedobs.configure(
        f"e2e-{role}",
        otlp_endpoint=None if env else args.otlp,
        otlp_protocol=args.protocol,
        otlp_traces=None if env else "traces" in signals,
        otlp_metrics=None if env else "metrics" in signals,
        export_interval=3600,
        prometheus=None,
        # Fast probes so the demo converges in a second; an NTP server's
        # rate limit needs the default (5 s) or more.
        clock=None
        if reference == "none"
        else schedobs.ClockCompensation.create(reference, interval=0.05),
        set_global=False,
    )
    tracer = telemetry.tracer_provider.get_tracer("e2e")
    clock = telemetry.clock
    deadline = time.monotonic() + 10
    while clock is not None and clock.prober.samples < 10 and time.monotonic() < deadline:
        time.sleep(0.02)

    def start_span(name: str, kind: trace.SpanKind, **kwargs: object) -> trace.Span:
        # The skewed start, bracketed by two real-time readings: a thread switch
        # between them (up to the GIL's 5 ms) shows as a wide window, not an error.
        before = _real_time_ns()
        local = time.time_ns()
        after = _real_time_ns()
        span = tracer.start_span(name, kind=kind, start_time=local, **kwargs)  # type: ignore[arg-type]
        span.set_attribute("e2e.real_start_ns", (before + after) // 2)
        span.set_attribute("e2e.real_window_ns", after - before)
        return span

    # Report the skew at the start (real time, offset, drift) for the test's truth.
    print(f"SKEW {_start_real} {_start_mono} {OFFSET_NS} {DRIFT}", flush=True)
    if role == "server":
        stop = threading.Event()
        # The handler's work runs on an instrumented runtime: the task's schedule latency
        # carries the request span's trace id as an exemplar (a latency bucket leads to it).
        work = Runtime(procs=2, name="e2e-server", instrument=True, registry=telemetry.registry)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/quit":
                    stop.set()
                else:
                    # urllib capitalises header names; the propagator looks up lowercase.
                    ctx = propagate.extract({k.lower(): v for k, v in self.headers.items()})
                    span = start_span("handle", trace.SpanKind.SERVER, context=ctx)
                    with trace.use_span(span, end_on_exit=True):
                        work.submit(time.sleep, 0.002).result(timeout=10)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        # SCHEDOBS_LISTEN="0.0.0.0:8080" in docker-compose; a free loopback port by default.
        host, _, port = os.environ.get("SCHEDOBS_LISTEN", "127.0.0.1:0").rpartition(":")
        server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"PORT {server.server_address[1]}", flush=True)
        stop.wait(60)
        server.shutdown()
        work.shutdown()
    else:
        target = args.target
        for _ in range(20):
            with trace.use_span(start_span("call", trace.SpanKind.CLIENT), end_on_exit=True):
                headers: dict[str, str] = {}
                propagate.inject(headers)
                request = urllib.request.Request(f"http://{target}/work", headers=headers)
                with urllib.request.urlopen(request, timeout=10) as resp:
                    resp.read()
        urllib.request.urlopen(f"http://{target}/quit", timeout=10).close()
    telemetry.force_flush(timeout=10)
    telemetry.shutdown(timeout=10)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
