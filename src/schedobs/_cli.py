"""The ``schedobs`` command line: ``contract``, ``check``, ``demo`` and ``clock``."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from schedobs._version import __version__

if TYPE_CHECKING:
    from schedobs.clock import NtpKey

__all__ = ["main"]


# --- argument types: a bad value is one argparse line and exit status 2 -------------------


def _number(
    kind: Callable[[str], float], what: str, accept: Callable[[float], bool]
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its message
    return parse


_positive_seconds = _number(float, "a number of seconds > 0", lambda v: math.isfinite(v) and v > 0)
_seconds_or_zero = _number(float, "a number of seconds >= 0", lambda v: math.isfinite(v) and v >= 0)
_positive_count = _number(int, "a whole number >= 1", lambda v: v >= 1)
_port = _number(int, "a port number from 0 to 65535", lambda v: 0 <= v <= 65535)
_HOST_PORT = re.compile(r"^[\w.\-]+:\d{1,5}$")


def _cmd_contract(args: argparse.Namespace) -> int:
    from schedobs.contract import render_json, render_markdown

    print(render_json() if args.format == "json" else render_markdown())
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from schedobs.check import check_prometheus_endpoint, check_prometheus_text

    options = {"strict": args.strict, "allow_empty": args.allow_empty}
    target: str = args.target
    if (
        target != "-"
        and not target.startswith(("http://", "https://"))
        and _HOST_PORT.match(target)
        and not os.path.exists(target)
    ):
        print(
            f"schedobs check: {target} is neither a file nor a URL; to scrape it, "
            f"give the URL: http://{target}/metrics",
            file=sys.stderr,
        )
        return 2
    try:
        if target == "-":
            report = check_prometheus_text(sys.stdin.read(), source="stdin", **options)
        elif target.startswith(("http://", "https://")):
            report = check_prometheus_endpoint(target, timeout=args.timeout, **options)
        else:
            with open(target, encoding="utf-8") as fh:
                report = check_prometheus_text(fh.read(), source=target, **options)
    except (OSError, ValueError) as exc:
        print(f"schedobs check: cannot read {target}: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.render_text())
    return 0 if report.ok else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from schedobs._demo import DemoOptions, run_demo

    prometheus = None if args.prometheus in ("", "none") else args.prometheus
    options = DemoOptions(
        duration=args.duration,
        prometheus=prometheus,
        otlp_endpoint=args.otlp_endpoint,
        otlp_protocol=args.otlp_protocol,
        clock_reference=args.clock_reference,
        headless=args.headless,
    )
    try:
        return run_demo(options)
    except (OSError, ValueError) as exc:
        print(f"schedobs demo: {exc}", file=sys.stderr)
        return 2


def _read_key(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as fh:
        key = fh.read().strip()
    if len(key) < 16:
        raise ValueError(f"the key in {path} is shorter than 16 bytes")
    return key


def _cmd_clock_serve(args: argparse.Namespace) -> int:
    from schedobs.clock import ClockServer

    try:
        server = ClockServer(args.host, args.port, key=_read_key(args.key_file))
    except (OSError, ValueError) as exc:
        print(f"schedobs clock serve: {exc}", file=sys.stderr)
        return 2
    host, port = server.address
    print(f"reference clock serving on {host}:{port} (UDP); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print(f"answered {server.answered} probes, dropped {server.dropped} datagrams")
    return 0


def _read_ntp_key(path: str | None, key_id: int | None) -> NtpKey | None:
    """The key ``key_id`` of a chrony/ntpd key file (the only one when not given)."""
    from schedobs.clock import NtpKey

    if path is None:
        if key_id is not None:
            raise ValueError("--key-id chooses a key from --key-file; give the file too")
        return None
    return NtpKey.from_file(path, key_id)


def _cmd_clock_probe(args: argparse.Namespace) -> int:
    import time

    from schedobs.clock import ClockProber, estimator_for

    ntp = args.reference.startswith("ntp://")
    # NTP servers rate-limit clients: one query every 2 s unless told otherwise.
    interval = args.interval if args.interval is not None else (2.0 if ntp else 0.0)
    count = args.count if args.count is not None else (4 if ntp else 8)
    try:
        estimator = estimator_for(args.reference)
        if args.key_id is not None and not ntp:
            raise ValueError("--key-id is for NTP key files; a host:port reference has one key")
        key = _read_ntp_key(args.key_file, args.key_id) if ntp else _read_key(args.key_file)
        prober = ClockProber(args.reference, estimator, key=key)
    except (OSError, ValueError) as exc:
        print(f"schedobs clock probe: {exc}", file=sys.stderr)
        return 2
    try:
        sock = prober.open_socket()
    except OSError as exc:
        print(f"schedobs clock probe: cannot reach {args.reference}: {exc}", file=sys.stderr)
        return 1
    with sock:
        for i in range(count):
            if i and interval:
                time.sleep(interval)
            prober.probe_once(sock)
            if prober.refused:
                break
    if prober.refused:
        print(f"refused by {args.reference}: kiss-o'-death {prober.refused}")
        return 1
    estimate = estimator.estimate()
    if estimate is None:
        extra = ""
        if prober.kisses:
            extra = ", kiss-o'-death " + ", ".join(sorted(prober.kisses))
        if prober.unsynchronised:
            extra += ", the server is not synchronised"
        print(
            f"no valid reply from {args.reference} "
            f"({prober.lost} lost, {prober.spoofed} dropped{extra})"
        )
        return 1
    print(
        f"offset {estimate.offset_ns / 1e6:+.3f} ms ± {estimate.uncertainty_ns / 1e3:.1f} µs "
        f"(reference − local), {estimate.samples} samples, "
        f"last RTT {prober.last_rtt_ns / 1e3:.0f} µs"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="schedobs", description="Observe task schedulers with OpenTelemetry."
    )
    parser.add_argument("--version", action="version", version=f"schedobs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    contract = sub.add_parser("contract", help="print the metric contract")
    contract.add_argument("--format", choices=("markdown", "json"), default="markdown")
    contract.set_defaults(func=_cmd_contract)

    check = sub.add_parser(
        "check",
        help="validate a Prometheus exposition against the contract",
        description="Scrape URL (or read a file, or '-' for stdin) and validate it. "
        "Exit status: 0 conforms, 1 violations (no contract metric at all is one), "
        "2 could not read.",
    )
    check.add_argument("target", metavar="URL", help="scrape URL, file path, or '-'")
    check.add_argument(
        "--strict", action="store_true", help="absent required metrics are violations"
    )
    check.add_argument(
        "--allow-empty",
        action="store_true",
        help="pass a target that has no contract metric yet (else a violation: wrong port?)",
    )
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--timeout", type=_positive_seconds, default=10.0, help="scrape timeout (s)")
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser("demo", help="run an instrumented scheduler under load")
    demo.add_argument(
        "--duration", type=_seconds_or_zero, default=30.0, help="seconds to run (0: until Ctrl-C)"
    )
    demo.add_argument(
        "--prometheus", default="127.0.0.1:9464", help="scrape endpoint host:port ('none' disables)"
    )
    demo.add_argument(
        "--otlp-endpoint", default=None, help="OTLP base URL, e.g. http://127.0.0.1:4317"
    )
    demo.add_argument("--otlp-protocol", choices=("grpc", "http/protobuf"), default=None)
    demo.add_argument(
        "--clock-reference",
        default=None,
        help="reference clock: ntp://host[:port], redis://host[:port] or host:port",
    )
    demo.add_argument("--headless", action="store_true", help="no live view, final summary only")
    demo.set_defaults(func=_cmd_demo)

    clock = sub.add_parser("clock", help="clock-offset tools: a reference server and a probe")
    clock_sub = clock.add_subparsers(dest="clock_command", required=True)
    serve = clock_sub.add_parser("serve", help="run a reference clock server (UDP)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=_port, default=7123)
    serve.add_argument("--key-file", default=None, help="file holding a shared key (>= 16 bytes)")
    serve.set_defaults(func=_cmd_clock_serve)
    probe = clock_sub.add_parser("probe", help="measure this host against a reference server")
    probe.add_argument(
        "reference",
        help="ntp://host[:port] of an NTP server, redis://[:password@]host[:port] of a Redis "
        "server (its TIME), or host:port of schedobs clock serve",
    )
    probe.add_argument(
        "--count", type=_positive_count, default=None, help="probes (default: NTP 4, else 8)"
    )
    probe.add_argument(
        "--interval",
        type=_seconds_or_zero,
        default=None,
        help="seconds between probes (default: NTP 2, else 0)",
    )
    probe.add_argument(
        "--key-file",
        default=None,
        help="NTP: a chrony/ntpd key file; host:port: a shared key",
    )
    probe.add_argument(
        "--key-id",
        type=_positive_count,
        default=None,
        help="NTP: which key of --key-file the server uses (needed when it holds several)",
    )
    probe.set_defaults(func=_cmd_clock_probe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``schedobs`` command."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
