"""The schedobs command line."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from threading import Thread

import pytest

from schedobs._cli import main
from schedobs.contract import CONTRACT_VERSION, Registry
from schedobs.export import configure

from ._chrony_server import ChronyServer
from ._interruptible import interruptible
from ._workload import record


def test_contract_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contract"]) == 0
    out = capsys.readouterr().out
    assert f"# schedobs metric contract v{CONTRACT_VERSION}" in out
    assert "| `scheduler.schedule.latency` | histogram | `ms` |" in out
    assert "`scheduler_schedule_latency_milliseconds_bucket`" in out
    assert (
        "0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 25 50 100 250 500 1000 2500 5000 10000, +Inf"
        in out
    )


def test_contract_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contract", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == CONTRACT_VERSION
    names = {m["name"]: m for m in data["metrics"]}
    assert (
        names["scheduler.rejected_tasks"]["prometheus"]["name"] == "scheduler_rejected_tasks_total"
    )
    assert names["scheduler.schedule.latency"]["boundaries"][0] == 0.01


def _serve(text: str) -> tuple[HTTPServer, str]:
    body = text.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/metrics"


def test_check_passes_on_a_live_endpoint_and_fails_precisely_on_a_wrong_one(
    registry: Registry,
) -> None:
    record(registry)
    telemetry = configure(prometheus="127.0.0.1:0", registry=registry, set_global=False)
    try:
        url = telemetry.prometheus_url or ""
        ok = subprocess.run(
            [sys.executable, "-m", "schedobs", "check", url, "--strict"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "conforms to schedobs contract" in ok.stdout
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    finally:
        telemetry.shutdown(timeout=5)

    server, wrong_url = _serve(text.replace('le="0.25"', 'le="0.3"'))
    try:
        bad = subprocess.run(
            [sys.executable, "-m", "schedobs", "check", wrong_url, "--format", "json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False
    assert {v["rule"] for v in report["violations"]} == {"bad-buckets"}
    assert "missing [0.25], unexpected [0.3]" in report["violations"][0]["message"]


def test_check_unreachable_endpoint_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["check", f"http://127.0.0.1:{port}/metrics", "--timeout", "2"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_reads_a_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "expo.txt"
    path.write_text("# TYPE scheduler_queue_length gauge\nscheduler_queue_length 1\n")
    assert main(["check", str(path)]) == 1
    assert "missing-attribute" in capsys.readouterr().out


def test_demo_runs_headless_and_checks_itself() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "schedobs", "demo", "--duration", "6", "--headless",
         "--prometheus", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert ": exact" in out.stdout
    assert "refused: queue_full=" in out.stdout  # bronze's burst at 5 s overflowed its pool
    assert "conforms to schedobs contract" in out.stdout


def test_demo_exports_conforming_otlp_to_a_receiver() -> None:
    from schedobs.check import check_otlp_metrics
    from schedobs.testing import GrpcOtlpReceiver

    with GrpcOtlpReceiver() as receiver:
        out = subprocess.run(
            [sys.executable, "-m", "schedobs", "demo", "--duration", "2", "--headless",
             "--prometheus", "none", "--otlp-endpoint", receiver.endpoint],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        receiver.wait_for(lambda r: r.metrics_requests)
        report = check_otlp_metrics(receiver.metrics_requests[-1], strict=True)
    assert report.ok, report.render_text()
    assert report.series.get("scheduler.schedule.latency", 0) >= 3  # one per tenant, at least


def _demo_output(on_a_terminal: bool) -> str:
    """``schedobs demo --duration 3``, its stdout a pseudo-terminal or a pipe."""
    import os
    import select

    args = [
        sys.executable,
        "-m",
        "schedobs",
        "demo",
        "--duration",
        "3",
        "--prometheus",
        "127.0.0.1:0",
    ]
    if not on_a_terminal:
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout
    master, slave = os.openpty()
    proc = subprocess.Popen(args, stdout=slave, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def test_the_demo_redraws_its_live_view_in_place_on_a_terminal() -> None:
    text = _demo_output(on_a_terminal=True)
    opened, closed = text.find("\x1b[?1049h"), text.find("\x1b[?1049l")
    assert 0 <= opened < closed, "the view uses the alternate screen and leaves it"
    live = text[opened:closed]
    assert live.count("\x1b[H") >= 2  # redrawn from the top, once a second
    assert "\x1b[2J" not in text  # no clear-and-scroll
    # The final summary is printed on the main screen, after the view closed.
    assert ": exact" in text[closed:]


def test_the_demo_prints_plain_lines_when_stdout_is_not_a_terminal() -> None:
    text = _demo_output(on_a_terminal=False)
    assert "\x1b" not in text
    assert text.count("schedobs demo:") >= 3  # a view a second, then the final one
    assert ": exact" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--timeout", "-1", "x"], "argument --timeout: '-1' is not a number of seconds > 0"),
        (["check", "--timeout", "abc", "x"], "argument --timeout: 'abc' is not a number of seconds"),
        (["clock", "serve", "--port", "99999"], "argument --port: '99999' is not a port number"),
        (["clock", "probe", "127.0.0.1:1", "--count", "0"], "argument --count: '0' is not a whole"),
        (["clock", "probe", "127.0.0.1:1", "--interval", "-2"], "argument --interval: '-2'"),
        (["demo", "--duration", "nan"], "argument --duration: 'nan' is not a number of seconds"),
        (["demo", "--duration", "inf"], "argument --duration: 'inf' is not a number of seconds"),
    ],
)  # fmt: skip
def test_a_bad_argument_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """These used to be tracebacks (an OverflowError, a ValueError from socket.settimeout)
    or were accepted (`--count 0` counted a failed probe; `--duration nan` ran)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_check_given_host_port_says_to_give_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "127.0.0.1:9464"]) == 2
    assert "give the URL: http://127.0.0.1:9464/metrics" in capsys.readouterr().err


def test_check_fails_a_target_without_contract_metrics_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "node.txt"
    page.write_text("# TYPE node_load1 gauge\nnode_load1 0.2\n")
    assert main(["check", str(page)]) == 1
    assert "no-contract-metrics" in capsys.readouterr().out
    assert main(["check", str(page), "--allow-empty"]) == 0


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_the_demo_drains_on_sigterm_as_on_ctrl_c(sig: str) -> None:
    """docker stop / systemd send SIGTERM: the demo used to die with status 143 and no
    summary."""
    import signal
    import time

    proc = subprocess.Popen(
        interruptible("schedobs", "demo", "--duration", "0", "--headless",
                      "--prometheus", "127.0.0.1:0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Prometheus endpoint:")
        time.sleep(2.0)  # some load accepted, some running
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert "; draining" in out and ": exact" in out
    assert "Traceback" not in err


def test_clock_probe_takes_the_key_id_it_is_given_from_chronys_key_file(
    chrony_server: ChronyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """chrony's key file holds three keys; probing used to take the first one silently."""
    keyfile = str(chrony_server.keyfile)
    reference = f"ntp://{chrony_server.address}"
    base = ["clock", "probe", reference, "--key-file", keyfile, "--count", "2", "--interval", "0"]
    assert main([*base, "--key-id", "3"]) == 0
    capsys.readouterr()
    assert main(base) == 2
    assert "holds 3 keys (ids: 1, 2, 3): say which one" in capsys.readouterr().err
    assert main([*base, "--key-id", "9"]) == 2
    assert "holds no key 9" in capsys.readouterr().err
