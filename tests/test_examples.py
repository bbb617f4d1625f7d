"""The examples run as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ._interruptible import interruptible

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_instrument_existing_scheduler_runs_and_counts_every_task() -> None:
    """It says where to scrape before it runs and stays up (--hold) so that the final
    figures can be scraped; it used to print the URL as it exited."""
    import signal
    import urllib.request

    proc = subprocess.Popen(
        interruptible(str(EXAMPLES / "instrument_existing_scheduler.py"),
                      "--prometheus", "127.0.0.1:0", "--tasks", "5000", "--hold", "60"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.match(r"scrape (http://\S+/metrics) ", first)
        assert url, first
        match = re.search(r"(\d+) ran, (\d+) refused", proc.stdout.readline())
        assert match
        ran, refused = int(match.group(1)), int(match.group(2))
        assert ran + refused == 5000
        with urllib.request.urlopen(url.group(1), timeout=10) as resp:  # during the hold
            page = resp.read().decode()
        count = re.search(r"scheduler_schedule_latency_milliseconds_count\{[^}]*\} (\S+)", page)
        assert count and float(count.group(1)) == ran
        proc.send_signal(signal.SIGINT)  # Ctrl-C ends the hold
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def test_the_instrumentation_is_at_most_20_lines() -> None:
    source = (EXAMPLES / "instrument_existing_scheduler.py").read_text()
    assert 0 < source.count("# schedobs") <= 20


def test_multi_tenant_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "multi_tenant_runtime.py"), "--seconds", "1",
         "--prometheus", "127.0.0.1:0", "--hold", "0"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert re.search(r"gold\s+completed\s+\d+", out.stdout), out.stdout + out.stderr
    assert "refused" in out.stdout


@pytest.mark.timeout(240)
def test_the_celery_example_runs_two_skewed_zones_and_corrects_them() -> None:
    """examples/celery/run.py local: redis-server, two workers 120 ms ahead and 80 ms behind,
    a producer 35 ms ahead (libfaketime); the raw clocks show the skew, the corrected don't.

    The example bounds each of its waits itself (about 3 min in all) and quotes its
    processes' logs when one runs out; the test's own limits sit above that."""
    from schedobs.testing import find_libfaketime

    if find_libfaketime() is None:
        pytest.skip("libfaketime is installed by `make test`")
    try:
        out = subprocess.run(
            [sys.executable, str(EXAMPLES / "celery" / "run.py"), "local", "--tasks", "120"],
            capture_output=True, text=True, timeout=220, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the example did not end in 220 s:\n{hung.stdout!r}\n{hung.stderr!r}")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {
        m.group(1): (float(m.group(2)), float(m.group(3)), float(m.group(4)))
        for m in re.finditer(
            r"^(zone-[ab])\s+\d+\s+(-?[\d.]+) ms\s+(-?[\d.]+) ms\s+([\d.]+) ms", out.stdout, re.M
        )
    }
    assert set(rows) == {"zone-a", "zone-b"}, out.stdout
    raw_a, corrected_a, _ = rows["zone-a"]
    raw_b, corrected_b, _ = rows["zone-b"]
    assert 80 < raw_a < 100 and -120 < raw_b < -100  # +85 ms and -115 ms of skew
    assert 0 < corrected_a < 20 and 0 < corrected_b < 20
    assert out.stdout.count("contract check: conforms") == 2


def test_the_asyncio_service_reports_every_request_through_the_adapters() -> None:
    """examples/asyncio_service.py, the service docs/adapters.md describes: 40 requests
    give 40 pool latencies, 40 default-executor latencies, one task per connection, a
    conforming endpoint; SIGTERM stops it cleanly."""
    import signal
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from schedobs.check import check_prometheus_endpoint

    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "asyncio_service.py"), "--port", "0",
         "--prometheus", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.match(r"serving (http://\S+/)  scrape (http://\S+/metrics)", line)
        assert found, line + (proc.stderr.read() if proc.poll() is not None else "")
        service, scrape = found.groups()

        def get(i: int) -> bytes:
            with urllib.request.urlopen(f"{service}item/{i}", timeout=10) as resp:
                return bytes(resp.read())

        with ThreadPoolExecutor(8) as clients:
            bodies = list(clients.map(get, range(40)))
        assert all(len(b.split()[0]) == 64 for b in bodies)
        with urllib.request.urlopen(scrape, timeout=10) as resp:
            page = resp.read().decode()

        def count(name: str) -> float:
            m = re.search(
                r'scheduler_schedule_latency_milliseconds_count\{[^}]*scheduler_name="'
                + re.escape(name) + r'"[^}]*\} (\S+)', page,
            )  # fmt: skip
            assert m, name
            return float(m.group(1))

        assert count("hashing") == 40
        assert count("http.executor") == 40
        assert count("http") >= 40  # one task per connection (and the server's own)
        report = check_prometheus_endpoint(scrape)
        assert report.ok, report.render_text()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
