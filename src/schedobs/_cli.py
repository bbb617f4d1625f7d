"""The ``schedobs`` command line: ``contract``, ``check`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from schedobs._version import __version__

__all__ = ["main"]


def _cmd_contract(args: argparse.Namespace) -> int:
    from schedobs.contract import render_json, render_markdown

    print(render_json() if args.format == "json" else render_markdown())
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from schedobs.check import check_prometheus_endpoint, check_prometheus_text

    try:
        if args.target == "-":
            report = check_prometheus_text(sys.stdin.read(), strict=args.strict, source="stdin")
        elif args.target.startswith(("http://", "https://")):
            report = check_prometheus_endpoint(
                args.target, strict=args.strict, timeout=args.timeout
            )
        else:
            with open(args.target, encoding="utf-8") as fh:
                report = check_prometheus_text(fh.read(), strict=args.strict, source=args.target)
    except OSError as exc:
        print(f"schedobs check: cannot read {args.target}: {exc}", file=sys.stderr)
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
        headless=args.headless,
    )
    try:
        return run_demo(options)
    except (OSError, ValueError) as exc:
        print(f"schedobs demo: {exc}", file=sys.stderr)
        return 2


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
        "Exit status: 0 conforms, 1 violations, 2 could not read.",
    )
    check.add_argument("target", metavar="URL", help="scrape URL, file path, or '-'")
    check.add_argument(
        "--strict", action="store_true", help="absent required metrics are violations"
    )
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--timeout", type=float, default=10.0, help="scrape timeout (s)")
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser("demo", help="run an instrumented scheduler under load")
    demo.add_argument(
        "--duration", type=float, default=30.0, help="seconds to run (0: until Ctrl-C)"
    )
    demo.add_argument(
        "--prometheus", default="127.0.0.1:9464", help="scrape endpoint host:port ('none' disables)"
    )
    demo.add_argument(
        "--otlp-endpoint", default=None, help="OTLP base URL, e.g. http://127.0.0.1:4317"
    )
    demo.add_argument("--otlp-protocol", choices=("grpc", "http/protobuf"), default=None)
    demo.add_argument("--headless", action="store_true", help="no live view, final summary only")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``schedobs`` command."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
